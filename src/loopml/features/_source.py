"""Feature-view sources as DuckDB relations.

A source string becomes a :class:`Source`: a ``FROM`` item DuckDB can scan
with the source's own columns plus two of ours:

* ``__loopml_seq`` — the row's position in source order (file index in
  sorted path order, then row number in the file; query order for ``sql:``
  sources). Rows of one entity with equal event timestamps are resolved by
  it: the last in source order wins.
* ``__loopml_file`` — the index of the row's file (0 for ``sql:`` sources),
  so that materialization can scan newly arrived files in full.

Parquet is read by DuckDB directly (projection and filter push-down, no
pandas). A dataset version is read from its snapshot in the artifact store:
in place for a local store, from a verified local copy for ``s3://``.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInputError, LoopmlError

if TYPE_CHECKING:
    import duckdb

    from loopml.storage.base import Backend

__all__ = ["FILE_COL", "SEQ_COL", "Source", "describe", "quote", "resolve_source", "sql_str"]

SEQ_COL = "__loopml_seq"
FILE_COL = "__loopml_file"
_ROW_BITS = 1 << 40  # rows per file before the file index; 2^24 files fit below 2^64

#: snapshots of s3 dataset versions already verified in this process: path -> sha256
_VERIFIED: dict[str, str] = {}


def quote(name: str) -> str:
    """``name`` as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def sql_str(value: str) -> str:
    """``value`` as a DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Source:
    """A resolved source.

    Attributes:
        text: the source string as declared.
        kind: ``parquet``, ``dataset`` or ``sql``.
        relation: a ``FROM`` item with the source's columns plus ``__loopml_seq`` and ``__loopml_file``.
        files: the parquet files read, in order (``parquet`` and ``dataset`` kinds).
        lineage: what was read, for training-set lineage (``datasets:/trips/3``, a path, ``sql``).
        fingerprint: what identifies this content (per-file size and mtime, a dataset's sha256, the query).
    """

    text: str
    kind: str
    relation: str
    files: tuple[str, ...] = ()
    lineage: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)


def _parquet_relation(files: list[str]) -> str:
    listed = ", ".join(sql_str(f) for f in files)
    return (
        f"(SELECT *, CAST(file_index AS BIGINT) * {_ROW_BITS} + file_row_number AS {SEQ_COL}, "
        f"CAST(file_index AS BIGINT) AS {FILE_COL} FROM read_parquet([{listed}]))"
    )


def _expand(text: str, project_dir: Path) -> list[str]:
    if "://" in text:
        raise InvalidInputError(
            f"source {text!r}: parquet sources must be local files; register remote data as a dataset "
            "(loopml.data.register) and use source='datasets:/NAME'",
            source=text,
        )
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = project_dir / path
    if any(ch in text for ch in "*?["):
        files = sorted(p for p in glob.glob(str(path), recursive=True) if os.path.isfile(p))
    elif path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".parquet", ".pq"))
    elif path.is_file():
        files = [str(path)]
    else:
        raise InvalidInputError(f"source {text!r}: {path} does not exist", source=text)
    if not files:
        raise InvalidInputError(f"source {text!r}: no parquet files match {path}", source=text)
    return files


def _dataset_file(backend: Backend, uri: str, project_dir: Path) -> tuple[str, str, str]:
    """(local parquet path, resolved uri, sha256) of the snapshot of dataset version ``uri``."""
    from loopml.data import get_data
    from loopml.storage import LocalBlobStore

    dv = get_data(backend.settings).resolve(uri)
    blobs = backend.blobs
    if isinstance(blobs, LocalBlobStore):
        path = Path(blobs.root) / dv.artifact_key
        if not path.is_file():
            from loopml.errors import ArtifactNotFoundError

            raise ArtifactNotFoundError(
                f"the snapshot of {dv.uri} is missing from the artifact store ({path})", key=dv.artifact_key
            )
        return str(path), dv.uri, dv.sha256
    cache = project_dir / ".loopml" / "cache" / "features" / f"{dv.sha256}.parquet"
    if _VERIFIED.get(str(cache)) != dv.sha256:
        if not cache.is_file():
            blobs.get_file(dv.artifact_key, cache, sha256=dv.sha256)
        else:
            from loopml.storage import sha256_file

            if sha256_file(cache)[0] != dv.sha256:
                blobs.get_file(dv.artifact_key, cache, sha256=dv.sha256)
        _VERIFIED[str(cache)] = dv.sha256
    return str(cache), dv.uri, dv.sha256


def resolve_source(text: str, backend: Backend, project_dir: Path | None = None) -> Source:
    """Resolve a view's source string (relative paths against ``project_dir``, default the backend's project).

    Raises:
        InvalidInputError: the source names no readable data (the message says why).
        DatasetNotFoundError, AliasNotFoundError: a ``datasets:/`` source names no version.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"source {text!r} must be a non-empty string", source=repr(text))
    text = text.strip()
    root = project_dir or backend.settings.project_dir
    if text.startswith("datasets:/"):
        path, uri, sha = _dataset_file(backend, text, root)
        return Source(text, "dataset", _parquet_relation([path]), (path,), uri, {"uri": uri, "sha256": sha})
    if text.lower().startswith("sql:"):
        query = text[4:].strip().rstrip(";")
        if not query:
            raise InvalidInputError(f"source {text!r} has no query after 'sql:'", source=text)
        relation = f"(SELECT *, row_number() OVER () AS {SEQ_COL}, 0 AS {FILE_COL} FROM ({query}) AS q)"
        digest = hashlib.sha256(query.encode()).hexdigest()
        return Source(text, "sql", relation, (), "sql", {"sql": digest})
    files = _expand(text, root)
    prints: dict[str, list[int]] = {}
    for f in files:
        st = os.stat(f)
        prints[f] = [st.st_size, st.st_mtime_ns]
    lineage = files[0] if len(files) == 1 else f"{text} ({len(files)} files)"
    return Source(text, "parquet", _parquet_relation(files), tuple(files), lineage, {"files": prints})


def describe(con: duckdb.DuckDBPyConnection, source: Source) -> dict[str, str]:
    """Column name -> DuckDB type of ``source``, from file footers or the query plan (no rows read).

    Raises:
        InvalidInputError: DuckDB cannot read the source.
    """
    import duckdb

    try:
        rows = con.sql(f"DESCRIBE SELECT * FROM {source.relation}").fetchall()
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidInputError(f"source {source.text!r} cannot be read: {first}", source=source.text) from None
    return {str(r[0]): str(r[1]) for r in rows if r[0] not in (SEQ_COL, FILE_COL)}


def wrap_duckdb(e: Exception, doing: str) -> LoopmlError:
    """A DuckDB error as a :class:`~loopml.errors.InvalidInputError` saying what failed."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    return InvalidInputError(f"{doing} failed in DuckDB: {first}")
