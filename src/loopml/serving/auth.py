"""API keys with roles for the prediction service.

A key reads ``lml_<id>_<secret>``: ``id`` is 8 letters and digits, public and
shown in listings; ``secret`` is 32 random bytes (43 URL-safe characters).
The database keeps the id, the name, the roles and the sha256 of the secret,
never the secret itself, so the full key is shown once, at creation.

Roles: ``predict`` calls the prediction endpoints, ``admin`` also manages the
service (and implies ``predict``).

:meth:`KeyService.verify` runs on every request. It keeps verified keys (and
rejected ones) in memory for a short TTL, keyed by the sha256 of the full key,
so a hit costs one hash and a dict lookup, and a revocation made by another
process takes effect within the TTL (at once in this process).

Owns the ``api_keys`` records.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import re
import secrets
import string
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopml.core import format_ms, now_ms
from loopml.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
)
from loopml.storage import _schema as t
from loopml.storage import get_service
from loopml.storage.base import Backend

if TYPE_CHECKING:
    from loopml.config import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CACHE_TTL_S",
    "KEY_PREFIX",
    "ROLES",
    "ApiKey",
    "KeyService",
    "get_keys",
    "key_from_headers",
]

#: Every role a key can hold; ``admin`` implies ``predict``.
ROLES: tuple[str, ...] = ("predict", "admin")
_GRANTS: dict[str, frozenset[str]] = {"predict": frozenset({"predict"}), "admin": frozenset({"predict", "admin"})}

KEY_PREFIX = "lml_"
#: How long :meth:`KeyService.verify` trusts a cached answer, so the longest a revoked key keeps working.
DEFAULT_CACHE_TTL_S = 2.0
DEFAULT_CACHE_SIZE = 10_000

_ID_LEN = 8
_ID_ALPHABET = string.ascii_letters + string.digits
_SECRET_BYTES = 32
_SECRET_LEN = 43  # len(secrets.token_urlsafe(32)): base64 of 32 bytes without padding
_KEY_LEN = len(KEY_PREFIX) + _ID_LEN + 1 + _SECRET_LEN
_KEY_RE = re.compile(rf"lml_([A-Za-z0-9]{{{_ID_LEN}}})_([A-Za-z0-9_\-]{{{_SECRET_LEN}}})", re.ASCII)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", re.ASCII)
_ID_RETRIES = 5
_HEADER_HINT = "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
# compared against when the id is unknown, so that case costs the same as a wrong secret
_DUMMY_HASH = hashlib.sha256(b"loopml-no-such-key").hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: everything but the secret.

    Attributes:
        id: the public part of the key (``lml_<id>_...``), shown in listings.
        name: unique, chosen at creation.
        roles: a subset of :data:`ROLES`, in that order.
        created_at, revoked_at: milliseconds since the epoch (UTC); ``revoked_at`` is None while active.
    """

    id: str
    name: str
    roles: tuple[str, ...]
    created_at: int
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, role: str) -> bool:
        """True when one of the key's roles grants ``role`` (``admin`` grants ``predict``)."""
        return any(role in _GRANTS[r] for r in self.roles if r in _GRANTS)


def _hash_secret(secret: str) -> str:
    # Keys carry 256 random bits, so nobody can brute-force them from this hash:
    # a fast hash is right here. Slow password hashes (bcrypt, scrypt, argon2)
    # protect guessable human passwords and would add milliseconds to every request.
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 140 else repr(name)[:140] + "..."
        raise InvalidInputError(
            f"API key name {shown} is invalid: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit",
        )
    return name


def _check_roles(roles: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(roles, str):  # create("ci", "admin") means one role, not five letters
        roles = (roles,)
    wanted: set[str] = set()
    for role in roles:
        if role not in _GRANTS:
            raise InvalidInputError(f"unknown role {role!r}: use {' or '.join(ROLES)}", role=str(role)[:64])
        wanted.add(role)
    if not wanted:
        raise InvalidInputError(f"an API key needs at least one role: {' or '.join(ROLES)}")
    return tuple(r for r in ROLES if r in wanted)


def _check_role(role: str) -> str:
    if role not in _GRANTS:
        raise InvalidInputError(f"unknown role {role!r}: use {' or '.join(ROLES)}")
    return role


def _redacted(key_id: str) -> str:
    return f"{KEY_PREFIX}{key_id}_..."


def _to_key(row: Any) -> ApiKey:
    held = set(row.roles or [])
    return ApiKey(row.id, row.name, tuple(r for r in ROLES if r in held), row.created_at, row.revoked_at)


# A cached answer: (expires at, on time.monotonic(); the key, or None when rejected; why it was rejected)
_Entry = tuple[float, ApiKey | None, str]


class KeyService:
    """API keys of one project, over its :class:`~loopml.storage.Backend`.

    Args:
        backend: the project's backend.
        cache_ttl: seconds :meth:`verify` trusts a cached answer (0 turns the cache off). It bounds
            how long a key revoked by another process keeps working.
        cache_size: most answers kept; beyond it, expired and then the oldest answers are dropped.

    Attributes:
        db_lookups: how many times :meth:`verify` queried the database (cache misses).
    """

    def __init__(self, backend: Backend, *, cache_ttl: float = DEFAULT_CACHE_TTL_S,
                 cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if cache_ttl < 0:
            raise InvalidInputError(f"cache_ttl must be 0 or more seconds, not {cache_ttl!r}")
        if cache_size < 1:
            raise InvalidInputError(f"cache_size must be at least 1, not {cache_size!r}")
        self.backend = backend
        self.cache_ttl = float(cache_ttl)
        self.cache_size = cache_size
        self.db_lookups = 0
        self._cache: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()
        # bumped by every revocation here, so a lookup that started before it cannot cache its stale answer
        self._generation = 0

    # -- management ----------------------------------------------------------------

    def create(self, name: str, roles: Sequence[str] = ("predict",)) -> tuple[ApiKey, str]:
        """Create a key called ``name`` holding ``roles``.

        Returns:
            The stored key and the full key string ``lml_<id>_<secret>``. The string is not
            stored anywhere: hand it to the user now, it cannot be shown again.

        Raises:
            ConflictError: a key (active or revoked) is already called ``name``.
            InvalidInputError: a bad name, an unknown role, or no role.
        """
        _check_name(name)
        held = _check_roles(roles)
        store = self.backend.metadata
        for _ in range(_ID_RETRIES):
            key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LEN))
            secret = secrets.token_urlsafe(_SECRET_BYTES)
            assert len(secret) == _SECRET_LEN
            created = now_ms()
            with store.write() as conn:
                # DO NOTHING on either unique column (id, name): concurrent creators of one name
                # wait for the first to commit, then insert nothing, on SQLite and PostgreSQL alike
                ins = store.insert(t.api_keys).values(
                    id=key_id, name=name, key_hash=_hash_secret(secret), roles=list(held),
                    created_at=created, revoked_at=None,
                )
                # RETURNING, not rowcount: psycopg reports rowcount -1 for this statement
                inserted = conn.execute(ins.on_conflict_do_nothing().returning(t.api_keys.c.id)).first()
                if inserted is not None:
                    key = ApiKey(key_id, name, held, created, None)
                    logger.info("created API key %s (%s)", name, key_id, extra={"key_id": key_id, "key_name": name})
                    return key, f"{KEY_PREFIX}{key_id}_{secret}"
                taken = conn.execute(sa.select(t.api_keys.c.revoked_at).where(t.api_keys.c.name == name)).first()
            if taken is not None:
                state = "an active key" if taken.revoked_at is None else f"a key revoked at {format_ms(taken.revoked_at)} UTC"
                raise ConflictError(
                    f"an API key named {name!r} already exists ({state}); names stay taken after revocation, "
                    "so choose another name (see `loopml keys list`)",
                    name=name,
                )
            # otherwise the random id collided with an existing one: draw another
        raise StoreError(f"could not allocate a unique id for API key {name!r} after {_ID_RETRIES} attempts")

    def list(self, include_revoked: bool = False) -> builtins.list[ApiKey]:
        """Keys ordered by creation time; active ones only unless ``include_revoked``."""
        c = t.api_keys.c
        q = sa.select(t.api_keys).order_by(c.created_at, c.name)
        if not include_revoked:
            q = q.where(c.revoked_at.is_(None))
        with self.backend.metadata.read() as conn:
            return [_to_key(r) for r in conn.execute(q)]

    def get(self, name_or_id: str) -> ApiKey:
        """The key called ``name_or_id``, else the one with that id (or the id of a full key string).

        Raises:
            NotFoundError: no key has that name or id.
        """
        with self.backend.metadata.read() as conn:
            return _to_key(self._find(conn, name_or_id))

    def revoke(self, name_or_id: str) -> ApiKey:
        """Revoke a key by name, id, or full key string; revoking a revoked key changes nothing.

        Servers in this process refuse the key at once; others within their cache TTL.

        Returns:
            The key with its ``revoked_at``.

        Raises:
            NotFoundError: no key has that name or id.
        """
        c = t.api_keys.c
        with self.backend.metadata.write() as conn:
            row = self._find(conn, name_or_id)
            if row.revoked_at is None:
                conn.execute(t.api_keys.update().where(c.id == row.id, c.revoked_at.is_(None)).values(revoked_at=now_ms()))
                row = conn.execute(sa.select(t.api_keys).where(c.id == row.id)).one()
                logger.info("revoked API key %s (%s)", row.name, row.id, extra={"key_id": row.id, "key_name": row.name})
        self._invalidate()
        return _to_key(row)

    def _find(self, conn: Any, name_or_id: str) -> Any:
        c = t.api_keys.c
        if not isinstance(name_or_id, str):
            raise InvalidInputError(f"an API key name or id is a string, not {type(name_or_id).__name__}")
        full = _KEY_RE.fullmatch(name_or_id) if len(name_or_id) == _KEY_LEN else None
        if full is not None:  # a whole key: use its id, and never repeat its secret
            row = conn.execute(sa.select(t.api_keys).where(c.id == full.group(1))).first()
            shown = repr(_redacted(full.group(1)))
        else:
            row = conn.execute(sa.select(t.api_keys).where(c.name == name_or_id)).first()
            if row is None:
                row = conn.execute(sa.select(t.api_keys).where(c.id == name_or_id)).first()
            shown = repr(name_or_id) if len(name_or_id) <= 140 else repr(name_or_id[:140]) + "..."
        if row is None:
            raise NotFoundError(
                f"no API key is named {shown} or has that id; see `loopml keys list`",
                key=shown,
            )
        return row

    def any_keys(self) -> bool:
        """True when at least one key is active (the server refuses to start without one unless open)."""
        c = t.api_keys.c
        with self.backend.metadata.read() as conn:
            return conn.execute(sa.select(c.id).where(c.revoked_at.is_(None)).limit(1)).first() is not None

    # -- the hot path ------------------------------------------------------------------

    def verify(self, key: str | None, role: str) -> ApiKey:
        """The active key ``key``, checked to hold ``role``.

        Answers (also rejections) are cached for ``cache_ttl`` seconds; a miss costs one query by
        primary key. Secrets are compared in constant time and never appear in error messages.

        Raises:
            AuthenticationError: ``key`` is missing, malformed, unknown, revoked, or has a wrong secret.
            PermissionDeniedError: the key is valid but does not grant ``role``.
            InvalidInputError: ``role`` is not one of :data:`ROLES`.
            StoreError: the database could not be reached on a cache miss.
        """
        _check_role(role)
        if not key:
            raise AuthenticationError(f"missing API key: {_HEADER_HINT}")
        # length first: a megabyte of garbage is turned away without being scanned or hashed
        match = _KEY_RE.fullmatch(key) if isinstance(key, str) and len(key) == _KEY_LEN else None
        if match is None:
            raise AuthenticationError(
                f"malformed API key: expected {KEY_PREFIX}<id>_<secret> ({_KEY_LEN} characters) "
                "as printed by `loopml keys create`"
            )
        digest = hashlib.sha256(key.encode("ascii")).digest()
        now = time.monotonic()
        entry = self._cache.get(digest)
        if entry is None or entry[0] <= now:
            entry = self._lookup(match.group(1), match.group(2), digest, now)
        found = entry[1]
        if found is None:
            raise AuthenticationError(entry[2])
        if not found.allows(role):
            raise PermissionDeniedError(
                f"API key {found.name!r} ({found.id}) has role {', '.join(found.roles)} but this needs {role!r}; "
                f"use a key created with `loopml keys create NAME --role {role}`",
                key_id=found.id, role=role,
            )
        return found

    def _lookup(self, key_id: str, secret: str, digest: bytes, started: float) -> _Entry:
        with self._lock:
            self.db_lookups += 1
            generation = self._generation
        c = t.api_keys.c
        with self.backend.metadata.read() as conn:
            row = conn.execute(sa.select(t.api_keys).where(c.id == key_id)).first()
        matches = hmac.compare_digest(_hash_secret(secret), row.key_hash if row is not None else _DUMMY_HASH)
        found: ApiKey | None = None
        if row is None or not matches:
            why = f"API key {_redacted(key_id)} is not valid (no such key, or a wrong secret); see `loopml keys list`"
        elif row.revoked_at is not None:
            why = (f"API key {row.name!r} ({key_id}) was revoked at {format_ms(row.revoked_at)} UTC; "
                   "create a new one with `loopml keys create`")
        else:
            found, why = _to_key(row), ""
        # expiry counts from before the query, so a cached answer is never older than the TTL
        entry: _Entry = (started + self.cache_ttl, found, why)
        if self.cache_ttl > 0:
            with self._lock:
                if generation == self._generation:
                    if len(self._cache) >= self.cache_size:
                        self._evict(started)
                    self._cache[digest] = entry
        return entry

    def _evict(self, now: float) -> None:
        # called with the lock held; dicts keep insertion order, so the first entries are the oldest
        for k in [k for k, e in self._cache.items() if e[0] <= now]:
            del self._cache[k]
        if len(self._cache) >= self.cache_size:
            for k in builtins.list(self._cache)[: max(1, len(self._cache) // 2)]:
                del self._cache[k]

    def _invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._cache.clear()

    def clear_cache(self) -> None:
        """Forget every cached answer: the next :meth:`verify` of each key reads the database."""
        self._invalidate()


def get_keys(settings: Settings | None = None) -> KeyService:
    """The process-wide :class:`KeyService` for ``settings`` (default: the project's)."""
    return get_service("keys", KeyService, settings)


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The API key a request carries, or None.

    Reads ``Authorization: Bearer <key>`` (the scheme in any case), else ``X-API-Key: <key>``.
    ``headers`` is a case-insensitive mapping such as Starlette's ``Headers``, or a plain
    dict (lower-case names are found directly, others by a scan).
    """
    auth = headers.get("authorization")
    api_key = headers.get("x-api-key")
    if auth is None and api_key is None and isinstance(headers, dict):
        for name, value in headers.items():
            lowered = name.lower()
            if lowered == "authorization":
                auth = value
            elif lowered == "x-api-key":
                api_key = value
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            return token
    if api_key and api_key.strip():
        return api_key.strip()
    return None
