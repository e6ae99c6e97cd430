"""Configuration: one typed :class:`Settings` object.

Precedence, highest first: explicit argument > ``LOOPML_*`` environment
variable > ``loopml.toml`` in the project folder > default. This module is
the only place in loopml that reads the environment.

The project folder is the nearest ancestor of the working directory that
holds a ``loopml.toml`` (or ``LOOPML_PROJECT_DIR``); without one, the working
directory itself. Relative paths in the configuration are resolved against it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.errors import ConfigError

__all__ = ["CONFIG_FILE", "ENV_VARS", "EnvVar", "Settings", "find_project_dir", "load_settings", "use_settings"]

CONFIG_FILE = "loopml.toml"


@dataclass(frozen=True)
class EnvVar:
    """One environment variable, declared once with its type, default and meaning."""

    name: str
    type: type
    default: Any
    doc: str
    setting: str | None = None  # the Settings field it overrides, if any

    def get(self) -> Any:
        raw = os.environ.get(self.name)
        if raw is None or raw == "":
            return None
        return _coerce(self.name, raw, self.type)


ENV_VARS: dict[str, EnvVar] = {
    v.name: v
    for v in [
        EnvVar("LOOPML_PROJECT_DIR", str, None, "Project folder (default: nearest folder with loopml.toml, else the working directory)."),
        EnvVar("LOOPML_METADATA_URL", str, None, "SQLAlchemy URL of the metadata database, e.g. postgresql+psycopg://host/db.", "metadata_url"),
        EnvVar("LOOPML_ARTIFACT_ROOT", str, None, "Artifact store root: a folder or an s3://bucket/prefix URL.", "artifact_root"),
        EnvVar("LOOPML_METRIC_FLUSH_INTERVAL", float, 1.0, "Seconds between background flushes of buffered metrics.", "metric_flush_interval"),
        EnvVar("LOOPML_METRIC_BUFFER_SIZE", int, 5000, "Buffered metric points that trigger an immediate flush.", "metric_buffer_size"),
        EnvVar("LOOPML_S3_ENDPOINT_URL", str, None, "Endpoint of an S3-compatible store (MinIO, Ceph, ...).", "s3_endpoint_url"),
        EnvVar("LOOPML_PIPELINE_MODULES", str, None, "Comma-separated modules (or .py files) that define the project's pipelines.", "pipeline_modules"),
        EnvVar("LOOPML_RAY_ADDRESS", str, None, "Ray cluster for executor='ray' (e.g. ray://head:10001 or auto; default: a local Ray started on demand).", "ray_address"),
        EnvVar("LOOPML_FEATURES_ONLINE_STORE", str, "sqlite", "Online feature store: sqlite (a file .loopml/online.db) or redis://host:port/db.", "features_online_store"),
        EnvVar("LOOPML_USER", str, None, "User name recorded on runs and audit entries (default: the OS user).", "user"),
        EnvVar("LOOPML_REQUIRE_SERVICES", bool, False, "Tests: fail instead of skip when PostgreSQL/Redis/Chromium are missing."),
    ]
}


def _coerce(name: str, raw: str, typ: type) -> Any:
    if typ is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")
    try:
        return typ(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {typ.__name__}") from None


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one loopml project.

    Attributes:
        project_dir: the project folder; relative paths resolve against it.
        metadata_url: SQLAlchemy URL of the metadata database.
        artifact_root: local folder or ``s3://bucket/prefix``.
        metric_flush_interval: seconds between background metric flushes.
        metric_buffer_size: buffered points that trigger an immediate flush.
        s3_endpoint_url: endpoint of an S3-compatible store, if not AWS.
        user: user recorded on runs.
        features_online_store: online feature store, ``sqlite`` (``.loopml/online.db``),
            ``sqlite:///path.db`` or ``redis://host:port/db``.
    """

    project_dir: Path
    metadata_url: str
    artifact_root: str
    metric_flush_interval: float = 1.0
    metric_buffer_size: int = 5000
    s3_endpoint_url: str | None = None
    user: str | None = None
    pipeline_modules: tuple[str, ...] = ()
    ray_address: str | None = None
    features_online_store: str = "sqlite"

    @classmethod
    def for_dir(cls, project_dir: str | os.PathLike[str], **overrides: Any) -> Settings:
        """Settings for an embedded store in ``project_dir/.loopml`` (used by tests and tools)."""
        d = Path(project_dir).resolve()
        base = cls(
            project_dir=d,
            metadata_url=f"sqlite:///{d / '.loopml' / 'loopml.db'}",
            artifact_root=str(d / ".loopml" / "artifacts"),
        )
        return dataclasses.replace(base, **overrides)


_FIELD_TYPES: dict[str, type] = {
    "metadata_url": str,
    "artifact_root": str,
    "s3_endpoint_url": str,
    "metric_flush_interval": float,
    "metric_buffer_size": int,
    "user": str,
    "pipeline_modules": list,
    "ray_address": str,
    "features_online_store": str,
}

_FILE_KEYS = {
    # (toml table, key) -> Settings field
    ("store", "metadata_url"): "metadata_url",
    ("store", "artifact_root"): "artifact_root",
    ("store", "s3_endpoint_url"): "s3_endpoint_url",
    ("tracking", "metric_flush_interval"): "metric_flush_interval",
    ("tracking", "metric_buffer_size"): "metric_buffer_size",
    ("project", "user"): "user",
    ("pipelines", "modules"): "pipeline_modules",
    ("pipelines", "ray_address"): "ray_address",
    ("features", "online_store"): "features_online_store",
}


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest ancestor of ``start`` (default: cwd) holding ``loopml.toml``, else ``start``."""
    env = ENV_VARS["LOOPML_PROJECT_DIR"].get()
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_FILE).is_file():
            return d
    return here


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}; fix the file or delete it to use the defaults") from None
    found: dict[str, Any] = {}
    for table, values in data.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            field = _FILE_KEYS.get((table, key))
            if field is None:
                continue
            want = _FIELD_TYPES[field]
            ok = isinstance(value, want) and not isinstance(value, bool)
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                ok, value = True, float(value)
            if not ok:
                raise ConfigError(
                    f"{path}: [{table}] {key} = {value!r} must be a {want.__name__}, not {type(value).__name__}"
                )
            if want is list:
                if not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"{path}: [{table}] {key} must be a list of strings, got {value!r}")
                value = tuple(value)
            found[field] = value
    return found


def _resolve_paths(project_dir: Path, values: dict[str, Any]) -> dict[str, Any]:
    url = values["metadata_url"]
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        values["metadata_url"] = prefix + str(project_dir / url[len(prefix):])
    root = values["artifact_root"]
    if "://" not in root:
        values["artifact_root"] = str(project_dir / root)
    elif root.startswith("file://"):
        values["artifact_root"] = root[len("file://"):]
    return values


_CURRENT: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("loopml_settings", default=None)


@contextlib.contextmanager
def use_settings(settings: Settings) -> Any:
    """Within the block, :func:`load_settings` without arguments returns ``settings``.

    Pipeline steps run inside this, so ``loopml.models.register(...)`` in a step
    writes to the project the pipeline runs in.
    """
    token = _CURRENT.set(settings)
    try:
        yield settings
    finally:
        _CURRENT.reset(token)


def load_settings(project_dir: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Resolve settings: explicit ``overrides`` > environment > ``loopml.toml`` > defaults.

    Args:
        project_dir: project folder; default found by :func:`find_project_dir`.
        **overrides: explicit values for :class:`Settings` fields.

    Raises:
        ConfigError: the config file is malformed or a value has the wrong type.
    """
    if project_dir is None and not overrides:
        current = _CURRENT.get()
        if current is not None:
            return current
    d = Path(project_dir).resolve() if project_dir is not None else find_project_dir()
    values: dict[str, Any] = {
        "metadata_url": "sqlite:///.loopml/loopml.db",
        "artifact_root": ".loopml/artifacts",
        "metric_flush_interval": 1.0,
        "metric_buffer_size": 5000,
        "s3_endpoint_url": None,
        "user": None,
        "pipeline_modules": (),
        "ray_address": None,
        "features_online_store": "sqlite",
    }
    cfg = d / CONFIG_FILE
    if cfg.is_file():
        values.update(_read_file(cfg))
    for var in ENV_VARS.values():
        if var.setting is not None:
            v = var.get()
            if v is not None:
                values[var.setting] = v
    values.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(values["pipeline_modules"], str):
        values["pipeline_modules"] = tuple(m.strip() for m in values["pipeline_modules"].split(",") if m.strip())
    unknown = set(values) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(f.name for f in dataclasses.fields(Settings))}")
    if float(values["metric_flush_interval"]) <= 0:
        raise ConfigError(f"metric_flush_interval must be > 0 seconds, got {values['metric_flush_interval']!r}")
    return Settings(project_dir=d, **_resolve_paths(d, values))


CONFIG_TEMPLATE = """\
# loopml project configuration.
# Every value can be overridden by an environment variable (shown beside it).
# Relative paths are resolved against this folder.

[store]
# Metadata database (runs, models, lineage). SQLite in WAL mode by default;
# for a team use PostgreSQL: "postgresql+psycopg://user@host:5432/loopml".
metadata_url = "sqlite:///.loopml/loopml.db"     # LOOPML_METADATA_URL

# Artifact store (models, files, snapshots): a folder or "s3://bucket/prefix".
artifact_root = ".loopml/artifacts"               # LOOPML_ARTIFACT_ROOT

# Endpoint of an S3-compatible store such as MinIO (leave unset for AWS).
# s3_endpoint_url = "http://127.0.0.1:9000"      # LOOPML_S3_ENDPOINT_URL

[pipelines]
# Modules (importable from this folder) or .py files that define pipelines;
# `loopml pipeline list` imports them.
# modules = ["pipelines.train"]                   # LOOPML_PIPELINE_MODULES

# Ray cluster used by executor="ray" ("auto", "ray://head:10001"); unset
# starts a local Ray on the first such run.
# ray_address = "auto"                            # LOOPML_RAY_ADDRESS

[features]
# Online store that `loopml features materialize` writes and serving reads:
# "sqlite" (a file .loopml/online.db) or "redis://host:6379/0" for a team.
# online_store = "sqlite"                         # LOOPML_FEATURES_ONLINE_STORE

[tracking]
# Metric points are buffered and written in batches: at most this many
# seconds apart, at run end and at process exit.
metric_flush_interval = 1.0                       # LOOPML_METRIC_FLUSH_INTERVAL
metric_buffer_size = 5000                         # LOOPML_METRIC_BUFFER_SIZE
"""
