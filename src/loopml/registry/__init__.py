"""Model registry: registered models, immutable numbered versions with
content hashes, signatures and flavors, aliases with history and rollback,
and ``models:/`` URIs.

Owns the ``registered_models``, ``model_versions``, ``model_tags``,
``model_version_tags``, ``model_aliases`` and ``alias_history`` records.
Also available as :mod:`loopml.models`.
"""

from __future__ import annotations

from typing import Any

from loopml.config import Settings
from loopml.registry.models import AliasChange, ModelVersion, RegisteredModel
from loopml.registry.service import LoadedModel, RegistryService
from loopml.registry.signature import ColumnSpec, Signature, infer_signature
from loopml.registry.uri import ModelRef, parse_model_uri
from loopml.storage import get_service, reset_services

__all__ = [
    "AliasChange",
    "ColumnSpec",
    "LoadedModel",
    "ModelRef",
    "ModelVersion",
    "RegisteredModel",
    "RegistryService",
    "Signature",
    "alias_history",
    "create_model",
    "delete_alias",
    "get_model",
    "get_registry",
    "get_version",
    "infer_signature",
    "list_models",
    "list_versions",
    "load",
    "parse_model_uri",
    "register",
    "resolve",
    "rollback_alias",
    "set_alias",
    "update_version",
]

def get_registry(settings: Settings | None = None) -> RegistryService:
    """The process-wide :class:`RegistryService` for ``settings`` (default: the project's)."""
    return get_service("registry", RegistryService, settings)


def register(model: Any, name: str, *, input_example: Any = None, signature: Signature | None = None,
             run_id: str | None = None, datasets: list[dict[str, Any]] | None = None, description: str | None = None,
             tags: dict[str, Any] | None = None, flavor: str | None = None, settings: Settings | None = None) -> ModelVersion:
    """Register ``model`` as the next version of ``name``; see :meth:`RegistryService.register`.

    Inside ``with loopml.start_run(...)``, ``run_id`` defaults to the active run and
    ``settings`` to that run's project.
    """
    from loopml.tracking import active_run

    run = active_run()
    if run is not None:
        run_id = run_id or run.id
        settings = settings or run.service.backend.settings
    return get_registry(settings).register(
        model, name, input_example=input_example, signature=signature, run_id=run_id,
        datasets=datasets, description=description, tags=tags, flavor=flavor,
    )


def load(uri: str, *, settings: Settings | None = None) -> LoadedModel:
    """Load ``models:/name/3``, ``models:/name@alias`` or ``models:/name/latest``."""
    return get_registry(settings).load(uri)


def resolve(uri: str, *, settings: Settings | None = None) -> ModelVersion:
    return get_registry(settings).resolve(uri)


def create_model(name: str, *, description: str | None = None, tags: dict[str, Any] | None = None,
                 settings: Settings | None = None) -> RegisteredModel:
    return get_registry(settings).create_model(name, description=description, tags=tags)


def get_model(name: str, *, settings: Settings | None = None) -> RegisteredModel:
    return get_registry(settings).get_model(name)


def list_models(*, settings: Settings | None = None) -> list[RegisteredModel]:
    return get_registry(settings).list_models()


def get_version(name: str, version: int | None = None, *, settings: Settings | None = None) -> ModelVersion:
    return get_registry(settings).get_version(name, version)


def list_versions(name: str, *, settings: Settings | None = None) -> list[ModelVersion]:
    return get_registry(settings).list_versions(name)


def update_version(name: str, version: int, *, description: str | None = None, tags: dict[str, Any] | None = None,
                   settings: Settings | None = None) -> ModelVersion:
    return get_registry(settings).update_version(name, version, description=description, tags=tags)


def set_alias(name: str, alias: str, version: int, *, settings: Settings | None = None) -> int | None:
    return get_registry(settings).set_alias(name, alias, version)


def delete_alias(name: str, alias: str, *, settings: Settings | None = None) -> None:
    get_registry(settings).delete_alias(name, alias)


def rollback_alias(name: str, alias: str, *, settings: Settings | None = None) -> int:
    return get_registry(settings).rollback_alias(name, alias)


def alias_history(name: str, alias: str | None = None, *, settings: Settings | None = None) -> list[AliasChange]:
    return get_registry(settings).alias_history(name, alias)


def reset() -> None:
    """Forget cached services (tests, or after changing settings)."""
    reset_services("registry")
