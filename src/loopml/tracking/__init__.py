"""Experiment tracking: experiments, runs, params, metric series, tags,
artifacts and dataset references, with search and comparison.

Owns the ``experiments``, ``runs``, ``params``, ``tags``, ``metrics``,
``latest_metrics``, ``run_artifacts`` and ``run_datasets`` records.
"""

from loopml.tracking.fluent import (
    ActiveRun,
    active_run,
    compare_runs,
    download_artifact,
    end_run,
    get_run,
    get_tracking,
    log_artifact,
    log_dataset,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    metric_history,
    search_runs,
    set_tag,
    set_tags,
    start_run,
)
from loopml.tracking.models import ArtifactInfo, DatasetRef, Experiment, Metric, Run, RunPage, RunStatus
from loopml.tracking.service import TrackingService

__all__ = [
    "ActiveRun",
    "ArtifactInfo",
    "DatasetRef",
    "Experiment",
    "Metric",
    "Run",
    "RunPage",
    "RunStatus",
    "TrackingService",
    "active_run",
    "compare_runs",
    "download_artifact",
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
