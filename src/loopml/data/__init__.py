"""Data: versioned datasets (content-hashed parquet snapshots), profiles,
schema inference and validation, training/serving skew, and PII scans.

Owns the ``datasets``, ``dataset_versions``, ``dataset_version_tags``,
``dataset_aliases`` and ``dataset_alias_history`` records, and the
``datasets/`` area of the artifact store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from loopml.config import Settings
from loopml.data.models import (
    Anomaly,
    ColumnInfo,
    ColumnProfile,
    DatasetVersion,
    Histogram,
    PiiFinding,
    Profile,
    SkewFinding,
)
from loopml.data.pii import scan_pii
from loopml.data.profile import ProfileBuilder, column_kind, profile_table
from loopml.data.report import render_profile_html, write_profile_html
from loopml.data.schema import Check, ColumnSchema, Schema, infer_schema
from loopml.data.service import DataService, RegisterResult
from loopml.data.skew import compare_profiles
from loopml.data.validation import has_errors, validate, validate_record, validate_records
from loopml.storage import get_service, reset_services

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "Anomaly",
    "Check",
    "ColumnInfo",
    "ColumnProfile",
    "ColumnSchema",
    "DataService",
    "DatasetVersion",
    "Histogram",
    "PiiFinding",
    "Profile",
    "ProfileBuilder",
    "RegisterResult",
    "Schema",
    "SkewFinding",
    "column_kind",
    "compare_profiles",
    "delete_alias",
    "get_data",
    "get_profile",
    "get_version",
    "has_errors",
    "infer_schema",
    "iter_batches",
    "list_datasets",
    "list_versions",
    "load",
    "load_table",
    "profile_table",
    "register",
    "render_profile_html",
    "resolve",
    "scan_pii",
    "set_alias",
    "validate",
    "validate_record",
    "validate_records",
    "write_profile_html",
]

def get_data(settings: Settings | None = None) -> DataService:
    """The process-wide :class:`DataService` for ``settings`` (default: the project's)."""
    return get_service("data", DataService, settings)


def register(name: str, data: Any, *, source: str | None = None, description: str | None = None,
             tags: dict[str, Any] | None = None, encoding: str = "utf8", column_types: dict[str, Any] | None = None,
             progress: Callable[[int], None] | None = None, settings: Settings | None = None) -> DatasetVersion:
    """Register ``data`` as the next version of ``name``; see :meth:`DataService.register`."""
    return get_data(settings).register(
        name, data, source=source, description=description, tags=tags, encoding=encoding,
        column_types=column_types, progress=progress,
    ).version


def resolve(uri: str, *, settings: Settings | None = None) -> DatasetVersion:
    """The version ``datasets:/name``, ``datasets:/name/4`` or ``datasets:/name@alias`` names."""
    return get_data(settings).resolve(uri)


def get_version(name: str, version: int | None = None, *, settings: Settings | None = None) -> DatasetVersion:
    return get_data(settings).get_version(name, version)


def list_versions(name: str, *, settings: Settings | None = None) -> list[DatasetVersion]:
    return get_data(settings).list_versions(name)


def list_datasets(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    return get_data(settings).list_datasets()


def load(uri: str | DatasetVersion, *, columns: list[str] | None = None, settings: Settings | None = None) -> pd.DataFrame:
    """A dataset version as a pandas DataFrame (its content hash is checked first)."""
    return get_data(settings).load(uri, columns=columns)


def load_table(uri: str | DatasetVersion, *, columns: list[str] | None = None, settings: Settings | None = None) -> pa.Table:
    return get_data(settings).load_table(uri, columns=columns)


def iter_batches(uri: str | DatasetVersion, *, settings: Settings | None = None) -> Iterator[pa.RecordBatch]:
    return get_data(settings).iter_batches(uri)


def get_profile(uri: str | DatasetVersion, *, settings: Settings | None = None) -> Profile:
    """The profile stored with a dataset version."""
    return get_data(settings).profile(uri)


def set_alias(name: str, alias: str, version: int, *, settings: Settings | None = None) -> int | None:
    return get_data(settings).set_alias(name, alias, version)


def delete_alias(name: str, alias: str, *, settings: Settings | None = None) -> None:
    get_data(settings).delete_alias(name, alias)


def reset() -> None:
    """Forget cached services (tests, or after changing settings)."""
    reset_services("data")
