"""Pipelines: steps declared in Python, wired by name into a DAG, run with
content-addressed caching (code hash covering project helpers), a record of
every run and step, retries, timeouts, parallel branches and resume.

Owns the ``pipeline_runs`` and ``step_runs`` records and the
``pipelines/`` area of the artifact store.
"""

from __future__ import annotations

from loopml.pipelines._step import Step, step
from loopml.pipelines.models import PipelineRun, StepRun
from loopml.pipelines.pipeline import PIPELINES, Pipeline, PipelineService, get_pipelines, resume

__all__ = [
    "PIPELINES",
    "Pipeline",
    "PipelineRun",
    "PipelineService",
    "Step",
    "StepRun",
    "get_pipelines",
    "resume",
    "step",
]
