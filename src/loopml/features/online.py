"""Online stores: the latest feature row per entity, for low-latency serving.

One small interface, :class:`OnlineStore`, and two implementations:

* :class:`SqliteOnlineStore` (default): one SQLite file in WAL mode, one
  row per (view, entity) holding the entity's whole feature row as JSON; a
  batch is one primary-key query.
* :class:`RedisOnlineStore`: one Redis string per (view, entity) under a
  per-project key prefix; a batch is one ``MGET``.

Rows are dicts of JSON values (the feature store adds the event time under
``__ts``). Entity keys are strings the feature store encodes from the join
key values. :func:`open_online_store` picks the implementation from the
``features_online_store`` setting (``sqlite``, ``sqlite:///path.db`` or
``redis://host:port/db``).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson

from loopml.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from loopml.config import Settings

logger = logging.getLogger(__name__)

__all__ = ["OnlineStore", "RedisOnlineStore", "SqliteOnlineStore", "open_online_store"]

_SQLITE_CHUNK = 30_000  # keys per IN (...) query, below SQLite's 32,766 bound parameters
_REDIS_CHUNK = 10_000  # keys per MGET / pipeline


@runtime_checkable
class OnlineStore(Protocol):
    """The latest feature row of each entity, per view.

    Contract: ``write_rows`` upserts ``rows[i]`` under ``keys[i]`` (a row of
    None deletes the key) and is idempotent; ``read_rows`` returns one entry
    per key, in the order given (None for a key never written or deleted);
    ``drop`` removes every row of a view. Failures of the underlying store raise
    :class:`~loopml.errors.StoreError`.
    """

    #: identity of the stored data (a file path, a Redis URL and prefix), for materialization watermarks
    identity: str

    def write_rows(self, view: str, keys: Sequence[str], rows: Sequence[dict[str, Any] | None]) -> None: ...

    def read_rows(self, view: str, keys: Sequence[str]) -> list[dict[str, Any] | None]: ...

    def drop(self, view: str) -> None: ...

    def close(self) -> None: ...


class SqliteOnlineStore:
    """An :class:`OnlineStore` in one SQLite file (WAL mode; one connection per thread).

    Args:
        path: the database file (created with its folder if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.identity = f"sqlite:{self.path.resolve()}"
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._guard("creating the online table"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn().execute(
                "CREATE TABLE IF NOT EXISTS online_rows (view TEXT NOT NULL, key TEXT NOT NULL, "
                "value BLOB NOT NULL, PRIMARY KEY (view, key)) WITHOUT ROWID"
            )

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"online store {self.path} failed while {doing}: {e}") from e

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60.0,
                                   cached_statements=256)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def read_rows(self, view: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        conn = self._conn()
        loads = orjson.loads
        try:
            if len(keys) == 1:
                found = conn.execute("SELECT value FROM online_rows WHERE view = ? AND key = ?", (view, keys[0])).fetchone()
                return [None if found is None else loads(found[0])]
            values: dict[str, bytes] = {}
            for i in range(0, len(keys), _SQLITE_CHUNK):
                chunk = list(keys[i:i + _SQLITE_CHUNK])
                marks = ",".join("?" * len(chunk))
                values.update(conn.execute(
                    f"SELECT key, value FROM online_rows WHERE view = ? AND key IN ({marks})", (view, *chunk)
                ).fetchall())
        except sqlite3.Error as e:
            raise StoreError(f"online store {self.path} failed while reading {view!r}: {e}") from e
        out: list[dict[str, Any] | None] = []
        for k in keys:
            raw = values.get(k)
            out.append(None if raw is None else loads(raw))
        return out

    def write_rows(self, view: str, keys: Sequence[str], rows: Sequence[dict[str, Any] | None]) -> None:
        if len(keys) != len(rows):
            raise ValueError(f"{len(keys)} keys but {len(rows)} rows")
        upserts = [(view, k, orjson.dumps(r)) for k, r in zip(keys, rows, strict=True) if r is not None]
        deletes = [(view, k) for k, r in zip(keys, rows, strict=True) if r is None]
        conn = self._conn()
        with self._guard(f"writing {view!r}"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                if upserts:
                    conn.executemany("INSERT OR REPLACE INTO online_rows (view, key, value) VALUES (?, ?, ?)", upserts)
                if deletes:
                    conn.executemany("DELETE FROM online_rows WHERE view = ? AND key = ?", deletes)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def drop(self, view: str) -> None:
        with self._guard(f"dropping {view!r}"):
            self._conn().execute("DELETE FROM online_rows WHERE view = ?", (view,))

    def count(self, view: str) -> int:
        """Rows stored for ``view``."""
        with self._guard(f"counting {view!r}"):
            return int(self._conn().execute("SELECT count(*) FROM online_rows WHERE view = ?", (view,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SqliteOnlineStore({str(self.path)!r})"


class RedisOnlineStore:
    """An :class:`OnlineStore` in Redis: one string (the row as JSON) per view and entity.

    Keys are ``<prefix>{<view>}:<entity key>``: the prefix separates projects
    sharing one Redis database, and the braces (a Redis Cluster hash tag) keep
    one view's keys in one slot, so a batch stays one ``MGET``. View names
    cannot contain braces.

    Args:
        url: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
        prefix: key prefix, e.g. ``loopml:1a2b3c4d5e:``.
    """

    def __init__(self, url: str, prefix: str) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                f"features_online_store={url!r} needs the redis client: pip install 'loopml[redis]'"
            ) from None
        self.url = url
        self.prefix = prefix
        self.identity = f"{_redact(url)}#{prefix}"
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        try:
            self._client = redis.Redis.from_url(url, socket_connect_timeout=5.0, socket_timeout=30.0)
        except ValueError as e:
            raise ConfigError(f"features_online_store {url!r} is not a valid Redis URL: {e}") from None

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self._errors as e:
            raise StoreError(
                f"online store {_redact(self.url)} failed while {doing}: {e}; check that Redis is running and reachable"
            ) from e

    def _head(self, view: str) -> str:
        if "{" in view or "}" in view:
            raise ValueError(f"view name {view!r} cannot contain braces")
        return f"{self.prefix}{{{view}}}:"

    def read_rows(self, view: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        head = self._head(view)
        loads = orjson.loads
        with self._guard(f"reading {view!r}"):
            if len(keys) == 1:
                raw = self._client.get(head + keys[0])
                return [None if raw is None else loads(raw)]
            values: list[Any] = []
            for i in range(0, len(keys), _REDIS_CHUNK):
                values.extend(self._client.mget([head + k for k in keys[i:i + _REDIS_CHUNK]]))
        return [None if v is None else loads(v) for v in values]

    def write_rows(self, view: str, keys: Sequence[str], rows: Sequence[dict[str, Any] | None]) -> None:
        if len(keys) != len(rows):
            raise ValueError(f"{len(keys)} keys but {len(rows)} rows")
        head = self._head(view)
        with self._guard(f"writing {view!r}"):
            for i in range(0, len(keys), _REDIS_CHUNK):
                pipe = self._client.pipeline(transaction=False)
                sets: dict[str, bytes] = {}
                for k, r in zip(keys[i:i + _REDIS_CHUNK], rows[i:i + _REDIS_CHUNK], strict=True):
                    if r is None:
                        sets.pop(head + k, None)
                        pipe.delete(head + k)
                    else:
                        sets[head + k] = orjson.dumps(r)
                if sets:
                    pipe.mset(sets)
                pipe.execute()

    def drop(self, view: str) -> None:
        pattern = _glob_escape(self._head(view)) + "*"
        with self._guard(f"dropping {view!r}"):
            batch: list[Any] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)

    def close(self) -> None:
        try:
            self._client.close()
        except self._errors:
            pass

    def __repr__(self) -> str:
        return f"RedisOnlineStore({_redact(self.url)!r}, prefix={self.prefix!r})"


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def project_prefix(settings: Settings) -> str:
    """The Redis key prefix of ``settings``' project: one per metadata store."""
    digest = hashlib.sha256(settings.metadata_url.encode()).hexdigest()[:12]
    return f"loopml:{digest}:"


def open_online_store(settings: Settings) -> OnlineStore:
    """The online store ``settings.features_online_store`` names.

    Raises:
        ConfigError: the setting is neither ``sqlite``, ``sqlite:///path`` nor a Redis URL.
    """
    url = (settings.features_online_store or "sqlite").strip()
    if url == "sqlite":
        return SqliteOnlineStore(settings.project_dir / ".loopml" / "online.db")
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        return SqliteOnlineStore(path if path.is_absolute() else settings.project_dir / path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisOnlineStore(url, project_prefix(settings))
    raise ConfigError(
        f"features_online_store {url!r} is not supported; use 'sqlite' (a file .loopml/online.db), "
        "'sqlite:///path/to/online.db' or 'redis://host:6379/0'"
    )
