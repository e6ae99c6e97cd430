"""Serving: the HTTP prediction service, deployments, API keys, the prediction log, batch scoring.

Owns the ``deployments``, ``deployment_history`` and ``api_keys`` records and the
``predictions/`` and ``feedback/`` areas of the artifact store. The names below
load their module on first use, so ``import loopml.serving`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.serving.app import ServeOptions, ServingState, create_app
    from loopml.serving.auth import ApiKey, KeyService, get_keys
    from loopml.serving.batch import BatchResult, score_file
    from loopml.serving.batching import BatchConfig
    from loopml.serving.deployments import Deployment, DeploymentService, Variant, get_deployments
    from loopml.serving.export import export
    from loopml.serving.predlog import PredictionLog, read_feedback, read_predictions, read_scored
    from loopml.serving.server import BackgroundServer, run_server

__all__ = [
    "ApiKey",
    "BackgroundServer",
    "BatchConfig",
    "BatchResult",
    "Deployment",
    "DeploymentService",
    "KeyService",
    "PredictionLog",
    "ServeOptions",
    "ServingState",
    "Variant",
    "create_app",
    "export",
    "get_deployments",
    "get_keys",
    "read_feedback",
    "read_predictions",
    "read_scored",
    "run_server",
    "score_file",
]

_WHERE = {
    "ServeOptions": "app", "ServingState": "app", "create_app": "app",
    "ApiKey": "auth", "KeyService": "auth", "get_keys": "auth",
    "BatchResult": "batch", "score_file": "batch",
    "BatchConfig": "batching",
    "Deployment": "deployments", "DeploymentService": "deployments", "Variant": "deployments",
    "get_deployments": "deployments",
    "export": "export",
    "PredictionLog": "predlog", "read_feedback": "predlog", "read_predictions": "predlog", "read_scored": "predlog",
    "BackgroundServer": "server", "run_server": "server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"loopml.serving.{module}"), name)
