"""SQL metadata store for SQLite (default) and PostgreSQL.

SQLite is opened in WAL mode with a busy timeout, and write transactions
start with ``BEGIN IMMEDIATE`` so concurrent writers queue on the lock instead
of failing when a read snapshot turns into a write. Migrations run through
Alembic, but only when the stored revision differs from the head this
version of loopml knows: an up-to-date store opens with one small query.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from loopml.errors import ConfigError, LoopmlError, SchemaVersionError, StoreError

logger = logging.getLogger(__name__)

__all__ = ["HEAD_REVISION", "KNOWN_REVISIONS", "SqlMetadataStore"]

#: Revisions this version of loopml can read, oldest first; the last is head.
KNOWN_REVISIONS: tuple[str, ...] = ("0001_initial", "0002_datasets", "0003_pipelines", "0004_serving", "0005_monitoring",
                                      "0006_features")
HEAD_REVISION = KNOWN_REVISIONS[-1]

_MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_SQLITE_BUSY_TIMEOUT_S = 60.0
_MIGRATION_LOCK_KEY = 0x6C6F6F706D6C  # "loopml"
_SQLITE_MAX_INLINE_PARAMS = 30_000  # SQLite allows 32,766 bound parameters per statement


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class SqlMetadataStore:
    """A :class:`~loopml.storage.base.MetadataStore` on SQLAlchemy.

    Args:
        url: SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://...``).
        migrate: apply pending migrations on open (default True).

    Raises:
        ConfigError: the URL is malformed or names an unsupported database.
        StoreError: the database cannot be reached.
        SchemaVersionError: the database was written by a newer loopml.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise ConfigError(
                f"metadata URL {url!r} is not a valid SQLAlchemy URL; "
                "use sqlite:///path/to/loopml.db or postgresql+psycopg://user@host/db"
            ) from None
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ConfigError(f"metadata URL {_redact(url)!r} names {backend!r}; loopml supports sqlite and postgresql")
        self.dialect = backend
        if backend == "sqlite":
            self._engine = self._sqlite_engine(parsed)
        else:
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            self._engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
        self._write_engine = self._engine.execution_options(loopml_write=True)
        self._lock = threading.Lock()
        if migrate:
            self.ensure_schema()

    # -- engine set-up -------------------------------------------------------

    @staticmethod
    def _sqlite_engine(parsed: sa.engine.URL) -> Engine:
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # take transaction control away from pysqlite so BEGIN is ours
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get("loopml_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine

    # -- schema --------------------------------------------------------------

    def _current_revision(self, conn: Connection) -> str | None:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def ensure_schema(self) -> None:
        """Apply pending migrations; refuse a store written by a newer loopml."""
        with self._guard("reading the schema version"):
            with self._engine.connect() as conn:
                current = self._current_revision(conn)
                conn.rollback()
        if current == HEAD_REVISION:
            return
        if current is not None and current not in KNOWN_REVISIONS:
            raise SchemaVersionError(
                f"the metadata store at {_redact(self.url)} has schema revision {current!r}, "
                f"which this loopml does not know (it knows up to {HEAD_REVISION!r}); "
                "it was probably created by a newer loopml: upgrade loopml (pip install -U loopml)",
                revision=current,
            )
        self._upgrade()

    def _upgrade(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS_DIR))
        with self._guard("migrating the schema"):
            with self._write_engine.begin() as conn:
                if self.dialect == "postgresql":
                    # serialise concurrent openers; released at commit
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                # a concurrent opener may have migrated while we waited for the lock
                if self._current_revision(conn) == HEAD_REVISION:
                    return
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        logger.info("migrated metadata store to %s", HEAD_REVISION, extra={"url": _redact(self.url)})

    # -- connections -----------------------------------------------------------

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except LoopmlError:
            raise
        except OperationalError as e:
            raise StoreError(
                f"metadata store {_redact(self.url)} failed while {doing}: {e.orig}; "
                "check that the database is reachable and not locked by a stuck process"
            ) from e
        except (DBAPIError, SQLAlchemyError) as e:
            raise StoreError(f"metadata store {_redact(self.url)} failed while {doing}: {e}") from e

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._guard("reading"), self._engine.connect() as conn:
            conn.begin()  # one snapshot for every query, also those on the driver's cursor
            try:
                yield conn
            finally:
                conn.rollback()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self._guard("writing"), self._write_engine.begin() as conn:
            yield conn

    def insert(self, table: Any) -> Any:
        if self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)

    # -- fast lane for hot paths -------------------------------------------------
    #
    # Metric flushes and run loading move thousands of small rows. Passing
    # tuples straight to the driver skips SQLAlchemy's per-row parameter and
    # result processing, which costs more than SQLite itself there. SQL for
    # these calls is written with ``?`` placeholders and works on both backends.

    @property
    def placeholder(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def sql(self, text: str) -> str:
        """``text`` with ``?`` placeholders turned into this driver's."""
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """SQL text and parameters for ``column`` equal to any of ``values``."""
        if self.dialect == "postgresql":
            return f"{column} = ANY(?)", (list(values),)
        if len(values) <= _SQLITE_MAX_INLINE_PARAMS:
            return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)
        return f"{column} IN (SELECT value FROM json_each(?))", (json.dumps(list(values)),)

    def execute_many(self, conn: Connection, text: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``text`` (``?`` placeholders) once per row of plain tuples."""
        if rows:
            conn.exec_driver_sql(self.sql(text), list(rows))

    def query(self, conn: Connection, text: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows (plain tuples) of ``text`` (``?`` placeholders), read on the driver's cursor
        inside ``conn``'s transaction."""
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(self.sql(text), tuple(params))
            return list(cur.fetchall())
        except self._engine.dialect.loaded_dbapi.Error as e:
            raise StoreError(f"metadata store {_redact(self.url)} failed while reading: {e}") from e
        finally:
            cur.close()

    def match_any(self, column: Any, values: list[Any]) -> Any:
        """``column IN values`` as one bound parameter (a JSON array on SQLite, an array on
        PostgreSQL), so long lists neither hit parameter limits nor cost a compile per value."""
        if len(values) <= 16:
            return column.in_(values)
        if self.dialect == "sqlite":
            each = sa.func.json_each(sa.bindparam(None, json.dumps(values), type_=sa.String)).table_valued("value")
            return column.in_(sa.select(each.c.value))
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, list(values), type_=ARRAY(column.type)))

    def close(self) -> None:
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"SqlMetadataStore({_redact(self.url)!r})"
