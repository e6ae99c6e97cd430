"""Materialization and online reads, on SQLite and on a real Redis: values equal the offline ones as of
``end``, incremental runs write only changed entities, late-arriving rows are merged, TTL deletes,
and the skew check finds planted mismatches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from features_helpers import random_features, redis_url

from loopml import data
from loopml.config import Settings
from loopml.errors import ConflictError, InvalidInputError, NotFoundError
from loopml.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnDemandFeature,
    OnlineStore,
    get_feature_store,
    open_online_store,
)

DRIVER = Entity("driver", ("driver_id",))
FIELDS = (Field("x", "float"), Field("n", "int"), Field("flag", "bool"), Field("label_text", "string"))
T0 = pd.Timestamp("2024-01-01")


def _view(source: str = "data/stats", ttl: timedelta | None = None, fields: tuple[Field, ...] = FIELDS) -> FeatureView:
    return FeatureView("stats", ("driver",), source, "event_timestamp", fields, ttl=ttl)


def _rows(driver_ids: Sequence[int], times: Sequence[pd.Timestamp], xs: Sequence[float]) -> pd.DataFrame:
    return pd.DataFrame({
        "driver_id": np.asarray(driver_ids, dtype="int64"), "event_timestamp": list(times),
        "x": np.asarray(xs, dtype="float64"), "n": np.arange(len(xs), dtype="int64"),
        "flag": [i % 2 == 0 for i in range(len(xs))], "label_text": [f"t{i}" for i in range(len(xs))],
    })


def _offline_at(fs: FeatureStore, ids: Sequence[Any], at: datetime, features: Sequence[str]) -> dict[str, list[Any]]:
    ent = pd.DataFrame({"driver_id": list(ids), "event_timestamp": [pd.Timestamp(at)] * len(ids)})
    out = fs.get_training_set(ent, features).to_pydict()
    return {k: v for k, v in out.items() if k not in ("driver_id", "event_timestamp")}


class CountingStore:
    """A real online store that counts the calls made to it."""

    def __init__(self, inner: OnlineStore) -> None:
        self.inner = inner
        self.identity = inner.identity
        self.reads: list[tuple[str, int]] = []

    def read_rows(self, view: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        self.reads.append((view, len(keys)))
        return self.inner.read_rows(view, keys)

    def write_rows(self, view: str, keys: Sequence[str], rows: Sequence[dict[str, Any] | None]) -> None:
        self.inner.write_rows(view, keys, rows)

    def drop(self, view: str) -> None:
        self.inner.drop(view)

    def close(self) -> None:
        self.inner.close()


def test_online_values_equal_offline_values_as_of_end(online_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    rng = np.random.default_rng(3)
    feats = random_features(rng, entities=120, rows=6000, days=40)
    write_parquet(online_settings.project_dir / "data" / "stats" / "part-0.parquet", feats)
    fs = FeatureStore(online_settings, online=CountingStore(open_online_store(online_settings)))
    fs.apply([DRIVER, _view(ttl=timedelta(days=2))])
    end = datetime(2024, 1, 25, 12)
    result = fs.materialize(end=end)
    (view,) = result["views"]
    assert view["mode"] == "full" and view["rows_scanned"] == int((feats["event_timestamp"] <= end).sum())
    assert view["watermark"] == pd.Timestamp(feats.loc[feats["event_timestamp"] <= end, "event_timestamp"].max()).tz_localize("UTC").isoformat()
    ids = list(range(130))  # 120..129 do not exist
    features = ["stats:x", "stats:n", "stats:flag", "stats:label_text"]
    online = fs.get_online_features([{"driver_id": i} for i in ids], features)
    offline = _offline_at(fs, ids, end, features)
    assert online == offline
    assert view["written"] == sum(v is not None for v in offline["x"]) == view["entities"]
    assert online["x"][120:] == [None] * 10
    # one online query per view for the whole batch
    store: CountingStore = fs.online  # type: ignore[assignment]
    store.reads.clear()
    fs.get_online_features({"driver_id": ids}, features)
    assert store.reads == [("stats", 130)]
    fs.close()


def test_incremental_runs_write_only_changed_entities(online_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    d = online_settings.project_dir / "data" / "stats"
    write_parquet(d / "a.parquet", _rows(range(20), [T0 + pd.Timedelta(hours=i) for i in range(20)], np.arange(20.0)))
    fs = get_feature_store(online_settings)
    fs.apply([DRIVER, _view()])
    first = fs.materialize(end=T0 + pd.Timedelta(days=1))["views"][0]
    assert (first["mode"], first["written"], first["entities"]) == ("full", 20, 20)
    # new rows after the watermark for 5 entities (one of them twice), one row beyond the next end
    write_parquet(d / "b.parquet", _rows(
        [1, 2, 3, 4, 5, 5, 6],
        [T0 + pd.Timedelta(days=2, hours=i) for i in range(6)] + [T0 + pd.Timedelta(days=9)],
        [101, 102, 103, 104, 105, 106, 107]))
    second = fs.materialize(end=T0 + pd.Timedelta(days=3))["views"][0]
    assert (second["mode"], second["rows_scanned"], second["written"], second["new_files"]) == ("incremental", 6, 5, 1)
    assert fs.get_online_features({"driver_id": [1, 5, 6, 7]}, ["stats:x"])["x"] == [101.0, 106.0, 6.0, 7.0]
    # nothing new: nothing written; then the row beyond the old end arrives in time
    assert fs.materialize(end=T0 + pd.Timedelta(days=3))["views"][0]["written"] == 0
    third = fs.materialize(end=T0 + pd.Timedelta(days=10))["views"][0]
    assert (third["mode"], third["written"], third["rows_scanned"]) == ("incremental", 1, 1)
    assert fs.get_online_features([{"driver_id": 6}], ["stats:x"]) == {"x": [107.0]}
    assert fs.check_skew("stats")["mismatched"] == 0


def test_late_arriving_rows_are_merged_and_the_newest_point_is_never_missed(
        online_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    d = online_settings.project_dir / "data" / "stats"
    times = [T0 + pd.Timedelta(hours=h) for h in (1, 2, 3, 4, 10)]
    write_parquet(d / "2024-01-01.parquet", _rows([1, 2, 3, 4, 9], times, [1, 2, 3, 4, 9]))
    fs = get_feature_store(online_settings)
    fs.apply([DRIVER, _view()])
    end = T0 + pd.Timedelta(days=1)
    assert fs.materialize(end=end)["views"][0]["watermark"] == "2024-01-01T10:00:00+00:00"
    watermark = T0 + pd.Timedelta(hours=10)
    # a later file with rows at or before the watermark:
    write_parquet(d / "2024-01-02.parquet", _rows(
        [1, 2, 3, 9],
        [T0 + pd.Timedelta(hours=5),  # late but newer than entity 1's stored row: merged
         T0 + pd.Timedelta(hours=1),  # late and older than entity 2's stored row: ignored
         watermark,  # exactly at the watermark, newer for entity 3: merged
         watermark],  # the same time as entity 9's stored row, later in source order: it wins
        [10, 20, 30, 90]))
    run = fs.materialize(end=end)["views"][0]
    assert (run["mode"], run["written"], run["unchanged"]) == ("incremental", 3, 1)
    assert fs.get_online_features({"driver_id": [1, 2, 3, 4, 9]}, ["stats:x"])["x"] == [10.0, 2.0, 30.0, 4.0, 90.0]
    assert _offline_at(fs, [1, 2, 3, 4, 9], end, ["stats:x"])["x"] == [10.0, 2.0, 30.0, 4.0, 90.0]
    assert fs.check_skew("stats")["mismatched"] == 0
    # rewriting an existing file (a correction) rebuilds the view
    write_parquet(d / "2024-01-01.parquet", _rows([1, 2, 3, 4, 9], times, [1, 2, 3, 44, 9]))
    rebuilt = fs.materialize(end=end)["views"][0]
    assert rebuilt["mode"] == "full" and "changed or were removed" in rebuilt["reason"]
    assert rebuilt["written"] == 1
    assert fs.get_online_features([{"driver_id": 4}], ["stats:x"]) == {"x": [44.0]}


def test_late_rows_in_a_dataset_source_trigger_a_rebuild(online_settings: Settings) -> None:
    s = online_settings
    v1 = _rows([1, 2, 3], [T0 + pd.Timedelta(hours=h) for h in (1, 2, 3)], [1, 2, 3])
    data.register("stats", v1, settings=s)
    fs = get_feature_store(s)
    fs.apply([DRIVER, _view(source="datasets:/stats")])
    end = T0 + pd.Timedelta(days=1)
    fs.materialize(end=end)
    # the next version only adds newer rows: incremental
    v2 = pd.concat([v1, _rows([1], [T0 + pd.Timedelta(hours=5)], [11])], ignore_index=True)
    data.register("stats", v2, settings=s)
    run = fs.materialize(end=end)["views"][0]
    assert (run["mode"], run["rows_scanned"], run["written"]) == ("incremental", 1, 1)
    # a late row (before the watermark) for entity 2: the count before the watermark changed, so rebuild
    v3 = pd.concat([v2, _rows([2, 3], [T0 + pd.Timedelta(hours=4), T0 + pd.Timedelta(hours=6)], [22, 33])],
                   ignore_index=True)
    data.register("stats", v3, settings=s)
    run = fs.materialize(end=end)["views"][0]
    assert run["mode"] == "full" and "late-arriving" in run["reason"]
    assert run["written"] == 2 and run["unchanged"] == 1
    assert fs.get_online_features({"driver_id": [1, 2, 3]}, ["stats:x"])["x"] == [11.0, 22.0, 33.0]


def test_ttl_expiry_deletes_online_rows(online_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    d = online_settings.project_dir / "data" / "stats"
    write_parquet(d / "a.parquet", _rows([1, 2], [T0, T0 + pd.Timedelta(days=2)], [1, 2]))
    fs = get_feature_store(online_settings)
    fs.apply([DRIVER, _view(ttl=timedelta(days=2))])
    fs.materialize(end=T0 + pd.Timedelta(days=1))
    assert fs.get_online_features({"driver_id": [1, 2]}, ["stats:x"]) == {"x": [1.0, None]}
    run = fs.materialize(end=T0 + pd.Timedelta(days=3))["views"][0]
    assert (run["written"], run["deleted"]) == (1, 1)
    assert fs.get_online_features({"driver_id": [1, 2]}, ["stats:x"]) == {"x": [None, 2.0]}
    assert _offline_at(fs, [1, 2], T0 + pd.Timedelta(days=3), ["stats:x"]) == {"x": [None, 2.0]}
    assert fs.check_skew("stats")["mismatched"] == 0
    # a late row older than the TTL window changes nothing
    write_parquet(d / "b.parquet", _rows([1], [T0 + pd.Timedelta(hours=1)], [5]))
    run = fs.materialize(end=T0 + pd.Timedelta(days=3))["views"][0]
    assert (run["written"], run["deleted"]) == (0, 0)
    run = fs.materialize(end=T0 + pd.Timedelta(days=10))["views"][0]
    assert (run["written"], run["deleted"]) == (0, 1)
    assert fs.get_online_features({"driver_id": [1, 2]}, ["stats:x"]) == {"x": [None, None]}


def test_wiped_store_changed_definition_and_earlier_end_rebuild(online_settings: Settings,
                                                               write_parquet: Callable[..., Path]) -> None:
    d = online_settings.project_dir / "data" / "stats"
    write_parquet(d / "a.parquet", _rows([1, 2], [T0, T0 + pd.Timedelta(days=2)], [1, 2]))
    fs = get_feature_store(online_settings)
    fs.apply([DRIVER, _view(fields=(Field("x", "float"),))])
    end = T0 + pd.Timedelta(days=5)
    fs.materialize(end=end)
    fs.online.drop("stats")
    fs.online.drop("__loopml_state__")
    run = fs.materialize(end=end)["views"][0]
    assert run["mode"] == "full" and "wiped" in run["reason"] and run["written"] == 2
    fs.apply([_view(fields=(Field("x", "float"), Field("n", "int")))])
    run = fs.materialize(end=end)["views"][0]
    assert run["mode"] == "full" and "definition changed (v1 -> v2)" in run["reason"] and run["written"] == 2
    assert fs.get_online_features({"driver_id": [1, 2]}, ["stats:n"]) == {"n": [0, 1]}
    run = fs.materialize(end=T0 + pd.Timedelta(days=1))["views"][0]
    assert run["mode"] == "full" and "before the last" in run["reason"]
    assert fs.get_online_features({"driver_id": [1, 2]}, ["stats:x"]) == {"x": [1.0, None]}


def test_skew_check_finds_planted_mismatches(online_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    rng = np.random.default_rng(11)
    write_parquet(online_settings.project_dir / "data" / "stats" / "a.parquet",
                  random_features(rng, entities=300, rows=3000, days=20))
    fs = get_feature_store(online_settings)
    fs.apply([DRIVER, _view(ttl=timedelta(days=3))])
    with pytest.raises(ConflictError, match="has not been materialized"):
        fs.check_skew("stats")
    fs.materialize(end=datetime(2024, 1, 15))
    clean = fs.check_skew("stats", sample=1000)
    assert clean["entities"] == 300 and clean["mismatched"] == 0 and clean["missing_online"] == 0
    assert clean["at"] == "2024-01-15T00:00:00+00:00"
    # plant: one wrong value, one missing row
    store = fs.online
    (row,) = store.read_rows("stats", ["7"])
    assert row is not None
    store.write_rows("stats", ["7", "8"], [{**row, "x": row["x"] + 1.0}, None])
    found = fs.check_skew("stats", sample=1000)
    assert found["mismatched_entities"] == 2 and found["missing_online"] == 1
    wrong = [m for m in found["mismatches"] if m["entity"] == {"driver_id": 7}]
    assert wrong == [{"entity": {"driver_id": 7}, "feature": "x", "offline": row["x"], "online": row["x"] + 1.0}]
    assert {m["feature"] for m in found["mismatches"] if m["entity"] == {"driver_id": 8}} == {"x", "n", "flag", "label_text"}
    assert fs.check_skew("stats", sample=10)["entities"] == 10


def test_online_reads_coerce_keys_and_reject_bad_requests(online_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    root = online_settings.project_dir
    write_parquet(root / "data" / "stats" / "a.parquet", _rows([1, 2], [T0, T0], [1.5, 2.5]))
    write_parquet(root / "data" / "zones.parquet", pd.DataFrame({
        "driver_id": [1, 1], "city": ["ber", "par"], "event_timestamp": [T0, T0], "demand": [0.1, 0.2]}))
    zones = FeatureView("zones", ("driver", "city"), "data/zones.parquet", "event_timestamp", (Field("demand", "float"),))
    bonus = OnDemandFeature("x_bonus", ("stats:x", "bonus"), lambda df: df["x"] + df["bonus"], "float")
    fs = get_feature_store(online_settings)
    fs.apply([DRIVER, Entity("city", ("city",)), _view(), zones, bonus])
    fs.materialize(end=T0 + pd.Timedelta(days=1))
    # keys as text (a command line) find integer keys; numpy integers too
    assert fs.get_online_features([{"driver_id": "2"}, {"driver_id": np.int64(1)}], ["stats:x"]) == {"x": [2.5, 1.5]}
    assert fs.get_online_features([{"driver_id": None}], ["stats:x"]) == {"x": [None]}
    rows = [{"driver_id": 1, "city": "par", "bonus": 1.0}, {"driver_id": 1, "city": "xxx", "bonus": 2.0},
            {"driver_id": 3, "city": "ber", "bonus": 3.0}]
    assert fs.get_online_features(rows, ["zones:demand", "x_bonus", "stats:n"]) == {
        "demand": [0.2, None, None], "x_bonus": [2.5, 3.5, None], "n": [0, 0, None]}
    assert fs.get_online_features(rows[:1], ["stats:x", "zones:demand"], full_names=True) == {
        "stats__x": [1.5], "zones__demand": [0.2]}
    with pytest.raises(InvalidInputError, match="cannot be read as BIGINT"):
        fs.get_online_features([{"driver_id": "seven"}], ["stats:x"])
    with pytest.raises(InvalidInputError, match="has no 'city'"):
        fs.get_online_features([{"driver_id": 1}], ["zones:demand"])
    with pytest.raises(InvalidInputError, match="have no 'bonus'"):
        fs.get_online_features({"driver_id": [1]}, ["x_bonus"])
    with pytest.raises(NotFoundError, match="feature 'nope' is not in view 'stats'"):
        fs.get_online_features([{"driver_id": 1}], ["stats:nope"])
    with pytest.raises(NotFoundError, match="feature view 'other' is not defined"):
        fs.get_online_features([{"driver_id": 1}], ["other:x"])
    with pytest.raises(NotFoundError, match="feature view 'other' is not defined"):
        fs.materialize(views=["other"])


def test_redis_and_sqlite_online_stores_behave_identically(request: pytest.FixtureRequest, tmp_path: Path,
                                                           write_parquet: Callable[..., Path]) -> None:
    url = redis_url(request)
    sqlite_settings = Settings.for_dir(tmp_path)
    redis_settings = Settings.for_dir(tmp_path, features_online_store=url)
    d = tmp_path / "data" / "stats"
    rng = np.random.default_rng(21)
    write_parquet(d / "a.parquet", random_features(rng, entities=200, rows=4000, days=20))
    stores = [FeatureStore(sqlite_settings), FeatureStore(redis_settings)]
    try:
        stores[0].apply([DRIVER, _view(ttl=timedelta(days=4))])
        ids = list(range(205))
        feats = ["stats:x", "stats:n", "stats:flag", "stats:label_text"]

        def step(end: datetime) -> list[tuple[Any, ...]]:
            out = []
            for fs in stores:
                v = fs.materialize(end=end)["views"][0]
                out.append((v["mode"], v["written"], v["deleted"], v["unchanged"], v["rows_scanned"],
                            str(fs.get_online_features({"driver_id": ids}, feats))))
            return out

        for end in (datetime(2024, 1, 5), datetime(2024, 1, 9), datetime(2024, 1, 9)):
            a, b = step(end)
            assert a == b
        write_parquet(d / "b.parquet", random_features(rng, entities=200, rows=500, start="2024-01-08", days=3))
        a, b = step(datetime(2024, 1, 12))
        assert a == b and a[0] == "incremental" and a[1] > 0
        assert stores[0].online.identity != stores[1].online.identity
    finally:
        for fs in stores:
            fs.close()
        from loopml import storage

        storage.reset_backends()
        import redis

        client = redis.Redis.from_url(url)
        from loopml.features.online import project_prefix

        keys = list(client.scan_iter(match=project_prefix(redis_settings) + "*"))
        if keys:
            client.unlink(*keys)
        client.close()


def test_sql_sources_rebuild_when_rows_arrive_before_the_watermark(online_settings: Settings,
                                                                   write_parquet: Callable[..., Path]) -> None:
    d = online_settings.project_dir / "data" / "stats"
    write_parquet(d / "a.parquet", _rows([1, 2], [T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=5)], [1, 2]))
    view = FeatureView("stats", ("driver",), "sql: SELECT * FROM read_parquet('data/stats/*.parquet') WHERE x < 1000",
                       "event_timestamp", (Field("x", "float"),))
    fs = get_feature_store(online_settings)
    fs.apply([DRIVER, view])
    end = T0 + pd.Timedelta(days=1)
    fs.materialize(end=end)
    write_parquet(d / "b.parquet", _rows([2], [T0 + pd.Timedelta(hours=8)], [20]))  # after the watermark
    run = fs.materialize(end=end)["views"][0]
    assert (run["mode"], run["rows_scanned"], run["written"]) == ("incremental", 1, 1)
    write_parquet(d / "c.parquet", _rows([1], [T0 + pd.Timedelta(hours=2)], [10]))  # late
    run = fs.materialize(end=end)["views"][0]
    assert run["mode"] == "full" and "late-arriving" in run["reason"] and run["written"] == 1
    assert fs.get_online_features({"driver_id": [1, 2]}, ["stats:x"]) == {"x": [10.0, 20.0]}


def test_get_feature_store_is_cached_per_project_and_online_store(tmp_path: Path) -> None:
    from loopml import features

    s = Settings.for_dir(tmp_path)
    try:
        assert get_feature_store(s) is get_feature_store(s)
        other = Settings.for_dir(tmp_path, features_online_store="sqlite:///.loopml/other.db")
        assert get_feature_store(other) is not get_feature_store(s)
        assert get_feature_store(other).online.identity.endswith("other.db")
        first = get_feature_store(s)
        features.reset()
        assert get_feature_store(s) is not first
    finally:
        features.reset()
        from loopml import storage

        storage.reset_backends()
