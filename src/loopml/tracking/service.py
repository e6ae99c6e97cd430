"""Tracking use cases: runs, params, metrics, tags, artifacts, datasets, search."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.core import new_id, now_ms
from loopml.errors import (
    ArtifactNotFoundError,
    InvalidInputError,
    InvalidMetricError,
    InvalidParamError,
    RunNotActiveError,
)
from loopml.storage.base import Backend
from loopml.tracking import _env
from loopml.tracking._buffer import MetricBuffer
from loopml.tracking._filter import parse_filter, parse_order_by
from loopml.tracking._sql import MetricRow, SqlTrackingRepository, decode_page_token, encode_page_token
from loopml.tracking.models import ArtifactInfo, DatasetRef, Experiment, Metric, Run, RunPage, RunStatus

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["MAX_PARAM_LENGTH", "TrackingService"]

MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 8000
MAX_SEARCH_RESULTS = 50_000


def _check_key(kind: str, key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(
            f"{kind} key {key!r} is invalid: it must be a non-empty string of at most {MAX_KEY_LENGTH} characters",
            key=repr(key),
        )
    return key


def encode_param(key: str, value: Any) -> tuple[str, str, str]:
    """(key, stored text, kind) for a param value.

    Raises:
        InvalidParamError: the value is not JSON-serialisable or too long.
    """
    _check_key("param", key)
    if isinstance(value, str):
        text, kind = value, "str"
    else:
        if hasattr(value, "item") and type(value).__module__ == "numpy":
            value = value.item()  # numpy scalar -> Python scalar
        if isinstance(value, Path):
            text, kind = str(value), "str"
        else:
            try:
                text, kind = json.dumps(value, sort_keys=True), "json"
            except (TypeError, ValueError) as e:
                raise InvalidParamError(
                    f"param {key!r} has a value of type {type(value).__name__} that cannot be stored ({e}); "
                    "use a str, number, bool, None, or a list/dict of those (or str(value))",
                    key=key,
                ) from None
    if len(text) > MAX_PARAM_LENGTH:
        raise InvalidParamError(
            f"param {key!r} is {len(text)} characters long, over the limit of {MAX_PARAM_LENGTH}; "
            "log large values as an artifact instead",
            key=key,
        )
    return key, text, kind


def _metric_row(run_id: str, key: Any, value: Any, step: int, timestamp: int | None) -> MetricRow:
    # fast path: the common case of a float/int value, int step, str key
    if type(value) is float and type(step) is int and type(key) is str and 0 < len(key) <= MAX_KEY_LENGTH \
            and value - value == 0.0:  # finite
        if timestamp is None:
            return (run_id, key, value, None, step, now_ms())
        if type(timestamp) is int:
            return (run_id, key, value, None, step, timestamp)
    _check_key("metric", key)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidMetricError(
            f"metric {key!r} got {value!r} of type {type(value).__name__}; metric values must be real numbers",
            key=key,
        )
    v = float(value)
    special = None
    if not math.isfinite(v):
        special = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        logger.warning("metric %r of run %s is %s; stored and flagged", key, run_id, special)
        v_store: float | None = None
    else:
        v_store = v
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidMetricError(f"metric {key!r}: step {step!r} must be an integer", key=key)
    ts = now_ms() if timestamp is None else timestamp
    if isinstance(ts, bool) or not isinstance(ts, numbers.Integral):
        raise InvalidMetricError(f"metric {key!r}: timestamp {timestamp!r} must be integer milliseconds since the epoch", key=key)
    return (run_id, key, v_store, special, int(step), int(ts))


class TrackingService:
    """Experiment tracking over one :class:`~loopml.storage.Backend`.

    Thread-safe. Metric points are buffered (see :mod:`loopml.tracking._buffer`)
    and visible to readers of this service immediately, because every read
    flushes first.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.repo = SqlTrackingRepository(backend.metadata)
        s = backend.settings
        self.buffer = MetricBuffer(self.repo.write_metrics, interval=s.metric_flush_interval, max_size=s.metric_buffer_size)
        self._experiments: dict[str, Experiment] = {}
        self._active: set[str] = set()  # runs known to be running
        self._steps: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # -- experiments -----------------------------------------------------------

    def experiment(self, name: str) -> Experiment:
        """The experiment called ``name``, created if new."""
        _check_key("experiment", name)
        exp = self._experiments.get(name)
        if exp is None:
            exp = self._experiments[name] = self.repo.get_or_create_experiment(name)
        return exp

    def list_experiments(self) -> list[Experiment]:
        return self.repo.list_experiments()

    # -- run lifecycle ---------------------------------------------------------

    def create_run(
        self,
        experiment: str = "default",
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
    ) -> str:
        """Start a run and return its id.

        Raises:
            InvalidParamError: a param cannot be stored.
            RunNotFoundError: ``parent_run_id`` does not exist.
        """
        encoded = [encode_param(k, v) for k, v in (params or {}).items()]
        tag_items = [(_check_key("tag", k), str(v)) for k, v in (tags or {}).items()]
        if parent_run_id is not None:
            self.repo.run_status(parent_run_id)  # raises if unknown
        exp = self.experiment(experiment)
        commit, dirty = _env.git_state(str(self.backend.settings.project_dir))
        run_id = new_id()
        row = {
            "id": run_id, "experiment_id": exp.id, "name": name, "status": RunStatus.RUNNING.value,
            "start_time": now_ms(), "end_time": None, "parent_run_id": parent_run_id,
            "user": _env.user_name(self.backend.settings.user), "host": _env.host_name(),
            "git_commit": commit, "git_dirty": dirty, "system": _env.system_info(),
        }
        self.repo.create_run(row, encoded, tag_items)
        with self._lock:
            self._active.add(run_id)
        return run_id

    def end_run(self, run_id: str, status: RunStatus | str = RunStatus.FINISHED) -> None:
        """Flush the run's metrics and mark it ``status`` (finished, failed or killed)."""
        status = RunStatus(status)
        if not status.terminal:
            raise InvalidInputError(f"end_run needs a terminal status (finished, failed, killed), got {status.value!r}")
        self._ensure_active(run_id)
        end = now_ms()
        self.buffer.flush(lambda batch: self.repo.finish_run(run_id, status, end, batch))
        with self._lock:
            self._active.discard(run_id)
            for k in [k for k in self._steps if k[0] == run_id]:
                del self._steps[k]

    def _ensure_active(self, run_id: str) -> None:
        if run_id in self._active:
            return
        status = self.repo.run_status(run_id)
        if status.terminal:
            raise RunNotActiveError(
                f"run {run_id} is {status.value}; it no longer accepts data. Start a new run to log more",
                run_id=run_id, status=status.value,
            )
        with self._lock:
            self._active.add(run_id)

    # -- logging -----------------------------------------------------------------

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        if not isinstance(params, Mapping):
            raise InvalidParamError(f"params must be a mapping of name to value, got {type(params).__name__}")
        encoded = [encode_param(k, v) for k, v in params.items()]
        self._ensure_active(run_id)
        if encoded:
            self.repo.log_params(run_id, encoded)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        items = [(_check_key("tag", k), str(v)) for k, v in tags.items()]
        if run_id not in self._active:
            self.repo.run_status(run_id)  # tags may be set on ended runs, but the run must exist
        if items:
            self.repo.set_tags(run_id, items)

    def log_metric(self, run_id: str, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        """Buffer one metric point. ``step`` defaults to one past the highest step logged for ``key`` here."""
        if run_id not in self._active:
            self._ensure_active(run_id)
        k = (run_id, key)
        last = self._steps.get(k, -1)
        row = _metric_row(run_id, key, value, last + 1 if step is None else step, timestamp)
        self._steps[k] = max(last, row[4])  # only a valid point uses up a step
        self.buffer.add(row)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
        if not isinstance(metrics, Mapping):
            raise InvalidMetricError(f"metrics must be a mapping of name to number, got {type(metrics).__name__}")
        if run_id not in self._active:
            self._ensure_active(run_id)
        ts = now_ms() if timestamp is None else timestamp
        rows = [
            _metric_row(run_id, key, value, self._steps.get((run_id, key), -1) + 1 if step is None else step, ts)
            for key, value in metrics.items()
        ]
        for r in rows:  # steps are used up only once every value is valid
            self._steps[(run_id, r[1])] = max(self._steps.get((run_id, r[1]), -1), r[4])
        self.buffer.extend(rows)

    def log_metric_batch(self, run_id: str, key: str, values: Sequence[float], *, steps: Sequence[int] | None = None,
                         timestamps: Sequence[int] | None = None) -> None:
        """Log a whole series of one metric in one call (e.g. a training curve)."""
        self._ensure_active(run_id)
        if steps is not None and len(steps) != len(values):
            raise InvalidMetricError(f"metric {key!r}: {len(values)} values but {len(steps)} steps")
        if timestamps is not None and len(timestamps) != len(values):
            raise InvalidMetricError(f"metric {key!r}: {len(values)} values but {len(timestamps)} timestamps")
        ts = now_ms()
        start = self._steps.get((run_id, key), -1) + 1
        rows = [
            _metric_row(run_id, key, v, steps[i] if steps is not None else start + i,
                        timestamps[i] if timestamps is not None else ts)
            for i, v in enumerate(values)
        ]
        if rows:
            self._steps[(run_id, key)] = max(start - 1, *(r[4] for r in rows))
        self.buffer.extend(rows)
        self.buffer.flush()

    def flush(self) -> None:
        """Write buffered metric points now."""
        self.buffer.flush()

    # -- artifacts and datasets ----------------------------------------------------

    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactInfo]:
        """Copy a file, or a folder recursively, into the run's artifacts.

        Args:
            local_path: file or folder to store.
            artifact_path: folder inside the run's artifacts (default: top level).

        Raises:
            InvalidInputError: ``local_path`` does not exist.
        """
        self._ensure_active(run_id)
        src = Path(local_path)
        if not src.exists():
            raise InvalidInputError(f"cannot log artifact {str(src)!r} for run {run_id}: no such file or folder")
        prefix = artifact_path.strip("/") + "/" if artifact_path else ""
        files = [(p, prefix + p.relative_to(src).as_posix()) for p in sorted(src.rglob("*")) if p.is_file()] \
            if src.is_dir() else [(src, prefix + src.name)]
        stored = []
        for path, rel in files:
            info = self.backend.blobs.put_file(f"runs/{run_id}/artifacts/{rel}", path)
            self.repo.add_artifact(run_id, rel, info.sha256, info.size)
            stored.append(ArtifactInfo(rel, info.sha256, info.size, now_ms()))
        return stored

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> ArtifactInfo:
        """Store ``data`` as the run artifact ``artifact_file``."""
        self._ensure_active(run_id)
        rel = artifact_file.strip("/")
        info = self.backend.blobs.put_bytes(f"runs/{run_id}/artifacts/{rel}", data)
        self.repo.add_artifact(run_id, rel, info.sha256, info.size)
        return ArtifactInfo(rel, info.sha256, info.size, now_ms())

    def log_text(self, run_id: str, text: str, artifact_file: str) -> ArtifactInfo:
        return self.log_bytes(run_id, text.encode(), artifact_file)

    def log_dict(self, run_id: str, data: Any, artifact_file: str) -> ArtifactInfo:
        try:
            text = json.dumps(data, indent=2, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"log_dict({artifact_file!r}): value is not JSON-serialisable: {e}") from None
        return self.log_text(run_id, text, artifact_file)

    def download_artifact(self, run_id: str, path: str, dest: str | os.PathLike[str]) -> Path:
        """Copy an artifact to ``dest`` after checking its sha256.

        Raises:
            ArtifactNotFoundError: the run has no such artifact, or its file is gone.
            ArtifactCorruptedError: the stored bytes no longer match the recorded hash.
        """
        info = self.repo.get_artifact(run_id, path.strip("/"))
        if info is None:
            self.repo.run_status(run_id)
            raise ArtifactNotFoundError(f"run {run_id} has no artifact {path!r}", run_id=run_id, path=path)
        return self.backend.blobs.get_file(f"runs/{run_id}/artifacts/{info.path}", dest, sha256=info.sha256)

    def read_artifact(self, run_id: str, path: str) -> bytes:
        info = self.repo.get_artifact(run_id, path.strip("/"))
        if info is None:
            self.repo.run_status(run_id)
            raise ArtifactNotFoundError(f"run {run_id} has no artifact {path!r}", run_id=run_id, path=path)
        return self.backend.blobs.get_bytes(f"runs/{run_id}/artifacts/{info.path}", sha256=info.sha256)

    def log_dataset(self, run_id: str, data: Any, *, name: str | None = None, context: str | None = "training") -> DatasetRef:
        """Record that the run used ``data`` (a file path or a pandas DataFrame), by content hash."""
        self._ensure_active(run_id)
        if isinstance(data, str) and data.startswith("datasets:/"):
            from loopml.data import get_data

            data = get_data(self.backend.settings).resolve(data)
        ref = dataset_ref(data, name=name, context=context)
        self.repo.add_dataset(run_id, ref)
        return ref

    # -- reading -------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        self.buffer.flush()
        return self.repo.get_run(run_id)

    def metric_history(self, run_id: str, key: str | None = None) -> list[Metric]:
        self.buffer.flush()
        self.repo.run_status(run_id)
        return self.repo.metric_history(run_id, key)

    def search_runs(
        self,
        experiments: str | Iterable[str] | None = None,
        filter: str | None = None,
        order_by: list[str] | str | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> RunPage:
        """Runs matching ``filter`` (see :mod:`loopml.tracking._filter`), one page at a time.

        Raises:
            FilterSyntaxError: the filter or order-by does not parse.
            ExperimentNotFoundError: a named experiment does not exist.
        """
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 0 < max_results <= MAX_SEARCH_RESULTS:
            raise InvalidInputError(f"max_results must be an integer from 1 to {MAX_SEARCH_RESULTS}, got {max_results!r}")
        node = parse_filter(filter)
        order = parse_order_by(order_by)
        offset = decode_page_token(page_token)
        ids = None
        if experiments is not None:
            names = [experiments] if isinstance(experiments, str) else list(experiments)
            known = [self._experiments.get(n) for n in names]
            if all(e is not None for e in known):
                ids = [e.id for e in known if e is not None]
            else:
                ids = self.repo.experiment_ids(names)
        self.buffer.flush()
        runs, total = self.repo.search(ids, node, order, offset, max_results)
        nxt = offset + len(runs)
        return RunPage(runs, encode_page_token(nxt) if nxt < total else None, total)

    def compare_runs(self, run_ids: Sequence[str]) -> pd.DataFrame:
        """A table with one column per run and a row per attribute, param and latest metric."""
        import pandas as pd

        runs = [self.get_run(r) for r in run_ids]
        columns = {}
        for run in runs:
            col: dict[str, Any] = {"name": run.name, "experiment": run.experiment, "status": run.status.value}
            col.update({f"params.{k}": v for k, v in run.params.items()})
            col.update({f"metrics.{k}": m.value for k, m in run.metrics.items()})
            columns[run.id] = col
        return pd.DataFrame(columns)

    def close(self) -> None:
        self.buffer.close()


def dataset_ref(data: Any, *, name: str | None = None, context: str | None = None) -> DatasetRef:
    """A :class:`DatasetRef` for a file path or a pandas DataFrame, hashed by content."""
    if hasattr(data, "sha256") and str(getattr(data, "uri", "")).startswith("datasets:/"):
        # a registered dataset version: the run links to it by URI and content hash
        return DatasetRef(name=name or data.name, digest=data.sha256, path=data.uri, context=context,
                          num_rows=data.num_rows, schema={c.name: c.type for c in data.columns})
    if isinstance(data, str | os.PathLike):
        p = Path(data)
        if not p.is_file():
            raise InvalidInputError(f"dataset {str(p)!r} is not a file; pass an existing file path or a DataFrame")
        from loopml.storage import sha256_file

        digest, _ = sha256_file(p)
        return DatasetRef(name=name or p.stem, digest=digest, path=str(p.resolve()), context=context)
    if type(data).__name__ == "DataFrame" and hasattr(data, "dtypes"):
        import pandas as pd

        h = hashlib.sha256()
        h.update(json.dumps([str(c) for c in data.columns]).encode())
        h.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
        schema = {str(c): str(t) for c, t in data.dtypes.items()}
        return DatasetRef(name=name or "dataframe", digest=h.hexdigest(), path=None, context=context,
                          num_rows=len(data), schema=schema)
    raise InvalidInputError(
        f"cannot log a dataset of type {type(data).__name__}; pass a file path or a pandas DataFrame"
    )
