"""The OnlineStore contract, on SQLite and on a real Redis: upsert, delete, order, batches, drop, isolation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from loopml.config import Settings
from loopml.errors import ConfigError
from loopml.features import OnlineStore, RedisOnlineStore, SqliteOnlineStore, open_online_store


def test_contract(online_settings: Settings) -> None:
    store = open_online_store(online_settings)
    try:
        assert isinstance(store, OnlineStore)
        assert store.read_rows("v", ["a"]) == [None]
        rows = [{"x": 1.5, "s": "é", "b": True, "n": None, "i": 2**40}, {"x": -0.0}, {"x": 3.0}]
        store.write_rows("v", ["a", "b", "c"], rows)
        store.write_rows("v", ["a", "b", "c"], rows)  # idempotent
        assert store.read_rows("v", ["c", "zz", "a", "b"]) == [rows[2], None, rows[0], rows[1]]
        assert store.read_rows("v", ["a"]) == [rows[0]]
        # upsert replaces the whole row; None deletes
        store.write_rows("v", ["a", "b"], [{"x": 9.0}, None])
        assert store.read_rows("v", ["a", "b", "c"]) == [{"x": 9.0}, None, rows[2]]
        # views are separate namespaces, also for look-alike names
        store.write_rows("v2", ["a"], [{"y": 1}])
        store.write_rows("v:2", ["a"], [{"z": 1}])
        assert store.read_rows("v", ["a"]) == [{"x": 9.0}]
        # big batches, in order
        keys = [str(i) for i in range(25_000)]
        store.write_rows("big", keys, [{"i": i} for i in range(25_000)])
        got = store.read_rows("big", keys[::-1] + ["missing"])
        assert got[0] == {"i": 24_999} and got[-2] == {"i": 0} and got[-1] is None and len(got) == 25_001
        store.drop("v")
        assert store.read_rows("v", ["a", "c"]) == [None, None]
        assert store.read_rows("v2", ["a"]) == [{"y": 1}] and store.read_rows("v:2", ["a"]) == [{"z": 1}]
        # concurrent readers and writers
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(50):
                    store.write_rows("conc", [f"{t}-{i}"], [{"t": t, "i": i}])
                    assert store.read_rows("conc", [f"{t}-{i}"]) == [{"t": t, "i": i}]
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
    finally:
        store.drop("big")
        store.drop("v2")
        store.drop("v:2")
        store.drop("conc")
        store.close()


def test_selection_by_setting(tmp_path: Path) -> None:
    base = Settings.for_dir(tmp_path)
    default = open_online_store(base)
    assert isinstance(default, SqliteOnlineStore) and default.path == tmp_path / ".loopml" / "online.db"
    default.close()
    custom = open_online_store(Settings.for_dir(tmp_path, features_online_store="sqlite:///elsewhere/o.db"))
    assert isinstance(custom, SqliteOnlineStore) and custom.path == tmp_path / "elsewhere" / "o.db"
    custom.close()
    redis_store = open_online_store(Settings.for_dir(tmp_path, features_online_store="redis://:secret@127.0.0.1:6399/3"))
    assert isinstance(redis_store, RedisOnlineStore) and "secret" not in redis_store.identity
    redis_store.close()
    with pytest.raises(ConfigError, match="'memcached://x' is not supported"):
        open_online_store(Settings.for_dir(tmp_path, features_online_store="memcached://x"))


def test_unreachable_redis_is_a_store_error(tmp_path: Path) -> None:
    from loopml.errors import StoreError

    store = open_online_store(Settings.for_dir(tmp_path, features_online_store="redis://127.0.0.1:1/0"))
    with pytest.raises(StoreError, match="check that Redis is running"):
        store.read_rows("v", ["a"])
    store.close()


def test_setting_from_environment_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml.config import load_settings

    monkeypatch.delenv("LOOPML_FEATURES_ONLINE_STORE", raising=False)
    assert load_settings(tmp_path).features_online_store == "sqlite"
    (tmp_path / "loopml.toml").write_text('[features]\nonline_store = "redis://127.0.0.1:6379/2"\n')
    assert load_settings(tmp_path).features_online_store == "redis://127.0.0.1:6379/2"
    monkeypatch.setenv("LOOPML_FEATURES_ONLINE_STORE", "sqlite")
    assert load_settings(tmp_path).features_online_store == "sqlite"
    (tmp_path / "loopml.toml").write_text("[features]\nonline_store = 3\n")
    monkeypatch.delenv("LOOPML_FEATURES_ONLINE_STORE")
    with pytest.raises(ConfigError, match=r"\[features\] online_store = 3 must be a str"):
        load_settings(tmp_path)
