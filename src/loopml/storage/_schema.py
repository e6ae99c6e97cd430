"""Tables of the metadata database (SQLAlchemy Core).

Times are integer milliseconds since the epoch (UTC) so that SQLite and
PostgreSQL compare and index them the same way. Changing a table here needs
an Alembic migration in ``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(256), nullable=True),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("parent_run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("user", String(256), nullable=True),
    Column("host", String(256), nullable=True),
    Column("git_commit", String(64), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("system", JSON, nullable=True),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    Index("ix_runs_parent", "parent_run_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    # "str" when value is the string itself, "json" when it is a JSON encoding
    Column("kind", String(8), nullable=False),
    # clustered on the primary key: a run's rows sit together on SQLite
    sqlite_with_rowid=False,
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tags_key_value", "key", "value"),
    # clustered on the primary key: a run's rows sit together on SQLite
    sqlite_with_rowid=False,
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    # NULL when the value is not finite; ``special`` then says which
    Column("value", Float, nullable=True),
    Column("special", String(4), nullable=True),  # "nan" | "inf" | "-inf"
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=True),
    Column("special", String(4), nullable=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
    # clustered on the primary key: a run's rows sit together on SQLite
    sqlite_with_rowid=False,
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

run_datasets = Table(
    "run_datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("path", Text, nullable=True),
    Column("digest", String(64), nullable=False),
    Column("context", String(64), nullable=True),
    Column("num_rows", BigInteger, nullable=True),
    Column("schema", JSON, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("run_id", "name", "digest", "context", name="uq_run_datasets_entry"),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("name", String(256), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(256), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("flavor", String(32), nullable=False),
    Column("artifact_key", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("signature", JSON, nullable=True),
    Column("requirements", JSON, nullable=False),
    Column("datasets", JSON, nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=True),
    Index("ix_model_versions_run", "run_id"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    ForeignKeyConstraint(
        ["name", "version"], ["model_versions.name", "model_versions.version"], ondelete="CASCADE"
    ),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(256), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
    # the alias_history row that made this assignment
    Column("history_id", Integer, nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), ForeignKey("registered_models.name", ondelete="CASCADE"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("version", Integer, nullable=True),  # NULL: the alias was removed
    Column("previous_id", Integer, nullable=True),  # the history row current before this one
    Column("action", String(16), nullable=False),  # set | rollback | delete
    Column("changed_at", BigInteger, nullable=False),
    Column("changed_by", String(256), nullable=True),
    Index("ix_alias_history_name_alias", "name", "alias", "id"),
)

# -- data (revision 0002) ---------------------------------------------------------

datasets = Table(
    "datasets",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("name", String(256), ForeignKey("datasets.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("artifact_key", Text, nullable=False),
    Column("num_rows", BigInteger, nullable=False),
    Column("num_bytes", BigInteger, nullable=False),
    Column("columns", JSON, nullable=False),
    Column("source", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("profile_key", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=True),
    UniqueConstraint("name", "sha256", name="uq_dataset_versions_content"),
)

dataset_version_tags = Table(
    "dataset_version_tags",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    ForeignKeyConstraint(
        ["name", "version"], ["dataset_versions.name", "dataset_versions.version"], ondelete="CASCADE"
    ),
)

dataset_aliases = Table(
    "dataset_aliases",
    metadata,
    Column("name", String(256), ForeignKey("datasets.name", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
)

dataset_alias_history = Table(
    "dataset_alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), ForeignKey("datasets.name", ondelete="CASCADE"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("version", Integer, nullable=True),  # NULL: the alias was removed
    Column("changed_at", BigInteger, nullable=False),
    Column("changed_by", String(256), nullable=True),
    Index("ix_dataset_alias_history_name_alias", "name", "alias", "id"),
)

# -- pipelines and the event stream (revision 0003) --------------------------------

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # running | finished | failed
    Column("params", JSON, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("cache", Boolean, nullable=False),
    Column("executor", String(32), nullable=False),
    Column("trigger", String(256), nullable=True),
    Column("git_commit", String(64), nullable=True),
    Column("started_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_pipeline_runs_pipeline_started", "pipeline", "started_at"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("pipeline_runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(256), nullable=False),
    # pending | running | done | cached | failed | skipped
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("cache_key", String(64), nullable=True),
    Column("code_hash", String(64), nullable=True),
    Column("input_hashes", JSON, nullable=True),
    Column("params", JSON, nullable=True),
    Column("outputs", JSON, nullable=True),  # name -> {key, sha256, size, format}
    Column("cached_from", Integer, nullable=True),  # the step_runs row whose outputs were reused
    Column("cache_miss", Text, nullable=True),  # why the cache was not used
    Column("started_at", BigInteger, nullable=True),
    Column("ended_at", BigInteger, nullable=True),
    Column("logs", Text, nullable=True),
    Column("error", Text, nullable=True),
    UniqueConstraint("run_id", "step", name="uq_step_runs_run_step"),
    Index("ix_step_runs_cache_key", "cache_key"),
    Index("ix_step_runs_step_ended", "step", "ended_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),  # dataset.version_created | alert.raised | deployment.changed ...
    Column("subject", String(256), nullable=True),  # e.g. the dataset or deployment name
    Column("payload", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_events_kind_id", "kind", "id"),
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("pipeline", String(256), nullable=False),
    Column("kind", String(16), nullable=False),  # cron | dataset | event
    Column("spec", String(512), nullable=False),  # cron expression, dataset name, or event kind
    Column("params", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("cursor", String(128), nullable=True),  # last scheduled time / dataset version / event id handled
    Column("created_at", BigInteger, nullable=False),
)

trigger_firings = Table(
    "trigger_firings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger_id", Integer, ForeignKey("triggers.id", ondelete="CASCADE"), nullable=False),
    Column("fire_key", String(128), nullable=False),  # what fired: a scheduled time, a dataset version, an event id
    Column("run_id", String(32), nullable=True),
    Column("fired_at", BigInteger, nullable=False),
    UniqueConstraint("trigger_id", "fire_key", name="uq_trigger_firings_once"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("revision", Integer, nullable=False),  # bumped by every change; servers poll it
    Column("config", JSON, nullable=False),  # strategy, variants (model name + version, weight, role), options
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

deployment_history = Table(
    "deployment_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(128), ForeignKey("deployments.name", ondelete="CASCADE"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("previous", Integer, nullable=True),  # the revision a rollback of this one returns to
    Column("config", JSON, nullable=False),
    Column("action", String(32), nullable=False),  # create | update | canary | shadow | promote | switch | rollback ...
    Column("user", String(256), nullable=True),
    Column("changed_at", BigInteger, nullable=False),
    UniqueConstraint("deployment", "revision", name="uq_deployment_history_revision"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),  # public part of the key, shown in listings
    Column("name", String(128), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),  # sha256 of the secret part; the secret is never stored
    Column("roles", JSON, nullable=False),  # ["predict"] | ["admin"] | both
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(128), nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # ok | no_data | error
    Column("summary", JSON, nullable=False),  # the whole evaluation: drift, quality, outputs, service, performance
    Column("created_at", BigInteger, nullable=False),
    Index("ix_monitor_runs_deployment_end", "deployment", "window_end"),
)

monitor_metrics = Table(
    "monitor_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("monitor_runs.id", ondelete="CASCADE"), nullable=False),
    Column("deployment", String(128), nullable=False),
    Column("metric", String(128), nullable=False),  # drift.share, drift.column, quality.missing_rate, service.p99_ms ...
    Column("column", String(256), nullable=True),  # for per-column metrics
    Column("value", Float, nullable=True),
    Column("flag", Boolean, nullable=True),  # drifted / violated
    Column("window_end", BigInteger, nullable=False),
    Index("ix_monitor_metrics_series", "deployment", "metric", "window_end"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(128), nullable=False),
    Column("deployment", String(128), nullable=False),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("opened_at", BigInteger, nullable=False),
    Column("last_fired_at", BigInteger, nullable=False),  # actions ran (cool-down counts from here)
    Column("resolved_at", BigInteger, nullable=True),
    Column("value", Float, nullable=True),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_alerts_rule_deployment_state", "rule", "deployment", "state"),
    # at most one open alert per rule and deployment, even with two monitors racing
    Index("uq_alerts_one_firing", "rule", "deployment", unique=True,
          sqlite_where=text("state = 'firing'"), postgresql_where=text("state = 'firing'")),
)

feature_definitions = Table(
    "feature_definitions",
    metadata,
    Column("kind", String(16), primary_key=True),  # entity | view | on_demand
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),  # sha256 of the canonical definition; equal digest -> same version
    Column("spec", JSON, nullable=False),  # the whole definition (see loopml.features.models)
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=True),
)

feature_materializations = Table(
    "feature_materializations",
    metadata,
    Column("view", String(256), primary_key=True),
    Column("store", String(512), primary_key=True),  # identity of the online store written to
    Column("view_version", Integer, nullable=False),
    Column("watermark_us", BigInteger, nullable=True),  # newest event time processed (microseconds since the epoch)
    Column("end_us", BigInteger, nullable=False),  # the `end` of the last materialization
    Column("state", JSON, nullable=False),  # source fingerprint, token shared with the online store, counts
    Column("updated_at", BigInteger, nullable=False),
)
