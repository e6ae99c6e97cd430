"""Typed records of pipeline runs and step executions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PipelineRun", "StepRun"]


@dataclass
class StepRun:
    """One step's execution within a pipeline run.

    ``status``: pending, running, done, cached (outputs reused from ``cached_from``),
    failed or skipped (an upstream step failed). ``cache_miss`` says why an earlier
    result could not be reused.
    """

    id: int
    run_id: str
    step: str
    status: str
    attempts: int
    cache_key: str | None
    code_hash: str | None
    input_hashes: dict[str, str]
    params: dict[str, Any]
    outputs: dict[str, dict[str, Any]]
    cached_from: int | None
    cache_miss: str | None
    started_at: int | None
    ended_at: int | None
    logs: str | None
    error: str | None

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


@dataclass
class PipelineRun:
    """A run of a pipeline: parameters, status, and its step executions in DAG order."""

    id: str
    pipeline: str
    status: str  # running | finished | failed
    params: dict[str, Any]
    seed: int
    cache: bool
    executor: str
    trigger: str | None
    git_commit: str | None
    started_at: int
    ended_at: int | None
    error: str | None
    steps: list[StepRun] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # filled by Pipeline.run for the caller

    def step(self, name: str) -> StepRun:
        for s in self.steps:
            if s.step == name:
                return s
        raise KeyError(name)
