"""API keys: create, list, revoke, verify (bad keys, roles, cache), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.datastructures import Headers

from loopml.config import Settings
from loopml.errors import (
    HTTP_STATUS,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from loopml.serving.auth import ROLES, ApiKey, KeyService, get_keys, key_from_headers
from loopml.storage import _schema as t
from loopml.storage import get_backend


def keys(settings: Settings, ttl: float = 60.0) -> KeyService:
    """A fresh service (its own cache), as another process would have, on the settings' backend."""
    return KeyService(get_backend(settings), cache_ttl=ttl)


def test_errors_map_to_401_and_403() -> None:
    assert HTTP_STATUS[AuthenticationError.code] == 401
    assert HTTP_STATUS[PermissionDeniedError.code] == 403
    assert (AuthenticationError.code, PermissionDeniedError.code) == ("UNAUTHENTICATED", "FORBIDDEN")


def test_create_list_revoke(backend_settings: Settings) -> None:
    svc = get_keys(backend_settings)
    assert get_keys(backend_settings) is svc
    assert not svc.any_keys()
    ci, ci_key = svc.create("ci")
    ops, ops_key = svc.create("ops", roles=["admin", "predict", "admin"])
    assert ci.roles == ("predict",) and ops.roles == ("predict", "admin")
    assert svc.any_keys()
    for key, full in ((ci, ci_key), (ops, ops_key)):
        prefix, key_id, secret = full[:4], full[4:12], full[13:]
        assert (prefix, full[12], key_id) == ("lml_", "_", key.id)
        assert len(secret) == 43 and key_id.isalnum()
        assert key.active and key.revoked_at is None and key.created_at > 0
    assert [k.name for k in svc.list()] == ["ci", "ops"]
    assert svc.get("ci") == ci and svc.get(ops.id) == ops

    revoked = svc.revoke("ci")
    assert revoked.id == ci.id and revoked.revoked_at is not None and not revoked.active
    assert [k.name for k in svc.list()] == ["ops"]
    assert [k.name for k in svc.list(include_revoked=True)] == ["ci", "ops"]
    assert svc.revoke(ci.id) == revoked  # idempotent: the first revocation time stays
    assert svc.revoke(ops_key).name == "ops"  # a full key string names its key too
    assert not svc.any_keys()


def test_create_rejects_bad_input(backend_settings: Settings) -> None:
    svc = get_keys(backend_settings)
    svc.create("ci")
    with pytest.raises(ConflictError, match="'ci' already exists"):
        svc.create("ci", roles=["admin"])
    svc.revoke("ci")
    with pytest.raises(ConflictError, match="revoked"):
        svc.create("ci")
    with pytest.raises(InvalidInputError, match="unknown role 'root'"):
        svc.create("x", roles=["predict", "root"])
    with pytest.raises(InvalidInputError, match="at least one role"):
        svc.create("x", roles=[])
    for bad in ("", " ci", "a/b", "x" * 129, "näme"):
        with pytest.raises(InvalidInputError, match="name"):
            svc.create(bad)
    assert svc.create("solo", "admin")[0].roles == ("admin",)  # one role as a string
    assert [k.name for k in svc.list(include_revoked=True)] == ["ci", "solo"]


def test_revoke_unknown_names_it(backend_settings: Settings) -> None:
    svc = get_keys(backend_settings)
    with pytest.raises(NotFoundError, match="'nope'"):
        svc.revoke("nope")
    _, full = svc.create("ci")
    svc.revoke("ci")
    ghost = full[:4] + "ZZZZZZZZ" + full[12:]
    with pytest.raises(NotFoundError) as e:
        svc.revoke(ghost)
    assert full[13:] not in str(e.value)  # a mistyped full key is not echoed with its secret
    assert "lml_ZZZZZZZZ_..." in str(e.value)


def test_verify_right_key_and_roles(backend_settings: Settings) -> None:
    svc = get_keys(backend_settings)
    ci, ci_key = svc.create("ci")
    ops, ops_key = svc.create("ops", roles=["admin"])
    assert svc.verify(ci_key, "predict") == ci
    assert svc.verify(ops_key, "predict") == ops  # admin implies predict
    assert svc.verify(ops_key, "admin") == ops
    with pytest.raises(PermissionDeniedError, match="needs 'admin'") as e:
        svc.verify(ci_key, "admin")
    assert ci_key[13:] not in str(e.value)
    with pytest.raises(InvalidInputError, match="unknown role"):
        svc.verify(ci_key, "root")
    assert ApiKey("x", "x", ("admin",), 0, None).allows("predict")
    assert not ApiKey("x", "x", ("predict",), 0, None).allows("admin")
    assert set(ROLES) == {"predict", "admin"}


def test_verify_rejects_bad_keys_without_echoing_them(backend_settings: Settings) -> None:
    svc = keys(backend_settings)
    _, full = svc.create("ci")
    secret = full[13:]
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    wrong_secret = full[:13] + flipped
    unknown_id = full[:4] + ("a" if full[4] != "a" else "b") + full[5:]
    for bad, why in ((wrong_secret, "not valid"), (unknown_id, "not valid")):
        with pytest.raises(AuthenticationError, match=why) as e:
            svc.verify(bad, "predict")
        assert secret not in str(e.value) and flipped not in str(e.value)
    assert svc.db_lookups == 2

    malformed = [
        "", None, "lml_", secret, full[4:], "Bearer " + full, full + "x", full[:-1], full + "\n", " " + full[1:],
        "lml_" + "x" * 8 + "-" + secret,  # wrong separator
        "lml_abc-1234_" + secret,  # '-' is not allowed in the id
        "lml_" + "ü" * 8 + "_" + secret,  # non-ASCII, right length
        full[:-1] + "é",
        "lml_" + "\x00" * 52,
        "lml_" + "a" * (1 << 20),  # 1 MB
    ]
    for bad in malformed:
        with pytest.raises(AuthenticationError) as e:
            svc.verify(bad, "predict")
        msg = str(e.value)
        assert len(msg) < 300 and secret not in msg
    assert svc.db_lookups == 2  # malformed keys never reach the database
    with pytest.raises(AuthenticationError, match="missing API key"):
        svc.verify(None, "predict")


def test_secret_is_not_stored(backend_settings: Settings) -> None:
    svc = get_keys(backend_settings)
    key, full = svc.create("ci", roles=["admin"])
    secret = full[13:]
    with get_backend(backend_settings).metadata.read() as conn:
        rows = conn.execute(sa.select(t.api_keys)).all()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert key.id in stored and "ci" in stored
    assert secret not in stored and full not in stored
    assert len(rows[0].key_hash) == 64 and rows[0].key_hash != secret
    if backend_settings.metadata_url.startswith("sqlite:///"):
        db = Path(backend_settings.metadata_url[len("sqlite:///"):])
        raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))  # the file, its WAL and shm
        assert key.id.encode() in raw and secret.encode() not in raw


def test_cache_hit_does_not_touch_the_database(backend_settings: Settings) -> None:
    svc = keys(backend_settings)
    _, full = svc.create("ci")
    for _ in range(100):
        svc.verify(full, "predict")
    assert svc.db_lookups == 1
    with pytest.raises(PermissionDeniedError):
        svc.verify(full, "admin")  # the role check uses the cached key too
    assert svc.db_lookups == 1
    bad = full[:13] + ("A" if full[13] != "A" else "B") + full[14:]
    for _ in range(50):
        with pytest.raises(AuthenticationError):
            svc.verify(bad, "predict")
    assert svc.db_lookups == 2  # rejections are cached as well
    svc.clear_cache()
    svc.verify(full, "predict")
    assert svc.db_lookups == 3


def test_no_cache_with_zero_ttl(backend_settings: Settings) -> None:
    svc = keys(backend_settings, ttl=0)
    _, full = svc.create("ci")
    for _ in range(3):
        svc.verify(full, "predict")
    assert svc.db_lookups == 3
    with pytest.raises(InvalidInputError):
        KeyService(get_backend(backend_settings), cache_ttl=-1)


def test_revocation_in_this_process_applies_at_once(backend_settings: Settings) -> None:
    svc = keys(backend_settings, ttl=3600)
    _, full = svc.create("ci")
    svc.verify(full, "predict")
    svc.revoke("ci")
    with pytest.raises(AuthenticationError, match="'ci'.*revoked"):
        svc.verify(full, "predict")


def test_revocation_elsewhere_applies_after_the_ttl(backend_settings: Settings) -> None:
    server = keys(backend_settings, ttl=0.2)
    other_process = keys(backend_settings)
    _, full = other_process.create("ci")
    server.verify(full, "predict")
    other_process.revoke("ci")
    time.sleep(0.3)
    with pytest.raises(AuthenticationError, match="revoked") as e:
        server.verify(full, "predict")
    assert full[13:] not in str(e.value)
    assert server.db_lookups == 2


def test_revocation_elsewhere_is_not_seen_within_the_ttl(backend_settings: Settings) -> None:
    """The documented delay: a cached key stays valid until its entry expires (here an hour)."""
    server = keys(backend_settings, ttl=3600)
    other_process = keys(backend_settings)
    _, full = other_process.create("ci")
    server.verify(full, "predict")
    other_process.revoke("ci")
    assert server.verify(full, "predict").name == "ci"
    assert other_process.any_keys() is False


def test_cache_stays_bounded(backend_settings: Settings) -> None:
    svc = KeyService(get_backend(backend_settings), cache_ttl=60, cache_size=8)
    _, full = svc.create("ci")
    for i in range(40):
        bad = full[:-4] + f"{i:04d}"
        with pytest.raises(AuthenticationError):
            svc.verify(bad, "predict")
    assert len(svc._cache) <= 8
    svc.verify(full, "predict")


def test_concurrent_creates_of_one_name(backend_settings: Settings) -> None:
    svc = get_keys(backend_settings)
    n = 8
    barrier = threading.Barrier(n)
    created: list[ApiKey] = []
    conflicts: list[ConflictError] = []
    others: list[BaseException] = []

    def create() -> None:
        barrier.wait()
        try:
            created.append(svc.create("shared")[0])
        except ConflictError as e:
            conflicts.append(e)
        except BaseException as e:  # noqa: BLE001 - reported below
            others.append(e)

    threads = [threading.Thread(target=create) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert others == []
    assert len(created) == 1 and len(conflicts) == n - 1
    assert [k.id for k in svc.list()] == [created[0].id]


def test_key_from_headers() -> None:
    key = "lml_abcd1234_" + "s" * 43
    assert key_from_headers(Headers({"Authorization": f"Bearer {key}"})) == key
    assert key_from_headers(Headers({"authorization": f"bearer   {key}  "})) == key
    assert key_from_headers(Headers({"X-API-Key": key})) == key
    assert key_from_headers(Headers({"x-api-key": f" {key} "})) == key
    assert key_from_headers({"authorization": f"Bearer {key}"}) == key
    assert key_from_headers({"x-api-key": key}) == key
    assert key_from_headers({"X-Api-Key": key}) == key
    assert key_from_headers({"Authorization": f"Bearer {key}", "X-API-Key": "other"}) == key
    assert key_from_headers(Headers({"Authorization": "Basic dXNlcjpwdw==", "X-API-Key": key})) == key
    assert key_from_headers(Headers({"Authorization": "Basic dXNlcjpwdw=="})) is None
    assert key_from_headers({"authorization": "Bearer "}) is None
    assert key_from_headers({"x-api-key": "  "}) is None
    assert key_from_headers({}) is None
    assert key_from_headers(Headers({"content-type": "application/json"})) is None
