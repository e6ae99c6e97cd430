"""The everyday API: ``with loopml.start_run(...) as run:``.

A run started here is *active* for the current thread until its block
ends; the module-level ``log_*`` functions write to it. An exception inside
the block marks the run failed (``KeyboardInterrupt``: killed) and is
re-raised; runs still open at interpreter exit are marked finished.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopml.config import Settings
from loopml.errors import ConflictError, RunNotActiveError
from loopml.storage import get_service, reset_services
from loopml.tracking.models import ArtifactInfo, DatasetRef, Metric, Run, RunPage, RunStatus
from loopml.tracking.service import TrackingService

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ActiveRun",
    "active_run",
    "compare_runs",
    "end_run",
    "get_run",
    "get_tracking",
    "log_artifact",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "metric_history",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
]

_local = threading.local()
_open_runs: dict[str, ActiveRun] = {}


def get_tracking(settings: Settings | None = None) -> TrackingService:
    """The process-wide :class:`TrackingService` for ``settings`` (default: the project's)."""
    return get_service("tracking", TrackingService, settings)


def _stack() -> list[ActiveRun]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


class ActiveRun:
    """A handle on a running run. Use it as a context manager or call :meth:`end`."""

    def __init__(self, service: TrackingService, run_id: str, experiment: str) -> None:
        self.service = service
        self.id = run_id
        self.experiment = experiment
        self.status = RunStatus.RUNNING

    def _check(self) -> None:
        if self.status.terminal:
            raise RunNotActiveError(
                f"run {self.id} is {self.status.value}; it no longer accepts data. Start a new run to log more",
                run_id=self.id,
            )

    def log_param(self, key: str, value: Any) -> None:
        self._check()
        self.service.log_params(self.id, {key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._check()
        self.service.log_params(self.id, params)

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        if self.status is not RunStatus.RUNNING:
            self._check()
        self.service.log_metric(self.id, key, value, step, timestamp)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
        self._check()
        self.service.log_metrics(self.id, metrics, step, timestamp)

    def log_metric_batch(self, key: str, values: Sequence[float], *, steps: Sequence[int] | None = None,
                         timestamps: Sequence[int] | None = None) -> None:
        self._check()
        self.service.log_metric_batch(self.id, key, values, steps=steps, timestamps=timestamps)

    def set_tag(self, key: str, value: Any) -> None:
        self.service.set_tags(self.id, {key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.service.set_tags(self.id, tags)

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactInfo]:
        self._check()
        return self.service.log_artifact(self.id, local_path, artifact_path)

    def log_text(self, text: str, artifact_file: str) -> ArtifactInfo:
        self._check()
        return self.service.log_text(self.id, text, artifact_file)

    def log_dict(self, data: Any, artifact_file: str) -> ArtifactInfo:
        self._check()
        return self.service.log_dict(self.id, data, artifact_file)

    def log_dataset(self, data: Any, *, name: str | None = None, context: str | None = "training") -> DatasetRef:
        self._check()
        return self.service.log_dataset(self.id, data, name=name, context=context)

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        """End the run with ``status``; ending an ended run does nothing."""
        if self.status.terminal:
            return
        self.service.end_run(self.id, status)
        self.status = RunStatus(status)
        _open_runs.pop(self.id, None)
        stack = _stack()
        if self in stack:
            stack.remove(self)

    @property
    def info(self) -> Run:
        """The run as stored now (params, tags, latest metrics, ...)."""
        return self.service.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.end(RunStatus.FINISHED)
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end(RunStatus.KILLED)
        else:
            if exc is not None:
                try:
                    self.service.set_tags(self.id, {"loopml.error": f"{exc_type.__name__}: {exc}"[:5000]})
                except Exception:  # never mask the user's exception
                    pass
            self.end(RunStatus.FAILED)

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, experiment={self.experiment!r}, status={self.status.value!r})"


def start_run(
    experiment: str | None = None,
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
    settings: Settings | None = None,
) -> ActiveRun:
    """Start a run and make it the active run of this thread.

    Args:
        experiment: experiment name, created if new (default: the parent's, else ``"default"``).
        name: a human-readable run name.
        params: params to log at once.
        tags: tags to set at once.
        nested: start a child of the active run instead of failing when one is active.
        settings: project settings (default: :func:`loopml.config.load_settings`).

    Raises:
        ConflictError: a run is already active and ``nested`` is false.
        InvalidParamError: a param cannot be stored.
    """
    stack = _stack()
    parent = stack[-1] if stack else None
    if parent is not None and not nested:
        raise ConflictError(
            f"run {parent.id} is already active in this thread; end it first, or pass nested=True to start a child run"
        )
    service = parent.service if (parent is not None and settings is None) else get_tracking(settings)
    exp = experiment or (parent.experiment if parent is not None else "default")
    run_id = service.create_run(exp, name=name, params=params, tags=tags,
                                parent_run_id=parent.id if parent is not None else None)
    run = ActiveRun(service, run_id, exp)
    stack.append(run)
    _open_runs[run_id] = run
    return run


def active_run() -> ActiveRun | None:
    """The innermost active run of this thread, or None."""
    stack = _stack()
    return stack[-1] if stack else None


def _require_active() -> ActiveRun:
    run = active_run()
    if run is None:
        raise RunNotActiveError("no run is active; wrap the code in `with loopml.start_run(...):`")
    return run


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    """End the active run, if any."""
    run = active_run()
    if run is not None:
        run.end(status)


def log_param(key: str, value: Any) -> None:
    _require_active().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _require_active().log_params(params)


def log_metric(key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
    _require_active().log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
    _require_active().log_metrics(metrics, step, timestamp)


def set_tag(key: str, value: Any) -> None:
    _require_active().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    _require_active().set_tags(tags)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactInfo]:
    return _require_active().log_artifact(local_path, artifact_path)


def log_dataset(data: Any, *, name: str | None = None, context: str | None = "training") -> DatasetRef:
    return _require_active().log_dataset(data, name=name, context=context)


def get_run(run_id: str, *, settings: Settings | None = None) -> Run:
    """The stored run ``run_id``. Raises RunNotFoundError."""
    return get_tracking(settings).get_run(run_id)


def search_runs(
    experiments: str | Iterable[str] | None = None,
    filter: str | None = None,
    order_by: list[str] | str | None = None,
    max_results: int = 1000,
    page_token: str | None = None,
    *,
    settings: Settings | None = None,
) -> RunPage:
    """Search runs; see :meth:`TrackingService.search_runs`."""
    return get_tracking(settings).search_runs(experiments, filter, order_by, max_results, page_token)


def metric_history(run_id: str, key: str | None = None, *, settings: Settings | None = None) -> list[Metric]:
    return get_tracking(settings).metric_history(run_id, key)


def compare_runs(run_ids: Sequence[str], *, settings: Settings | None = None) -> pd.DataFrame:
    return get_tracking(settings).compare_runs(run_ids)


def download_artifact(run_id: str, path: str, dest: str | os.PathLike[str], *, settings: Settings | None = None) -> Path:
    return get_tracking(settings).download_artifact(run_id, path, dest)


def _end_open_runs_at_exit() -> None:
    for run in list(_open_runs.values()):
        try:
            run.end(RunStatus.FINISHED)
        except Exception:
            pass


def reset() -> None:
    """Forget cached services and active runs (tests, or after changing settings)."""
    reset_services("tracking")
    _open_runs.clear()
    _local.stack = []


atexit.register(_end_open_runs_at_exit)
