"""Typed entities of the model registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopml.registry.signature import Signature

__all__ = ["AliasChange", "ModelVersion", "RegisteredModel"]


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str | None
    tags: dict[str, str]
    created_at: int
    updated_at: int
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """An immutable, numbered version of a registered model.

    Attributes:
        sha256: content hash of the stored model file; checked on every load.
        run_id: the run that produced it, if any.
        datasets: dataset references of that run (name, digest, path, context).
        requirements: library versions the model needs (python, scikit-learn, torch, ...).
    """

    name: str
    version: int
    flavor: str
    artifact_key: str
    sha256: str
    size: int
    run_id: str | None
    signature: Signature | None
    requirements: dict[str, str]
    datasets: list[dict[str, Any]]
    description: str | None
    created_at: int
    created_by: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class AliasChange:
    """One move of an alias: ``version`` None means the alias was removed."""

    id: int
    name: str
    alias: str
    version: int | None
    previous_version: int | None
    action: str  # set | rollback | delete
    changed_at: int
    changed_by: str | None
