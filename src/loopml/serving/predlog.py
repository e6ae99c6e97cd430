"""The prediction log: every served request's inputs and outputs, as parquet in the artifact store.

Serving appends each answered request to an in-memory buffer (a list append:
nothing on the request path waits for storage). A background thread flushes the
buffer every ``flush_interval`` seconds, or sooner when ``flush_rows`` rows are
waiting, as parquet files partitioned by deployment and day::

    predictions/<deployment>/date=2026-11-23/part-<ms>-<model>-v<version>-<id>.parquet
    feedback/<deployment>/date=2026-11-23/part-<ms>-<id>.parquet
    errors/<deployment>/date=2026-11-23/part-<ms>-<id>.parquet

Prediction rows: ``request_id``, ``row`` (position in its request), ``ts``
(UTC), ``deployment``, ``variant``, ``role`` (``live``/``shadow``), ``model``,
``version``, ``latency_ms``, ``inputs`` (a struct of the input columns) and
``prediction``. Feedback rows: ``request_id``, ``row``, ``ts``, ``label``.
Error rows (requests answered with a 4xx/5xx, for the error rate): ``request_id``,
``ts``, ``endpoint``, ``status``, ``error_code``, ``latency_ms``.

Durability: a clean shutdown (SIGTERM, Ctrl-C, the server's lifespan end) flushes
everything. A crash (``kill -9``, power loss) loses at most what arrived since
the last flush: at most ``flush_interval`` seconds (default 1 s) of requests.
If the store is unreachable, rows stay buffered and are retried at the next
flush, up to ``max_buffer_rows``; beyond that new rows are dropped and counted
(``dropped`` and the ``loopml_prediction_log_dropped_rows_total`` metric) rather
than slowing requests down or exhausting memory.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.serving.payload import Input

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.config import Settings
    from loopml.storage.base import BlobStore

__all__ = ["PredictionLog", "match_labels", "read_errors", "read_feedback", "read_predictions", "read_scored"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Prediction:
    deployment: str
    variant: str
    role: str
    model: str
    version: int
    request_id: str
    ts_ms: int
    latency_ms: float
    x: Input
    y: np.ndarray


@dataclass(frozen=True, slots=True)
class _Error:
    deployment: str
    request_id: str
    ts_ms: int
    endpoint: str
    status: int
    error_code: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class _Feedback:
    deployment: str
    request_id: str
    ts_ms: int
    labels: tuple[Any, ...]


def _day(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


class PredictionLog:
    """Buffered, background-flushed writer of predictions and feedback labels."""

    def __init__(self, blobs: BlobStore, *, flush_interval: float = 1.0, flush_rows: int = 20_000,
                 max_buffer_rows: int = 2_000_000) -> None:
        self.blobs = blobs
        self.flush_interval = flush_interval
        self.flush_rows = flush_rows
        self.max_buffer_rows = max_buffer_rows
        self._predictions: list[_Prediction] = []
        self._feedback: list[_Feedback] = []
        self._errors: list[_Error] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rows_logged = 0
        self.rows_written = 0
        self.dropped = 0
        self.parts_written = 0
        self.last_error: str | None = None

    # -- the request path ---------------------------------------------------------------

    def log(self, *, deployment: str, variant: str, role: str, model: str, version: int, request_id: str,
            ts_ms: int, latency_ms: float, x: Input, y: np.ndarray) -> None:
        """Buffer one answered request (constant time; never blocks on storage)."""
        item = _Prediction(deployment, variant, role, model, version, request_id, ts_ms, latency_ms, x, y)
        with self._lock:
            if self._rows + x.n > self.max_buffer_rows:
                self.dropped += x.n
                return
            self._predictions.append(item)
            self._rows += x.n
            self.rows_logged += x.n
        if self._rows >= self.flush_rows:
            self._wake.set()

    def feedback(self, *, deployment: str, request_id: str, labels: Sequence[Any], ts_ms: int) -> None:
        """Buffer ground-truth labels for the rows of an earlier request."""
        with self._lock:
            self._feedback.append(_Feedback(deployment, request_id, ts_ms, tuple(labels)))
            self._rows += len(labels)
        if self._rows >= self.flush_rows:
            self._wake.set()

    def error(self, *, deployment: str, request_id: str, ts_ms: int, endpoint: str, status: int, error_code: str,
              latency_ms: float) -> None:
        """Buffer a request that was answered with an error (it has no prediction)."""
        with self._lock:
            if self._rows + 1 > self.max_buffer_rows:
                self.dropped += 1
                return
            self._errors.append(_Error(deployment, request_id, ts_ms, endpoint, status, error_code, latency_ms))
            self._rows += 1

    @property
    def buffered_rows(self) -> int:
        return self._rows

    # -- the background thread ----------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="loopml-prediction-log", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception as e:  # kept buffered; retried at the next flush
                self.last_error = f"{type(e).__name__}: {e}"
                logger.warning("prediction log: flush failed, will retry: %s", self.last_error)

    def close(self) -> None:
        """Stop the thread and write everything still buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    # -- writing -------------------------------------------------------------------------

    def flush(self) -> int:
        """Write what is buffered now; returns the number of rows written.

        Raises:
            Exception: the store failed; the rows stay buffered.
        """
        with self._flush_lock:
            with self._lock:
                preds, self._predictions = self._predictions, []
                fbs, self._feedback = self._feedback, []
                errs, self._errors = self._errors, []
                self._rows = 0
            if not preds and not fbs and not errs:
                return 0
            # one part file per stream, deployment and day (and, for predictions, per model version and
            # input layout, so each file has one schema)
            groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
            for p in preds:
                groups[("predictions", p.deployment, _day(p.ts_ms), f"-{_safe(p.model)}-v{p.version}", p.variant,
                        p.x.columns, p.x.array is not None)].append(p)
            for f in fbs:
                groups[("feedback", f.deployment, _day(f.ts_ms), "")].append(f)
            for e in errs:
                groups[("errors", e.deployment, _day(e.ts_ms), "")].append(e)
            parts = list(groups.items())
            written = done = 0
            try:
                for (stream, dep, day, tag, *_), items in parts:
                    key = (f"{stream}/{_safe(dep)}/date={day}/part-{int(time.time() * 1000)}{tag}"
                           f"-{uuid.uuid4().hex[:8]}.parquet")
                    written += self._write(key, _TABLES[stream](items))
                    done += 1
            finally:
                left = parts[done:]
                back_p = [x for (stream, *_), items in left if stream == "predictions" for x in items]
                back_f = [x for (stream, *_), items in left if stream == "feedback" for x in items]
                back_e = [x for (stream, *_), items in left if stream == "errors" for x in items]
                with self._lock:  # what was not written goes back, ahead of newer rows
                    self._predictions[:0] = back_p
                    self._feedback[:0] = back_f
                    self._errors[:0] = back_e
                    self._rows += sum(p.x.n for p in back_p) + sum(len(f.labels) for f in back_f) + len(back_e)
            self.rows_written += written
            self.last_error = None
            return written

    def _write(self, key: str, table: pa.Table) -> int:
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        self.blobs.put_bytes(key, buf.getvalue())
        self.parts_written += 1
        return int(table.num_rows)


def _prediction_table(items: list[_Prediction]) -> pa.Table:
    import pyarrow as pa

    counts = np.array([p.x.n for p in items])
    n = int(counts.sum())
    rows = np.concatenate([np.arange(c, dtype=np.int32) for c in counts])
    first = items[0]
    if first.x.array is not None:
        matrix = np.concatenate([p.x.array for p in items if p.x.array is not None])
        inputs = pa.StructArray.from_arrays([pa.array(matrix[:, j]) for j in range(matrix.shape[1])],
                                            names=list(first.x.columns))
    else:
        import pandas as pd

        frame = pd.concat([p.x.to_frame() for p in items], ignore_index=True)
        tbl = pa.Table.from_pandas(frame, preserve_index=False)
        inputs = pa.StructArray.from_arrays(tbl.columns, names=[str(c) for c in frame.columns])
    ys = np.concatenate([np.asarray(p.y) for p in items])
    prediction = pa.array(ys.tolist()) if ys.ndim > 1 or ys.dtype.kind == "O" else pa.array(ys)

    def repeat(values: Iterable[Any]) -> np.ndarray:
        return np.repeat(np.array(list(values), dtype=object), counts)

    return pa.table({
        "request_id": pa.array(repeat(p.request_id for p in items), type=pa.string()),
        "row": pa.array(rows),
        "ts": pa.array(np.repeat(np.array([p.ts_ms for p in items], dtype="datetime64[ms]"), counts),
                       type=pa.timestamp("ms", tz="UTC")),
        "deployment": pa.array([first.deployment] * n, type=pa.string()),
        "variant": pa.array([first.variant] * n, type=pa.string()),
        "role": pa.array(repeat(p.role for p in items), type=pa.string()),
        "model": pa.array([first.model] * n, type=pa.string()),
        "version": pa.array([first.version] * n, type=pa.int32()),
        "latency_ms": pa.array(np.repeat(np.array([p.latency_ms for p in items]), counts)),
        "inputs": inputs,
        "prediction": prediction,
    })


def _feedback_table(items: list[_Feedback]) -> pa.Table:
    import pyarrow as pa

    ids, rows, ts, labels = [], [], [], []
    for f in items:
        for i, label in enumerate(f.labels):
            ids.append(f.request_id)
            rows.append(i)
            ts.append(f.ts_ms)
            labels.append(label)
    try:
        label_arr = pa.array(labels)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them as text
        label_arr = pa.array([None if v is None else str(v) for v in labels], type=pa.string())
    return pa.table({
        "request_id": pa.array(ids, type=pa.string()),
        "row": pa.array(rows, type=pa.int32()),
        "ts": pa.array(np.array(ts, dtype="datetime64[ms]"), type=pa.timestamp("ms", tz="UTC")),
        "label": label_arr,
    })


def _error_table(items: list[_Error]) -> pa.Table:
    import pyarrow as pa

    return pa.table({
        "request_id": pa.array([e.request_id for e in items], type=pa.string()),
        "ts": pa.array(np.array([e.ts_ms for e in items], dtype="datetime64[ms]"), type=pa.timestamp("ms", tz="UTC")),
        "endpoint": pa.array([e.endpoint for e in items], type=pa.string()),
        "status": pa.array([e.status for e in items], type=pa.int16()),
        "error_code": pa.array([e.error_code for e in items], type=pa.string()),
        "latency_ms": pa.array([e.latency_ms for e in items], type=pa.float64()),
    })


_TABLES: dict[str, Callable[[list[Any]], pa.Table]] = {
    "predictions": _prediction_table, "feedback": _feedback_table, "errors": _error_table,
}


# -- reading ---------------------------------------------------------------------------


def _read(blobs: BlobStore, prefix: str, since_ms: int | None, until_ms: int | None) -> pa.Table | None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    first_day = _day(since_ms) if since_ms is not None else None
    last_day = _day(until_ms) if until_ms is not None else None
    tables = []
    for key in blobs.list(prefix):
        if not key.endswith(".parquet"):
            continue
        day = next((part[5:] for part in key.split("/") if part.startswith("date=")), None)
        if day is not None and ((first_day and day < first_day) or (last_day and day > last_day)):
            continue
        tables.append(pq.read_table(io.BytesIO(blobs.get_bytes(key))))
    if not tables:
        return None
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # e.g. labels sent as numbers one day, as text the next
        table = pa.concat_tables(_as_text_where_types_differ(tables), promote_options="permissive")
    if since_ms is not None:
        table = table.filter(pc.greater_equal(table["ts"], pa.scalar(since_ms, pa.timestamp("ms", tz="UTC"))))
    if until_ms is not None:
        table = table.filter(pc.less(table["ts"], pa.scalar(until_ms, pa.timestamp("ms", tz="UTC"))))
    keys = [k for k in ("ts", "request_id", "row") if k in table.column_names]
    return table.sort_by([(k, "ascending") for k in keys])


def _as_text_where_types_differ(tables: list[pa.Table]) -> list[pa.Table]:
    import pyarrow as pa
    import pyarrow.compute as pc

    types: dict[str, set[str]] = defaultdict(set)
    for t in tables:
        for f in t.schema:
            if not pa.types.is_null(f.type):
                types[f.name].add(str(f.type))
    mixed = {name for name, seen in types.items() if len(seen) > 1}
    out = []
    for t in tables:
        for name in mixed & set(t.column_names):
            i = t.column_names.index(name)
            t = t.set_column(i, name, pc.cast(t[name], pa.string()))
        out.append(t)
    return out


def _blobs(settings: Settings | None) -> BlobStore:
    from loopml.storage import get_backend

    return get_backend(settings).blobs


_EMPTY: dict[str, dict[str, str]] = {  # the columns of a stream with no file yet
    "predictions": {"request_id": "string", "row": "int32", "ts": "ts", "prediction": "float64"},
    "feedback": {"request_id": "string", "row": "int32", "ts": "ts", "label": "float64"},
    "errors": {"request_id": "string", "ts": "ts", "endpoint": "string", "status": "int16", "error_code": "string",
               "latency_ms": "float64"},
}


def _stream(kind: str, deployment: str, since_ms: int | None, until_ms: int | None,
            settings: Settings | None) -> pa.Table:
    import pyarrow as pa

    table = _read(_blobs(settings), f"{kind}/{_safe(deployment)}", since_ms, until_ms)
    if table is not None:
        return table
    types = {"ts": pa.timestamp("ms", tz="UTC")}
    return pa.table({name: pa.array([], types.get(t) or pa.type_for_alias(t)) for name, t in _EMPTY[kind].items()})


def read_predictions(deployment: str, *, since_ms: int | None = None, until_ms: int | None = None,
                     settings: Settings | None = None) -> pa.Table:
    """The logged predictions of ``deployment`` (optionally within ``[since_ms, until_ms)``), oldest first.

    ``inputs`` is a struct column; ``table.column("inputs").flatten()`` or DuckDB's
    ``inputs.<column>`` reach the features. Files of different model versions are
    merged by column name.
    """
    return _stream("predictions", deployment, since_ms, until_ms, settings)


def read_feedback(deployment: str, *, since_ms: int | None = None, until_ms: int | None = None,
                  settings: Settings | None = None) -> pa.Table:
    """The feedback labels received for ``deployment``'s requests, oldest first."""
    return _stream("feedback", deployment, since_ms, until_ms, settings)


def read_errors(deployment: str, *, since_ms: int | None = None, until_ms: int | None = None,
                settings: Settings | None = None) -> pa.Table:
    """The requests of ``deployment`` answered with an error (status, error code, latency), oldest first."""
    return _stream("errors", deployment, since_ms, until_ms, settings)


def match_labels(preds: pa.Table, labels: pa.Table, *, join_type: str = "left outer") -> pa.Table:
    """``__at`` (the position of a prediction row) and ``label`` for the prediction rows that have a
    label (``"inner"``) or for every row (``"left outer"``, null when unlabelled), in prediction order.
    The newest label per (request, row) wins."""
    import numpy as np
    import pyarrow as pa

    labels = labels.select(["request_id", "row", "label"])
    if labels.num_rows:
        labels = labels.group_by(["request_id", "row"], use_threads=False).aggregate([("label", "last")]) \
            .rename_columns(["request_id", "row", "label"])
    # join on the keys alone (Arrow cannot carry the struct of inputs through a join), then put
    # the labels back in the predictions' order
    keys = preds.select(["request_id", "row"]).append_column("__at", pa.array(np.arange(preds.num_rows)))
    return keys.join(labels, keys=["request_id", "row"], join_type=join_type).sort_by("__at")


def read_scored(deployment: str, *, since_ms: int | None = None, until_ms: int | None = None,
                settings: Settings | None = None) -> pa.Table:
    """Live predictions joined with their feedback labels (rows without a label have ``label`` null)."""
    import pyarrow.compute as pc

    preds = read_predictions(deployment, since_ms=since_ms, until_ms=until_ms, settings=settings)
    if "role" in preds.column_names:
        preds = preds.filter(pc.equal(preds["role"], "live"))
    labels = read_feedback(deployment, settings=settings)
    matched = match_labels(preds, labels, join_type="left outer")
    return preds.append_column("label", matched["label"])
