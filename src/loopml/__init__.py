"""loopml: the machine-learning lifecycle in one package.

The public API is loaded lazily, so ``import loopml`` stays cheap: heavy
libraries (SQLAlchemy, pandas, scikit-learn, torch) load only when a feature
that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # tracking
    "start_run": "loopml.tracking",
    "active_run": "loopml.tracking",
    "end_run": "loopml.tracking",
    "log_param": "loopml.tracking",
    "log_params": "loopml.tracking",
    "log_metric": "loopml.tracking",
    "log_metrics": "loopml.tracking",
    "set_tag": "loopml.tracking",
    "set_tags": "loopml.tracking",
    "log_artifact": "loopml.tracking",
    "log_dataset": "loopml.tracking",
    "get_run": "loopml.tracking",
    "search_runs": "loopml.tracking",
    "metric_history": "loopml.tracking",
    "compare_runs": "loopml.tracking",
    "download_artifact": "loopml.tracking",
    "RunStatus": "loopml.tracking",
    # pipelines
    "step": "loopml.pipelines",
    "Pipeline": "loopml.pipelines",
    # configuration and errors
    "Settings": "loopml.config",
    "load_settings": "loopml.config",
    "LoopmlError": "loopml.errors",
}
_SUBMODULES = ("config", "data", "errors", "models", "pipelines", "registry", "sklearn", "storage", "tracking")

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])

if TYPE_CHECKING:
    from loopml import config, data, errors, models, pipelines, registry, sklearn, storage, tracking
    from loopml.config import Settings, load_settings
    from loopml.errors import LoopmlError
    from loopml.pipelines import Pipeline, step
    from loopml.tracking import (
        RunStatus,
        active_run,
        compare_runs,
        download_artifact,
        end_run,
        get_run,
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"loopml.{name}")
    raise AttributeError(f"module 'loopml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
