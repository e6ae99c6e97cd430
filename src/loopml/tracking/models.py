"""Typed entities of experiment tracking."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

__all__ = [
    "ArtifactInfo",
    "DatasetRef",
    "Experiment",
    "Metric",
    "Run",
    "RunPage",
    "RunStatus",
]


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def terminal(self) -> bool:
        return self is not RunStatus.RUNNING


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    description: str | None
    created_at: int


class Metric(NamedTuple):
    """One point of a metric series.

    ``flag`` is ``"nan"``, ``"inf"`` or ``"-inf"`` for a non-finite value
    (stored and flagged rather than rejected), else None.
    """

    key: str
    value: float
    step: int
    timestamp: int

    @property
    def flag(self) -> str | None:
        if math.isnan(self.value):
            return "nan"
        if math.isinf(self.value):
            return "inf" if self.value > 0 else "-inf"
        return None


@dataclass(frozen=True)
class DatasetRef:
    """A reference from a run to the data it used: a name, where it lives and its content hash."""

    name: str
    digest: str
    path: str | None = None
    context: str | None = None
    num_rows: int | None = None
    schema: dict[str, str] | None = None


@dataclass(frozen=True)
class ArtifactInfo:
    path: str
    sha256: str
    size: int
    created_at: int


@dataclass(slots=True)
class Run:
    """A snapshot of a run as stored: attributes, params, tags and the latest value of each metric.

    Search results leave ``system``, ``datasets`` and ``artifacts`` empty; ``get_run`` fills them.
    """

    id: str
    experiment_id: int
    experiment: str
    name: str | None
    status: RunStatus
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    user: str | None
    host: str | None
    git_commit: str | None
    git_dirty: bool | None
    system: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    datasets: list[DatasetRef] = field(default_factory=list)
    artifacts: list[ArtifactInfo] = field(default_factory=list)

    @property
    def duration_ms(self) -> int | None:
        return None if self.end_time is None else self.end_time - self.start_time

    def metric(self, key: str) -> float | None:
        m = self.metrics.get(key)
        return None if m is None else m.value


@dataclass(frozen=True)
class RunPage:
    """One page of search results; pass ``next_page_token`` back for the next one (None: no more)."""

    runs: list[Run]
    next_page_token: str | None
    total: int

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)
