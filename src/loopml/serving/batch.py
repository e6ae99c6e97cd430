"""Batch scoring: a registry model over a parquet or CSV file, chunk by chunk.

:func:`score_file` streams the input in chunks of ``chunk_rows`` rows (parquet
by record batches, CSV by blocks; the file is never loaded whole), checks
every chunk against the model's signature, predicts, and appends the chunk's
scores to the output. The output holds an id column to join the scores back
to the input (``id_column``, or a new ``row_id`` numbering the input rows from
0) and the prediction column(s). It is written to a temporary path next to
``dst`` and renamed at the end, so ``dst`` never holds a partial result: a
failed job leaves nothing behind.

Executors:

* ``local``: in this process.
* ``processes``: a process pool on this machine; each worker loads the model
  once (from the registry, by its resolved URI) and scores the chunks it is
  sent. At most two chunks per worker are in flight, so memory stays bounded
  whatever the file size, and chunks are written in input order.
* ``ray``: Ray Data actors, each loading the model once, score parquet row
  groups (or a CSV file) and write one part file each; ``dst`` becomes a
  folder of ``part-NNNNN.parquet`` files whose name order is the input order.
"""

from __future__ import annotations

import csv
import logging
import math
import multiprocessing as mp
import os
import re
import shutil
import sys
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopml import errors
from loopml.config import Settings, load_settings
from loopml.errors import InvalidInputError, LoopmlError, SignatureMismatchError
from loopml.registry import LoadedModel, RegistryService, get_registry
from loopml.storage import open_backend

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["EXECUTORS", "BatchResult", "score_file"]

#: the ways :func:`score_file` can run
EXECUTORS = ("local", "processes", "ray")
#: the id column added when the caller names none
ROW_ID = "row_id"

_PARQUET_SUFFIXES = {".parquet", ".pq"}
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_CSV_BLOCK_BYTES = 8 << 20
#: a failed CSV conversion is located to its row by re-reading the file up to this size
_LOCATE_MAX_BYTES = 1 << 30
#: Arrow types that signature kinds are read as from CSV (so a stray value fails at its row, not later)
_CSV_TYPES: dict[str, pa.DataType] = {
    "float": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_(), "string": pa.string(),
}
#: Arrow types of the prediction column of an empty output, by the signature's output kind
_OUTPUT_TYPES: dict[str, pa.DataType] = {
    "float": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_(), "string": pa.string(),
    "category": pa.string(), "datetime": pa.timestamp("ns"),
}
_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+): invalid value '(.*)'$",
                         re.S)


@dataclass(frozen=True)
class BatchResult:
    """What :func:`score_file` did.

    Attributes:
        rows: rows scored (and written).
        chunks: chunks scored.
        seconds: wall time of the whole job.
        output: the output file (for ``executor="ray"``, the folder of part files).
        model_uri: the version that scored, ``models:/name/version``.
        executor: ``local``, ``processes`` or ``ray``.
        columns: the output columns: the id column, then the prediction column(s).
    """

    rows: int
    chunks: int
    seconds: float
    output: Path
    model_uri: str
    executor: str
    columns: tuple[str, ...]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


# -- the input -------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    """Consecutive input rows read as one unit: a whole file, or some row groups of a parquet file."""

    path: str
    first_row: int
    rows: int  # -1 when unknown (CSV)
    row_groups: tuple[int, ...] | None = None  # None: the whole file
    row_group_rows: tuple[int, ...] = ()  # rows of each row group of the file (parquet)


@dataclass(frozen=True)
class _Source:
    path: Path
    kind: str  # parquet | csv
    delimiter: str
    columns: tuple[str, ...]  # of the (first) file
    types: dict[str, pa.DataType]  # of the (first) file's columns, as far as known
    segments: tuple[_Segment, ...]  # its files, in order
    total_rows: int  # exact for parquet; an estimate for CSV (0: unknown)


def _parquet_files(folder: Path) -> list[Path]:
    """The parquet files under ``folder`` in path order, skipping hidden ones (``.x``, ``_SUCCESS``)."""
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).parts
        if p.suffix.lower() in _PARQUET_SUFFIXES and p.is_file() and not any(s.startswith((".", "_")) for s in rel):
            found.append(p)
    return sorted(found)


def _csv_header(path: Path, delimiter: str) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        return next(csv.reader(f, delimiter=delimiter), [])


def _estimate_csv_rows(path: Path) -> int:
    """Data rows of a CSV file, estimated from the line length of its first MiB (exact for smaller files)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(1 << 20)
    lines = head.count(b"\n") + (0 if head.endswith(b"\n") or not head else 1)
    if len(head) >= size:
        return max(lines - 1, 0)
    if lines <= 1:
        return 0
    return max(int(size * lines / len(head)) - 1, 0)


def _open_source(src: Path) -> _Source:
    if not src.exists():
        raise InvalidInputError(f"input {str(src)!r} does not exist; pass a .parquet or .csv file, "
                                "or a folder of parquet files", path=str(src))
    suffix = src.suffix.lower()
    if src.is_dir() or suffix in _PARQUET_SUFFIXES:
        files = _parquet_files(src) if src.is_dir() else [src]
        if not files:
            raise InvalidInputError(f"the folder {str(src)!r} holds no parquet files; pass a .parquet or .csv file, "
                                    "or a folder of parquet files", path=str(src))
        segments, first = [], 0
        schema: pa.Schema | None = None
        for f in files:
            try:
                meta = pq.read_metadata(f)
                schema = schema or meta.schema.to_arrow_schema()
            except (pa.ArrowInvalid, OSError) as e:
                raise InvalidInputError(f"{str(f)!r} cannot be read as parquet: {e}", path=str(f)) from None
            groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
            segments.append(_Segment(str(f), first, meta.num_rows, None, groups))
            first += meta.num_rows
        assert schema is not None
        return _Source(src, "parquet", ",", tuple(schema.names), {f.name: f.type for f in schema}, tuple(segments),
                       first)
    delimiter = _CSV_SUFFIXES.get(suffix)
    if delimiter is None:
        raise InvalidInputError(f"cannot tell the format of {str(src)!r} from its extension {suffix or '(none)'!r}; "
                                "use .parquet, .pq, .csv or .tsv", path=str(src))
    header = _csv_header(src, delimiter)
    return _Source(src, "csv", delimiter, tuple(header), {}, (_Segment(str(src), 0, -1),), _estimate_csv_rows(src))


# -- what every worker needs -------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """Everything a worker (a process or a Ray actor) needs to score chunks; pickles by value."""

    model_uri: str  # resolved: models:/name/version
    settings: Settings
    name: str  # the input, as errors show it
    kind: str  # parquet | csv
    delimiter: str
    header: tuple[str, ...]  # the CSV header (to locate bad values)
    read_columns: tuple[str, ...] | None  # what to read (None: every column)
    csv_types: dict[str, pa.DataType]
    kinds: dict[str, str]  # signature column -> kind
    id_column: str | None
    id_name: str
    output_column: str
    output_kind: str | None
    output_shape: tuple[int, ...]
    proba: bool
    chunk_rows: int

    def where(self, first: int, rows: int) -> str:
        return f"rows {first}-{first + rows - 1} of {self.name}"

    def features(self, table: pa.Table) -> pa.Table:
        """The columns of a chunk the model gets (all that were read, except a non-feature id column)."""
        if self.id_column is not None and self.id_column not in self.kinds:
            return table.drop_columns([self.id_column])
        return table


class _ChunkFailed(Exception):
    """A chunk (or the model load) failed where it ran.

    Holds plain arguments, so it pickles from a worker process or a Ray actor
    to the caller, which raises :meth:`to_error` (the loopml error it stands for).
    """

    def __init__(self, error: str, message: str, problems: list[str], details: dict[str, Any]) -> None:
        super().__init__(error, message, problems, details)
        self.error, self.message, self.problems, self.details = error, message, problems, details

    def __str__(self) -> str:
        return self.message

    @classmethod
    def capture(cls, e: BaseException, *, where: str | None, model_uri: str, **details: Any) -> _ChunkFailed:
        if isinstance(e, _ChunkFailed):
            return e
        prefix = f"{where}: " if where else ""
        if isinstance(e, LoopmlError):
            kept = {k: v for k, v in e.details.items() if k != "problems"}
            return cls(type(e).__name__, prefix + e.message, list(getattr(e, "problems", None) or []),
                       {**kept, **details})
        return cls("InvalidInputError", f"{prefix}{model_uri} failed to predict ({type(e).__name__}: {e})", [],
                   details)

    def to_error(self) -> LoopmlError:
        cls = getattr(errors, self.error, None)
        if not (isinstance(cls, type) and issubclass(cls, LoopmlError)):
            cls = LoopmlError
        if issubclass(cls, SignatureMismatchError):
            return cls(self.message, problems=self.problems, **self.details)
        return cls(self.message, **self.details)


def _load_fresh(job: _Job) -> LoadedModel:
    """Load the model over a backend of its own (a worker must not share its parent's connections)."""
    backend = open_backend(job.settings)
    try:
        return RegistryService(backend).load(job.model_uri)
    finally:
        backend.close()


class _Scorer:
    """A loaded model that turns a chunk's feature columns into output columns."""

    def __init__(self, job: _Job, loaded: LoadedModel | None = None) -> None:
        self.job = job
        self.loaded = loaded if loaded is not None else _load_fresh(job)
        model = self.loaded.model
        self.predict_proba: Callable[[Any], Any] | None = getattr(model, "predict_proba", None)
        if job.proba and not callable(self.predict_proba):
            raise InvalidInputError(f"{job.model_uri} (a {type(model).__name__}) has no predict_proba, so it cannot "
                                    "score class probabilities; score without proba")

    def classes(self, k: int) -> list[str]:
        found = getattr(self.loaded.model, "classes_", None)
        if found is not None and len(found) == k:
            return [str(c) for c in found]
        return [str(j) for j in range(k)]

    def outputs(self, features: pa.Table) -> dict[str, np.ndarray]:
        """Prediction columns (``prediction``, or ``prediction_<j>`` for several outputs, then ``proba_<class>``).

        Raises:
            SignatureMismatchError: the chunk does not fit the model's signature.
        """
        job = self.job
        df = features.to_pandas()
        signature = self.loaded.signature
        if signature is not None:
            df = signature.check(df, model=job.model_uri)
        pred = np.asarray(self.loaded.predict(df, validate=False))
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred[:, 0]
        out: dict[str, np.ndarray] = {}
        if pred.ndim == 1:
            out[job.output_column] = pred
        elif pred.ndim == 2:
            out.update({f"{job.output_column}_{j}": pred[:, j] for j in range(pred.shape[1])})
        else:
            raise InvalidInputError(f"{job.model_uri} returned predictions of shape {pred.shape}; batch scoring "
                                    "writes one value or one row of values per input row")
        if job.proba and self.predict_proba is not None:
            proba = np.asarray(self.predict_proba(df))
            out.update({f"proba_{c}": proba[:, j] for j, c in enumerate(self.classes(proba.shape[1]))})
        for name, values in out.items():
            if len(values) != len(df):
                raise InvalidInputError(f"{job.model_uri} returned {len(values)} values for {name!r} "
                                        f"for {len(df)} input rows")
        return out


def _score_chunk(job: _Job, scorer: _Scorer, first: int, features: pa.Table) -> dict[str, np.ndarray]:
    try:
        return scorer.outputs(features)
    except Exception as e:
        raise _ChunkFailed.capture(e, where=job.where(first, features.num_rows), model_uri=job.model_uri,
                                   first_row=first, rows=features.num_rows) from None


def _output_table(job: _Job, first: int, ids: pa.ChunkedArray | None, columns: dict[str, np.ndarray]) -> pa.Table:
    n = len(next(iter(columns.values())))
    arrays: dict[str, Any] = {job.id_name: ids if ids is not None else pa.array(np.arange(first, first + n))}
    for name, values in columns.items():
        if name in arrays:
            raise InvalidInputError(f"the output column {name!r} has the name of the id column; "
                                    "pass another output_column or id_column", column=name)
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInputError(f"the values of {name!r} from {job.model_uri} cannot be stored in a table: {e}",
                                    column=name) from None
    return pa.table(arrays)


# -- reading chunks --------------------------------------------------------------------


def _rechunk(batches: Iterator[pa.RecordBatch], first: int, size: int) -> Iterator[tuple[int, pa.Table]]:
    """``(first row, table)`` pieces of exactly ``size`` rows (the last may be shorter)."""
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - n, batch.num_rows)
            held.append(batch.slice(0, take))
            n += take
            batch = batch.slice(take)
            if n == size:
                yield first, pa.Table.from_batches(held)
                first, held, n = first + n, [], 0
    if n:
        yield first, pa.Table.from_batches(held)


def _parquet_batches(job: _Job, seg: _Segment) -> Iterator[pa.RecordBatch]:
    with pq.ParquetFile(seg.path) as pf:
        names = pf.schema_arrow.names
        if job.id_column is not None and job.id_column not in names:
            raise InvalidInputError(f"the id column {job.id_column!r} is not in {seg.path!r}; its columns are: "
                                    f"{', '.join(names)}", column=job.id_column, path=seg.path)
        columns = None if job.read_columns is None else [c for c in job.read_columns if c in names]
        yield from pf.iter_batches(batch_size=job.chunk_rows, row_groups=seg.row_groups, columns=columns)


def _locate_csv_value(job: _Job, path: str, column: int, value: str, start_row: int) -> tuple[int, int] | None:
    """``(row, line)`` of the first row from ``start_row`` whose ``column`` holds ``value``, if found cheaply."""
    if os.path.getsize(path) > _LOCATE_MAX_BYTES:
        return None
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, delimiter=job.delimiter)
        next(reader, None)
        for row, fields in enumerate(reader):
            if row >= start_row and column < len(fields) and fields[column] == value:
                return row, reader.line_num
    return None


def _an(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _csv_failure(job: _Job, path: str, e: Exception, rows_before: int) -> _ChunkFailed:
    """A read error of a CSV block, located to its row where possible."""
    text = str(e)
    m = _CONVERSION.match(text)
    if m is None:
        first = rows_before // job.chunk_rows * job.chunk_rows
        return _ChunkFailed("InvalidInputError", f"the chunk of {job.name} starting at row {first}: {path!r} cannot "
                            f"be read as CSV: {text.splitlines()[0] if text else e!r}", [],
                            {"path": path, "first_row": first})
    index, arrow_type, value = int(m.group(1)), m.group(2), m.group(3)
    column = job.header[index] if index < len(job.header) else f"#{index}"
    found = _locate_csv_value(job, path, index, value, rows_before)
    row = found[0] if found else rows_before
    first = row // job.chunk_rows * job.chunk_rows
    at = f"at row {row} (line {found[1]} of the file)" if found else f"at row {rows_before} or after"
    where = f"the chunk of {job.name} starting at row {first}"
    details = {"first_row": first, "row": row if found else None, "column": column}
    if column in job.kinds:
        kind = job.kinds[column]
        problem = f"column {column!r} has the value {value!r} {at}, which is not {_an(kind)} {kind}"
        return _ChunkFailed("SignatureMismatchError", f"{where}: input does not match the signature of "
                            f"{job.model_uri}: {problem}. Fix or drop that row and score again", [problem], details)
    return _ChunkFailed("InvalidInputError", f"{where}: column {column!r} has the value {value!r} {at}, which is "
                        f"not {_an(arrow_type)} {arrow_type} like the rows before it; give the column one type", [], details)


def _csv_batches(job: _Job, seg: _Segment) -> Iterator[pa.RecordBatch]:
    if not job.header:  # a 0-byte file: no header, no rows
        return
    read = pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
    parse = pacsv.ParseOptions(delimiter=job.delimiter)
    convert = pacsv.ConvertOptions(include_columns=list(job.read_columns) if job.read_columns is not None else [],
                                   column_types=job.csv_types, strings_can_be_null=True)
    rows = 0
    try:
        reader = pacsv.open_csv(seg.path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise _csv_failure(job, seg.path, e, rows) from None
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise _csv_failure(job, seg.path, e, rows) from None
        rows += batch.num_rows
        yield batch


def _chunks(job: _Job, seg: _Segment) -> Iterator[tuple[int, pa.Table]]:
    batches = _parquet_batches(job, seg) if job.kind == "parquet" else _csv_batches(job, seg)
    return _rechunk(batches, seg.first_row, job.chunk_rows)


def _ids(job: _Job, table: pa.Table) -> pa.ChunkedArray | None:
    return table.column(job.id_column) if job.id_column is not None else None


# -- writing -----------------------------------------------------------------------


class _Writer:
    """Appends tables to one parquet or CSV file; the first table fixes the schema, later ones are cast to it."""

    def __init__(self, path: Path, fmt: str, delimiter: str = ",") -> None:
        self.path, self.fmt, self.delimiter = path, fmt, delimiter
        self.schema: pa.Schema | None = None
        self._out: Any = None

    def _open(self, schema: pa.Schema) -> None:
        self.schema = schema
        if self.fmt == "parquet":
            self._out = pq.ParquetWriter(self.path, schema)
        else:
            self._out = pacsv.CSVWriter(self.path, schema, write_options=pacsv.WriteOptions(delimiter=self.delimiter))

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self._open(table.schema)
        elif table.schema != self.schema:
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as e:
                raise InvalidInputError(f"a chunk's output has the columns {table.schema} but the output file has "
                                        f"{self.schema}; they cannot be reconciled ({e})") from None
        self._out.write_table(table)

    def finish(self, empty_schema: Callable[[], pa.Schema]) -> tuple[str, ...]:
        """Close the file (one without rows gets ``empty_schema()``); returns its columns."""
        if self.schema is None:
            self._open(empty_schema())
        self.close()
        assert self.schema is not None
        return tuple(self.schema.names)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _empty_schema(job: _Job, source: _Source, scorer: Callable[[], _Scorer]) -> pa.Schema:
    """The output columns when there is no row to score: from the signature (and the model's classes)."""
    id_type = source.types.get(job.id_column, pa.string()) if job.id_column is not None else pa.int64()
    fields = [pa.field(job.id_name, id_type)]
    out_type = _OUTPUT_TYPES.get(job.output_kind or "", pa.null())
    k = job.output_shape[0] if len(job.output_shape) == 1 else 1
    if k > 1:
        fields += [pa.field(f"{job.output_column}_{j}", out_type) for j in range(k)]
    else:
        fields.append(pa.field(job.output_column, out_type))
    if job.proba:
        s = scorer()
        found = getattr(s.loaded.model, "classes_", None)
        fields += [pa.field(f"proba_{c}", pa.float64()) for c in s.classes(len(found) if found is not None else 0)]
    return pa.schema(fields)


# -- executors -------------------------------------------------------------------------

Progress = Callable[[int, int], None]


class _Counter:
    """Rows and chunks written so far; reports progress."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.progress = total, progress
        self.rows = self.chunks = 0

    def add(self, rows: int, chunks: int = 1) -> None:
        self.rows += rows
        self.chunks += chunks
        if self.progress is not None:
            self.progress(self.rows, max(self.total, self.rows) if self.total else 0)


def _write_segment(job: _Job, scorer: _Scorer, seg: _Segment, writer: _Writer, counter: _Counter) -> None:
    for first, table in _chunks(job, seg):
        columns = _score_chunk(job, scorer, first, job.features(table))
        writer.write(_output_table(job, first, _ids(job, table), columns))
        counter.add(table.num_rows)


def _run_local(job: _Job, source: _Source, writer: _Writer, counter: _Counter, scorer: _Scorer) -> None:
    for seg in source.segments:
        _write_segment(job, scorer, seg, writer, counter)


@dataclass
class _WorkerState:
    job: _Job
    scorer: _Scorer | None
    error: BaseException | None


_worker_state: _WorkerState | None = None


def _init_worker(job: _Job) -> None:
    """Process-pool initializer: load the model once per worker (an error is kept and raised per chunk)."""
    global _worker_state
    try:
        _worker_state = _WorkerState(job, _Scorer(job), None)
    except Exception as e:
        _worker_state = _WorkerState(job, None, e)


def _score_in_worker(first: int, features: pa.Table) -> dict[str, np.ndarray]:
    state = _worker_state
    if state is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("batch scoring worker was not initialised")
    if state.scorer is None:
        assert state.error is not None
        raise _ChunkFailed.capture(state.error, where=None, model_uri=state.job.model_uri)
    return _score_chunk(state.job, state.scorer, first, features)


def _pool_context() -> Any:
    # fork: workers start in milliseconds and inherit imports; elsewhere the platform default (spawn)
    return mp.get_context("fork") if sys.platform.startswith("linux") else None


def _run_processes(job: _Job, source: _Source, writer: _Writer, counter: _Counter, workers: int) -> None:
    if source.kind == "parquet":
        workers = min(workers, max(1, sum(math.ceil(s.rows / job.chunk_rows) for s in source.segments)))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_init_worker,
                               initargs=(job,))
    pending: deque[tuple[int, int, pa.ChunkedArray | None, Future[dict[str, np.ndarray]]]] = deque()

    def write_oldest() -> None:
        first, rows, ids, future = pending.popleft()
        try:
            columns = future.result()
        except BrokenProcessPool:
            raise LoopmlError(f"a scoring worker process died while scoring {job.where(first, rows)} (out of "
                              "memory?); use fewer workers or smaller chunks") from None
        writer.write(_output_table(job, first, ids, columns))
        counter.add(rows)

    try:
        for seg in source.segments:
            for first, table in _chunks(job, seg):
                while len(pending) >= 2 * workers:
                    write_oldest()
                future = pool.submit(_score_in_worker, first, job.features(table))
                pending.append((first, table.num_rows, _ids(job, table), future))
        while pending:
            write_oldest()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ray(settings: Settings) -> Any:
    from loopml.core.ray import connect

    return connect(settings)


class _RayScorer:
    """A Ray Data actor: loads the model once, then scores work items, each into its own part file."""

    def __init__(self, job: _Job, out_dir: str) -> None:
        self.job, self.out_dir = job, Path(out_dir)
        self.scorer: _Scorer | None = None
        self.error: _ChunkFailed | None = None
        try:
            self.scorer = _Scorer(job)
        except Exception as e:  # raised from __call__: Ray reports a failed constructor without its cause
            self.error = _ChunkFailed.capture(e, where=None, model_uri=job.model_uri)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        if self.scorer is None:
            assert self.error is not None
            raise self.error
        done = []
        for item in batch.to_dict("records"):
            groups = item["row_groups"]
            seg = _Segment(item["path"], int(item["first_row"]), int(item["rows"]),
                           None if groups is None else tuple(int(g) for g in groups))
            writer = _Writer(self.out_dir / f"part-{int(item['index']):05d}.parquet", "parquet")
            counter = _Counter(0, None)
            try:
                _write_segment(self.job, self.scorer, seg, writer, counter)
            finally:
                writer.close()
            done.append({"index": item["index"], "rows": counter.rows, "chunks": counter.chunks})
        return pd.DataFrame(done)


def _ray_items(source: _Source, target_rows: int) -> list[dict[str, Any]]:
    """Work items: runs of consecutive row groups of about ``target_rows`` rows (a CSV file is one item)."""
    if source.kind == "csv":
        return [{"index": 0, "path": str(source.path), "first_row": 0, "rows": -1, "row_groups": None}]
    items: list[dict[str, Any]] = []

    def add(path: str, first: int, rows: int, groups: list[int]) -> None:
        if rows:
            items.append({"index": len(items), "path": path, "first_row": first, "rows": rows, "row_groups": groups})

    for seg in source.segments:
        groups: list[int] = []
        start = offset = seg.first_row
        for g, n in enumerate(seg.row_group_rows):
            groups.append(g)
            offset += n
            if offset - start >= target_rows:
                add(seg.path, start, offset - start, groups)
                groups, start = [], offset
        add(seg.path, start, offset - start, groups)
    return items


def _find_failure(e: BaseException) -> _ChunkFailed | None:
    """The :class:`_ChunkFailed` an actor raised, inside the exception Ray Data wraps it in."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if type(x) is _ChunkFailed:  # not Ray's RayTaskError(_ChunkFailed) look-alike, which lacks the fields
            return x
        stack += [x.__cause__, x.__context__, getattr(x, "cause", None)]
    return None


def _run_ray(job: _Job, source: _Source, out_dir: Path, counter: _Counter, workers: int | None,
             empty_schema: Callable[[], pa.Schema]) -> tuple[str, ...]:
    ray = _ray(job.settings)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = workers or cpus
    total = source.total_rows
    items = _ray_items(source, max(job.chunk_rows, math.ceil(total / (4 * size)) if total else 0))
    out_dir.mkdir(parents=True)
    if items:
        _ray_execute(ray, job, items, out_dir, counter, min(size, len(items)), cpus)
    parts = sorted(out_dir.glob("part-*.parquet"))
    if parts:
        return tuple(pq.read_schema(parts[0]).names)
    schema = empty_schema()  # no rows: still one part file, with the columns
    pq.ParquetWriter(out_dir / "part-00000.parquet", schema).close()
    return tuple(schema.names)


def _ray_execute(ray: Any, job: _Job, items: list[dict[str, Any]], out_dir: Path, counter: _Counter, size: int,
                 cpus: int) -> None:
    """Score ``items`` on ``size`` actors; each writes its part files into ``out_dir``."""
    with warnings.catch_warnings():
        # Ray 2.60 warns about its own deprecated fields whenever it creates its default DataContext
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\.context")
        context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.raise_original_map_exception
    context.enable_progress_bars = False  # the caller shows progress
    context.raise_original_map_exception = True  # so a _ChunkFailed reaches us, not only its traceback text
    try:
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(_RayScorer, fn_constructor_kwargs={"job": job, "out_dir": str(out_dir)}, batch_size=1,
                            batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=size),
                            num_cpus=min(1.0, cpus / size))  # more workers than CPUs share them
        for row in ds.iter_rows():
            counter.add(int(row["rows"]), int(row["chunks"]))
    except Exception as e:
        failure = _find_failure(e)
        if failure is not None:
            raise failure from None
        raise
    finally:
        context.enable_progress_bars, context.raise_original_map_exception = saved


# -- the job ---------------------------------------------------------------------------


def _output_format(dst: Path) -> tuple[str, str]:
    suffix = dst.suffix.lower()
    if suffix in _PARQUET_SUFFIXES:
        return "parquet", ","
    if suffix in _CSV_SUFFIXES:
        return "csv", _CSV_SUFFIXES[suffix]
    raise InvalidInputError(f"cannot tell the output format of {str(dst)!r} from its extension "
                            f"{suffix or '(none)'!r}; use .parquet, .pq, .csv or .tsv", path=str(dst))


def _check_dst(src: Path, dst: Path, executor: str) -> None:
    s, d = src.resolve(), dst.resolve()
    if s == d or (src.is_dir() and d.is_relative_to(s)):
        raise InvalidInputError(f"the output {str(dst)!r} would overwrite the input {str(src)!r}; "
                                "write the scores to another path", path=str(dst))
    if executor != "ray":
        _output_format(dst)
        if dst.is_dir():
            raise InvalidInputError(f"the output {str(dst)!r} is a folder; pass a file path such as "
                                    f"{str(dst / 'scores.parquet')!r}", path=str(dst))
        return
    if dst.suffix.lower() in _CSV_SUFFIXES:
        raise InvalidInputError(f"executor='ray' writes a folder of parquet part files, not CSV; pass a path such as "
                                f"{str(dst.with_suffix('.parquet'))!r}", path=str(dst))
    if dst.is_dir() and any(not p.name.startswith("part-") or p.suffix != ".parquet" for p in dst.iterdir()):
        raise InvalidInputError(f"the output folder {str(dst)!r} exists and holds files other than parquet part "
                                "files; pass a new path (an earlier batch output is replaced)", path=str(dst))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _publish(tmp: Path, dst: Path) -> None:
    """Put the finished output at ``dst``, replacing what was there."""
    if (dst.exists() and not dst.is_symlink() and dst.is_dir()) or (dst.exists() and tmp.is_dir()):
        old = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(dst, old)
        os.replace(tmp, dst)
        _remove(old)
    else:
        os.replace(tmp, dst)


def score_file(
    model_uri: str,
    src: str | Path,
    dst: str | Path,
    *,
    id_column: str | None = None,
    chunk_rows: int = 50_000,
    workers: int | None = None,
    executor: str = "processes",
    output_column: str = "prediction",
    proba: bool = False,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Score every row of ``src`` with a registry model and write the scores to ``dst``.

    The input is read in chunks of ``chunk_rows`` rows; each chunk is checked
    against the model's signature and scored. ``dst`` gets the id column
    (``id_column``, or ``row_id`` = the input row number from 0) and
    ``output_column`` (``<output_column>_<j>`` for a model with several
    outputs), then with ``proba`` one ``proba_<class>`` column per class. Rows
    are written in input order. The output is written next to ``dst`` under a
    temporary name and renamed when complete (replacing an existing file), so
    a failed job leaves no file at ``dst``.

    Args:
        model_uri: ``models:/name/3``, ``models:/name@alias`` or ``models:/name``; resolved once, at the start.
        src: a ``.parquet``/``.pq`` or ``.csv``/``.tsv`` file, or a folder of parquet files (read in path order).
        dst: a ``.parquet``/``.pq`` or ``.csv``/``.tsv`` file; for ``executor="ray"``, a folder that
            receives ``part-NNNNN.parquet`` files whose name order is the input order.
        id_column: an input column copied to the output to join on; it must exist in ``src``.
        chunk_rows: rows per chunk (the unit of validation, scoring and memory).
        workers: processes (default: the machine's CPUs) or Ray actors (default: the cluster's CPUs);
            ignored by ``executor="local"``.
        executor: ``local``, ``processes`` or ``ray`` (see the module documentation).
        output_column: name of the prediction column.
        proba: also write class probabilities (the model needs ``predict_proba``).
        settings: the project holding the model (default: the current project).
        progress: called after each chunk as ``progress(rows_done, rows_total)``; ``rows_total``
            is exact for parquet, estimated from the file size for CSV, 0 when unknown.

    Returns:
        A :class:`BatchResult`.

    Raises:
        NotFoundError: the model, version or alias does not exist.
        InvalidUriError: ``model_uri`` is not a ``models:/`` URI.
        SignatureMismatchError: a chunk does not fit the signature; the message names the
            chunk's first row (and, for a stray CSV value, its row and line) and every problem.
        InvalidInputError: ``src`` is missing or of an unknown format, ``dst`` is ``src`` or of an
            unknown format, ``id_column`` is not in ``src``, the model has no ``predict_proba``
            but ``proba`` is set, the model fails on a chunk, or an option is invalid.
    """
    started = time.perf_counter()
    if executor not in EXECUTORS:
        raise InvalidInputError(f"unknown executor {executor!r}; use one of: {', '.join(EXECUTORS)}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInputError(f"workers must be a positive integer, got {workers!r}")
    if not output_column:
        raise InvalidInputError("output_column must not be empty")
    settings = settings or load_settings()
    src_path, dst_path = Path(src).expanduser().absolute(), Path(dst).expanduser().absolute()
    source = _open_source(src_path)
    _check_dst(src_path, dst_path, executor)
    registry = get_registry(settings)
    version = registry.resolve(model_uri)
    if id_column is not None and id_column not in source.columns:
        raise InvalidInputError(f"the id column {id_column!r} is not in {str(src_path)!r}; its columns are: "
                                f"{', '.join(source.columns) or '(none)'}", column=id_column)
    id_name = id_column if id_column is not None else ROW_ID
    if output_column == id_name:
        raise InvalidInputError(f"output_column {output_column!r} is the name of the id column; pick another")
    signature = version.signature
    kinds = {c.name: c.dtype for c in signature.inputs} if signature is not None else {}
    read: tuple[str, ...] | None = None
    if signature is not None:
        read = tuple(c for c in source.columns if c in kinds or c == id_column)
    job = _Job(
        model_uri=version.uri, settings=settings, name=src_path.name, kind=source.kind, delimiter=source.delimiter,
        header=source.columns, read_columns=read,
        csv_types={c: _CSV_TYPES[k] for c, k in kinds.items() if k in _CSV_TYPES and c in source.columns},
        kinds=kinds, id_column=id_column, id_name=id_name, output_column=output_column,
        output_kind=signature.output_dtype if signature is not None else None,
        output_shape=tuple(signature.output_shape) if signature is not None else (), proba=proba,
        chunk_rows=chunk_rows,
    )
    logger.info("scoring %s with %s (executor %s)", src_path, version.uri, executor,
                extra={"model": version.name, "version": version.version})

    scorers: list[_Scorer] = []

    def scorer() -> _Scorer:  # the model in this process, loaded on first need
        if not scorers:
            scorers.append(_Scorer(job, registry.load(version)))
        return scorers[0]

    def empty_schema() -> pa.Schema:
        return _empty_schema(job, source, scorer)

    counter = _Counter(source.total_rows, progress)
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst_path.with_name(f".{dst_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if executor == "ray":
            columns = _run_ray(job, source, tmp, counter, workers, empty_schema)
        else:
            fmt, delimiter = _output_format(dst_path)
            writer = _Writer(tmp, fmt, delimiter)
            try:
                if executor == "local":
                    _run_local(job, source, writer, counter, scorer())
                else:
                    _run_processes(job, source, writer, counter, workers or os.cpu_count() or 1)
                columns = writer.finish(empty_schema)
            finally:
                writer.close()
        _publish(tmp, dst_path)
    except _ChunkFailed as f:
        _remove(tmp)
        raise f.to_error() from None
    except BaseException:
        _remove(tmp)
        raise
    if progress is not None:
        progress(counter.rows, counter.rows)
    seconds = time.perf_counter() - started
    logger.info("scored %d rows of %s with %s in %.2fs", counter.rows, src_path, version.uri, seconds,
                extra={"model": version.name, "version": version.version})
    return BatchResult(rows=counter.rows, chunks=counter.chunks, seconds=seconds, output=dst_path,
                       model_uri=version.uri, executor=executor, columns=columns)
