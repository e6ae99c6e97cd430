"""Dataset use cases: register snapshots, resolve ``datasets:/`` URIs, load, alias, profile."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopml.core import now_ms
from loopml.core.uri import parse_versioned_uri
from loopml.data._io import BATCH_ROWS, open_stream, rechunk
from loopml.data._sql import SqlDatasetRepository
from loopml.data.models import DatasetVersion, PiiFinding, Profile
from loopml.errors import ArtifactCorruptedError, InvalidInputError
from loopml.storage.base import Backend

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["DataService", "RegisterResult"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$")
_PII_SAMPLE_ROWS = 10_000


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"dataset name {name!r} is invalid: use 1-256 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return name


def _check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest":
        raise InvalidInputError(
            f"alias {alias!r} is invalid: use letters, digits, '_' or '-', starting with a letter or '_' (not 'latest')"
        )
    return alias


class RegisterResult:
    """What :meth:`DataService.register` did: the version, and whether it was new."""

    def __init__(self, version: DatasetVersion, created: bool, pii: list[PiiFinding]) -> None:
        self.version = version
        self.created = created
        self.pii = pii


class DataService:
    """Versioned datasets over one :class:`~loopml.storage.Backend`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.repo = SqlDatasetRepository(backend.metadata)

    def _user(self) -> str | None:
        from loopml.tracking._env import user_name

        return user_name(self.backend.settings.user)

    # -- registering -------------------------------------------------------------

    def register(
        self,
        name: str,
        data: Any,
        *,
        source: str | None = None,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        encoding: str = "utf8",
        column_types: dict[str, Any] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> RegisterResult:
        """Store ``data`` as the next version of dataset ``name`` (created if new).

        The data is streamed once: each batch is written to a parquet snapshot,
        profiled, and (for the first rows) scanned for personal data. The
        snapshot's sha256 identifies the content: registering identical content
        again returns the existing version and stores nothing.

        Args:
            name: dataset name.
            data: a DataFrame, pyarrow Table, record batches, or a CSV/parquet path.
            source: where the data came from (default: the file path, if any).
            description: free text.
            tags: key/value tags on the version.
            encoding: text encoding of a CSV file.
            column_types: CSV column types instead of inferred ones (Arrow type names).
            progress: called with the number of rows read so far, after each batch.

        Raises:
            InvalidInputError: the data cannot be read, or has no rows.
        """
        import pyarrow.parquet as pq

        from loopml.data.pii import scan_pii
        from loopml.data.profile import ProfileBuilder
        from loopml.storage import sha256_file

        _check_name(name)
        stream = open_stream(data, encoding=encoding, column_types=column_types)
        if len(stream.schema) == 0:
            raise InvalidInputError(f"dataset {name!r}: the data has no columns; nothing to register")
        builder = ProfileBuilder(stream.schema)
        sample: list[pa.RecordBatch] = []
        sampled = rows = 0
        with tempfile.TemporaryDirectory(prefix="loopml-data-") as tmpdir:
            snapshot = Path(tmpdir) / "snapshot.parquet"
            with pq.ParquetWriter(snapshot, stream.schema, compression="zstd") as writer:
                for batch in rechunk(stream.batches, BATCH_ROWS):
                    writer.write_batch(batch, row_group_size=BATCH_ROWS)
                    builder.update(batch)
                    rows += batch.num_rows
                    if sampled < _PII_SAMPLE_ROWS:
                        sample.append(batch.slice(0, _PII_SAMPLE_ROWS - sampled))
                        sampled += sample[-1].num_rows
                    if progress is not None:
                        progress(rows)
            if rows == 0:
                raise InvalidInputError(
                    f"dataset {name!r}: the data has columns ({', '.join(stream.schema.names[:8])}) but no rows; "
                    "nothing to register"
                )
            digest, size = sha256_file(snapshot)
            self.repo.ensure_dataset(name)
            existing = self.repo.find_by_hash(name, digest)
            if existing is not None:
                return RegisterResult(existing, False, [])
            key = f"datasets/objects/{digest[:2]}/{digest}.parquet"
            if not self.backend.blobs.exists(key):
                self.backend.blobs.put_file(key, snapshot)
        profile = builder.finish()
        findings = scan_pii(pa.Table.from_batches(sample, schema=stream.schema))
        for f in findings:
            col = profile.columns.get(f.column)
            if col is not None and f.kind not in col.pii:
                col.pii.append(f.kind)
        doc = {"profile": profile.to_dict(), "pii": [f.__dict__ for f in findings]}
        profile_key = f"datasets/profiles/{digest}.json"
        self.backend.blobs.put_bytes(profile_key, json.dumps(doc, default=str).encode())
        row = {
            "name": name, "sha256": digest, "artifact_key": key, "num_rows": rows, "num_bytes": size,
            "columns": [{"name": f.name, "type": str(f.type)} for f in stream.schema],
            "source": source or stream.source, "description": description, "profile_key": profile_key,
            "created_at": now_ms(), "created_by": self._user(),
        }
        version = self.repo.create_version(row, {k: str(v) for k, v in (tags or {}).items()})
        from loopml.storage.events import DATASET_VERSION_CREATED, emit

        emit(self.backend.metadata, DATASET_VERSION_CREATED, subject=name,
             payload={"uri": f"datasets:/{name}/{version}", "version": version, "sha256": digest, "rows": rows})
        logger.info("registered dataset %s version %d", name, version, extra={"dataset": name, "version": version})
        return RegisterResult(self.repo.get_version(name, version), True, findings)

    # -- resolving and loading ----------------------------------------------------

    def resolve(self, uri: str | DatasetVersion) -> DatasetVersion:
        """The version a ``datasets:/`` URI names.

        Raises:
            InvalidUriError, DatasetNotFoundError, AliasNotFoundError.
        """
        if isinstance(uri, DatasetVersion):
            return uri
        ref = parse_versioned_uri(uri, "datasets")
        if ref.alias is not None:
            return self.repo.get_version(ref.name, self.repo.resolve_alias(ref.name, ref.alias))
        return self.repo.get_version(ref.name, ref.version)

    def get_version(self, name: str, version: int | None = None) -> DatasetVersion:
        return self.repo.get_version(name, version)

    def list_versions(self, name: str) -> list[DatasetVersion]:
        return self.repo.list_versions(name)

    def list_datasets(self) -> list[dict[str, Any]]:
        return self.repo.list_datasets()

    def _local_snapshot(self, dv: DatasetVersion, tmpdir: str, verify: bool) -> Path:
        from loopml.storage import LocalBlobStore, sha256_file

        blobs = self.backend.blobs
        if isinstance(blobs, LocalBlobStore):
            path = Path(blobs.root) / dv.artifact_key
            if not path.is_file():
                from loopml.errors import ArtifactNotFoundError

                raise ArtifactNotFoundError(
                    f"the snapshot of {dv.uri} is missing from the artifact store ({path})", key=dv.artifact_key
                )
            if verify and sha256_file(path)[0] != dv.sha256:
                raise ArtifactCorruptedError(
                    f"the snapshot of {dv.uri} is corrupted: its sha256 no longer matches; restore it or register the data again",
                    key=dv.artifact_key,
                )
            return path
        return blobs.get_file(dv.artifact_key, Path(tmpdir) / "snapshot.parquet", sha256=dv.sha256 if verify else None)

    def load_table(self, uri: str | DatasetVersion, *, columns: list[str] | None = None, verify: bool = True) -> pa.Table:
        """The dataset version as an Arrow table (its sha256 checked first unless ``verify=False``)."""
        import pyarrow.parquet as pq

        dv = self.resolve(uri)
        if columns is not None:
            missing = [c for c in columns if c not in {ci.name for ci in dv.columns}]
            if missing:
                raise InvalidInputError(f"{dv.uri} has no column(s) {missing}; its columns: {[c.name for c in dv.columns]}")
        with tempfile.TemporaryDirectory(prefix="loopml-data-") as tmpdir:
            return pq.read_table(self._local_snapshot(dv, tmpdir, verify), columns=columns)

    def load(self, uri: str | DatasetVersion, *, columns: list[str] | None = None, verify: bool = True) -> pd.DataFrame:
        """The dataset version as a pandas DataFrame."""
        return self.load_table(uri, columns=columns, verify=verify).to_pandas()

    def iter_batches(self, uri: str | DatasetVersion, *, batch_rows: int = BATCH_ROWS, verify: bool = True) -> Iterator[pa.RecordBatch]:
        """Stream the dataset version in record batches (for data larger than memory)."""
        import pyarrow.parquet as pq

        dv = self.resolve(uri)
        with tempfile.TemporaryDirectory(prefix="loopml-data-") as tmpdir:
            yield from pq.ParquetFile(self._local_snapshot(dv, tmpdir, verify)).iter_batches(batch_size=batch_rows)

    def profile(self, uri: str | DatasetVersion) -> Profile:
        """The profile stored with the dataset version."""
        return Profile.from_dict(self._profile_doc(self.resolve(uri))["profile"])

    def pii(self, uri: str | DatasetVersion) -> list[PiiFinding]:
        """PII findings recorded when the dataset version was registered."""
        return [PiiFinding(**f) for f in self._profile_doc(self.resolve(uri))["pii"]]

    def _profile_doc(self, dv: DatasetVersion) -> dict[str, Any]:
        if dv.profile_key is None:
            raise InvalidInputError(f"{dv.uri} has no stored profile")
        data: dict[str, Any] = json.loads(self.backend.blobs.get_bytes(dv.profile_key))
        return data

    # -- aliases -------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidInputError(f"dataset version {version!r} must be a positive integer")
        return self.repo.move_alias(_check_name(name), _check_alias(alias), version, self._user())

    def delete_alias(self, name: str, alias: str) -> None:
        self.repo.move_alias(_check_name(name), _check_alias(alias), None, self._user())
