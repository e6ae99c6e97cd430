"""Point-in-time training sets: no leakage (against pandas.merge_asof), TTL, row order and
duplicates, ties in the source, several views, every source kind, on-demand features, lineage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from features_helpers import random_features

from loopml import data
from loopml.config import Settings
from loopml.errors import InvalidInputError, NotFoundError
from loopml.features import Entity, FeatureView, Field, OnDemandFeature, get_feature_store

DRIVER = Entity("driver", ("driver_id",))
STATS_FIELDS = (Field("x", "float"), Field("n", "int"), Field("flag", "bool"), Field("label_text", "string"))
T0 = pd.Timestamp("2024-01-01")


def _null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT


def assert_same_values(got: pd.Series, want: pd.Series, column: str) -> None:
    assert len(got) == len(want), column
    for i, (g, w) in enumerate(zip(got.tolist(), want.tolist(), strict=True)):
        if _null(w):
            assert _null(g), f"{column} row {i}: expected null, got {g!r}"
        else:
            assert not _null(g), f"{column} row {i}: expected {w!r}, got null"
            if isinstance(w, float):
                assert g == pytest.approx(w, rel=0, abs=0), f"{column} row {i}"
            else:
                assert g == w, f"{column} row {i}: {g!r} != {w!r}"


def _stats_view(source: str = "data/stats.parquet", ttl: timedelta | None = timedelta(days=5), name: str = "stats") -> FeatureView:
    return FeatureView(name, ("driver",), source, "event_timestamp", STATS_FIELDS, ttl=ttl)


@pytest.mark.parametrize("string_keys", [False, True], ids=["int-keys", "str-keys"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_leakage_matches_merge_asof(fs_settings: Settings, write_parquet: Callable[..., Path], seed: int,
                                       string_keys: bool) -> None:
    rng = np.random.default_rng(seed)
    feats = random_features(rng, entities=40, rows=4000, string_keys=string_keys)
    write_parquet(fs_settings.project_dir / "data" / "stats.parquet", feats, row_group_size=700)
    ttl = timedelta(days=5)
    fs = get_feature_store(fs_settings)
    fs.apply([DRIVER, _stats_view(ttl=ttl)])

    n = 3000
    ids = rng.integers(0, 45, n)  # 40..44 are unknown entities
    times = T0 - pd.Timedelta(days=3) + pd.to_timedelta(rng.integers(0, 70 * 86_400, n), unit="s")
    exact = feats.sample(200, random_state=seed)  # rows exactly at a feature row's time: that row counts
    ent = pd.DataFrame({
        "driver_id": [f"d{i}" for i in ids] if string_keys else ids.astype("int64"),
        "event_timestamp": times,
        "label": rng.random(n),
    })
    ent = pd.concat([ent, exact[["driver_id", "event_timestamp"]].assign(label=-1.0), ent.iloc[:150]],
                    ignore_index=True)  # ... and exact duplicate entity rows
    ent = ent.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # unsorted input

    got = fs.get_training_set(ent, ["stats:*"]).to_pandas()

    want = pd.merge_asof(
        ent.assign(_i=np.arange(len(ent))).sort_values("event_timestamp", kind="stable"),
        feats.sort_values("event_timestamp", kind="stable"),
        on="event_timestamp", by="driver_id", direction="backward", tolerance=pd.Timedelta(ttl),
        allow_exact_matches=True,
    ).sort_values("_i").reset_index(drop=True)
    assert list(got.columns) == ["driver_id", "event_timestamp", "label", "x", "n", "flag", "label_text"]
    assert len(got) == len(ent)
    pd.testing.assert_frame_equal(got[["driver_id", "event_timestamp", "label"]], ent)  # every row, in order
    for col in ("x", "n", "flag", "label_text"):
        assert_same_values(got[col], want[col], col)

    # and directly: no value comes from after its row's time, or from before the TTL window
    source_time = dict(zip(feats["x"], feats["event_timestamp"], strict=True))
    filled = got[got["x"].notna()]
    assert len(filled) > 500
    for x, t in zip(filled["x"], filled["event_timestamp"], strict=True):
        assert t - pd.Timedelta(ttl) <= source_time[x] <= t


def test_ttl_expiry_and_rows_before_the_first_feature_row(fs_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    feats = pd.DataFrame({
        "driver_id": [1, 1, 2],
        "event_timestamp": [T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=10), T0 + pd.Timedelta(days=1)],
        "x": [1.0, 10.0, 2.0], "n": [1, 10, 2], "flag": [True, False, True], "label_text": ["a", "b", "c"],
    })
    write_parquet(fs_settings.project_dir / "data" / "stats.parquet", feats)
    fs = get_feature_store(fs_settings)
    fs.apply([DRIVER, _stats_view(ttl=timedelta(days=2))])
    ent = pd.DataFrame({
        "driver_id": [1, 1, 1, 1, 2, 2, 3],
        "event_timestamp": [
            T0,  # before driver 1's first row: null, kept
            T0 + pd.Timedelta(days=1),  # exactly at the row's time: included
            T0 + pd.Timedelta(days=3),  # exactly at the TTL edge: still valid
            T0 + pd.Timedelta(days=3, seconds=1),  # one second past the TTL: null
            T0 + pd.Timedelta(days=2), T0 + pd.Timedelta(days=30),  # valid, then expired
            T0 + pd.Timedelta(days=2),  # unknown entity
        ],
    })
    out = fs.get_training_set(ent, ["stats:x", "stats:n"]).to_pydict()
    assert out["x"] == [None, 1.0, 1.0, None, 2.0, None, None]
    assert out["n"] == [None, 1, 1, None, 2, None, None]
    assert out["driver_id"] == [1, 1, 1, 1, 2, 2, 3]
    # without a TTL the old value stays valid forever
    fs.apply([_stats_view(ttl=None)])
    assert fs.get_training_set(ent, ["stats:x"]).column("x").to_pylist() == [None, 1.0, 1.0, 1.0, 2.0, 2.0, None]


def test_equal_source_timestamps_resolve_to_the_last_row_in_source_order(
        fs_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    d = fs_settings.project_dir / "data" / "ties"
    t = T0 + pd.Timedelta(hours=5)
    base = {"flag": [True, True], "label_text": ["a", "a"], "n": [0, 0]}
    write_parquet(d / "a.parquet", pd.DataFrame({"driver_id": [1, 1], "event_timestamp": [t, t], "x": [1.0, 2.0], **base}))
    write_parquet(d / "b.parquet", pd.DataFrame({"driver_id": [2, 2], "event_timestamp": [t, t], "x": [3.0, 4.0], **base}))
    write_parquet(d / "c.parquet", pd.DataFrame({"driver_id": [2, 1], "event_timestamp": [t, t], "x": [5.0, 6.0], **base}))
    fs = get_feature_store(fs_settings)
    fs.apply([DRIVER, _stats_view(source="data/ties")])
    ent = pd.DataFrame({"driver_id": [1, 2, 1], "event_timestamp": [t, t + pd.Timedelta(seconds=1), t - pd.Timedelta(seconds=1)]})
    for _ in range(3):  # deterministic
        assert fs.get_training_set(ent, ["stats:x"]).column("x").to_pylist() == [6.0, 5.0, None]
    # a single file: the later row wins
    write_parquet(fs_settings.project_dir / "data" / "one.parquet",
                  pd.DataFrame({"driver_id": [1, 1, 1], "event_timestamp": [t, t, t], "x": [7.0, 8.0, 9.0],
                                "flag": [True] * 3, "label_text": ["a"] * 3, "n": [0] * 3}))
    fs.apply([_stats_view(source="data/one.parquet", name="one")])
    assert fs.get_training_set(ent.head(1), ["one:x"]).column("x").to_pylist() == [9.0]


def test_several_views_composite_keys_and_time_zones(fs_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    root = fs_settings.project_dir
    write_parquet(root / "data" / "stats.parquet", pd.DataFrame({
        "driver_id": [1, 1, 2], "event_timestamp": [T0, T0 + pd.Timedelta(hours=2), T0],
        "x": [1.0, 1.5, 2.0], "n": [1, 2, 3], "flag": [True, False, True], "label_text": ["a", "b", "c"],
    }))
    write_parquet(root / "data" / "zones.parquet", pd.DataFrame({
        "driver_id": [1, 1, 2], "city": ["ber", "par", "ber"],
        "ts": pd.to_datetime([T0, T0 + pd.Timedelta(hours=1), T0]).tz_localize("UTC"),
        "demand": [0.1, 0.2, 0.3],
    }))
    city = Entity("city", ("city",))
    zones = FeatureView("zones", ("driver", "city"), "data/zones.parquet", "ts", (Field("demand", "float"),))
    fs = get_feature_store(fs_settings)
    fs.apply([DRIVER, city, _stats_view(), zones])
    ent = pd.DataFrame({
        "driver_id": [1, 1, 2, 1],
        "city": ["par", "ber", "ber", "par"],
        # entity times in Berlin local time: 02:30+01:00 is 01:30 UTC; source times are UTC
        "event_timestamp": pd.to_datetime(["2024-01-01 02:30", "2024-01-01 03:30", "2024-01-01 01:00",
                                           "2024-01-01 01:30"]).tz_localize("Europe/Berlin"),
    })
    out = fs.get_training_set(ent, ["stats:x", "zones:demand", "stats:n"]).to_pydict()
    assert list(out) == ["driver_id", "city", "event_timestamp", "x", "demand", "n"]
    assert out["x"] == [1.0, 1.5, 2.0, 1.0]
    assert out["demand"] == [0.2, 0.1, 0.3, None]  # 00:30 UTC is before par's 01:00 row
    assert out["n"] == [1, 2, 3, 1]


def test_sql_source_and_dataset_source_with_registered_lineage(fs_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    rng = np.random.default_rng(5)
    feats = random_features(rng, entities=10, rows=300)
    write_parquet(fs_settings.project_dir / "data" / "stats.parquet", feats)
    dv = data.register("driver_stats", feats, settings=fs_settings)
    fs = get_feature_store(fs_settings)
    doubled = FeatureView(
        "doubled", ("driver",),
        "sql: SELECT driver_id, event_timestamp, x * 2 AS x2 FROM read_parquet('data/stats.parquet')",
        "event_timestamp", (Field("x2", "float"),),
    )
    fs.apply([DRIVER, _stats_view(source="datasets:/driver_stats", ttl=None), doubled])
    ent = pd.DataFrame({"driver_id": np.arange(12), "event_timestamp": [T0 + pd.Timedelta(days=20)] * 12})
    out = fs.get_training_set(ent, ["stats:x", "doubled:x2"], register_as="train-set")
    x, x2 = out.column("x").to_pylist(), out.column("x2").to_pylist()
    assert [None if v is None else 2 * v for v in x] == x2
    assert sum(v is not None for v in x) == 10 and x[10] is None and x[11] is None

    uri = out.schema.metadata[b"loopml.dataset"].decode()
    assert uri == "datasets:/train-set/1"
    version = data.resolve(uri, settings=fs_settings)
    assert version.num_rows == 12
    assert "stats v1 (datasets:/driver_stats/1)" in version.source and "doubled v1 (sql)" in version.source
    assert "stats@1" in version.tags["feature_views"] and "doubled@1" in version.tags["feature_views"]
    assert "stats:x" in version.description
    pd.testing.assert_frame_equal(data.load(uri, settings=fs_settings), out.to_pandas())
    assert dv.uri == "datasets:/driver_stats/1"


def test_on_demand_features_offline(fs_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    write_parquet(fs_settings.project_dir / "data" / "stats.parquet", pd.DataFrame({
        "driver_id": [1, 2], "event_timestamp": [T0, T0], "x": [1.0, 2.0], "n": [3, 4],
        "flag": [True, False], "label_text": ["a", "b"],
    }))
    ratio = OnDemandFeature("x_per_trip", ("stats:x", "stats:n", "trip_km"),
                            lambda df: df["x"] / df["n"] * df["trip_km"], "float")
    label = OnDemandFeature("is_long", ("trip_km",), lambda df: df["trip_km"] > 10, "bool")
    fs = get_feature_store(fs_settings)
    fs.apply([DRIVER, _stats_view(), ratio, label])
    ent = pd.DataFrame({"driver_id": [1, 2, 9], "event_timestamp": [T0 + pd.Timedelta(hours=1)] * 3,
                        "trip_km": [3.0, 20.0, 5.0]})
    out = fs.get_training_set(ent, ["x_per_trip", "stats:x", "is_long"]).to_pydict()
    assert list(out) == ["driver_id", "event_timestamp", "trip_km", "x_per_trip", "x", "is_long"]
    assert out["x_per_trip"][:2] == pytest.approx([1.0, 10.0])
    assert out["x_per_trip"][2] is None  # the unknown entity's inputs are null
    assert out["is_long"] == [False, True, False]
    with pytest.raises(InvalidInputError, match="request field 'trip_km'"):
        fs.get_training_set(ent.drop(columns="trip_km"), ["x_per_trip"])
    broken = OnDemandFeature("broken", ("trip_km",), lambda df: df["nope"], "float")
    fs.apply([broken])
    with pytest.raises(InvalidInputError, match="on-demand feature 'broken' failed: KeyError"):
        fs.get_training_set(ent, ["broken"])


def test_reference_errors_name_the_problem(fs_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    write_parquet(fs_settings.project_dir / "data" / "stats.parquet", random_features(np.random.default_rng(1), entities=3, rows=20))
    fs = get_feature_store(fs_settings)
    fs.apply([DRIVER, _stats_view()])
    ent = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0]})
    with pytest.raises(NotFoundError, match="feature view 'nope' is not defined; known: stats"):
        fs.get_training_set(ent, ["nope:x"])
    with pytest.raises(NotFoundError, match="feature 'y' is not in view 'stats'.*x, n, flag, label_text"):
        fs.get_training_set(ent, ["stats:y"])
    with pytest.raises(NotFoundError, match="'plain' is neither 'view:feature' nor a known on-demand feature"):
        fs.get_training_set(ent, ["plain"])
    with pytest.raises(NotFoundError, match="has no version 7"):
        fs.get_training_set(ent, ["stats@7:x"])
    with pytest.raises(InvalidInputError, match="no time column 'ts'"):
        fs.get_training_set(ent, ["stats:x"], timestamp="ts")
    with pytest.raises(InvalidInputError, match=r"lack join key column\(s\) \['driver_id'\]"):
        fs.get_training_set(ent.rename(columns={"driver_id": "id"}), ["stats:x"])
    with pytest.raises(InvalidInputError, match="clash with entity columns"):
        fs.get_training_set(ent.assign(x=1.0), ["stats:x"])
    with pytest.raises(InvalidInputError, match="entity column 'driver_id' holds (large_)?string but view 'stats' keys it as BIGINT"):
        fs.get_training_set(ent.assign(driver_id="1"), ["stats:x"])
    with pytest.raises(InvalidInputError, match="not timestamps"):
        fs.get_training_set(ent.assign(event_timestamp=1), ["stats:x"])
    # the same feature name from two views needs full names
    fs.apply([_stats_view(name="stats2")])
    with pytest.raises(InvalidInputError, match="full_names=True"):
        fs.get_training_set(ent, ["stats:x", "stats2:x"])
    out = fs.get_training_set(ent, ["stats:x", "stats2:x"], full_names=True)
    assert out.column_names == ["driver_id", "event_timestamp", "stats__x", "stats2__x"]


def test_arrow_input_and_pinned_versions(fs_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    write_parquet(fs_settings.project_dir / "data" / "stats.parquet", pd.DataFrame({
        "driver_id": [1], "event_timestamp": [T0], "x": [1.0], "n": [3], "flag": [True], "label_text": ["a"],
    }))
    fs = get_feature_store(fs_settings)
    fs.apply([DRIVER, FeatureView("stats", ("driver",), "data/stats.parquet", "event_timestamp", (Field("x", "float"),))])
    fs.apply([FeatureView("stats", ("driver",), "data/stats.parquet", "event_timestamp", (Field("n", "int"),))])
    ent = pa.table({"driver_id": [1], "event_timestamp": pa.array([T0 + pd.Timedelta(days=1)], pa.timestamp("ms"))})
    assert fs.get_training_set(ent, ["stats@1:x"]).column("x").to_pylist() == [1.0]
    # dates and ISO text work as entity times too (a date is its midnight, UTC)
    dates = pa.table({"driver_id": [1, 1], "day": pa.array([T0.date(), (T0 - pd.Timedelta(days=1)).date()], pa.date32())})
    assert fs.get_training_set(dates, ["stats@1:x"], timestamp="day").column("x").to_pylist() == [1.0, None]
    text = pa.table({"driver_id": [1, 1], "at": ["2024-01-01T00:00:00", "2023-12-31 23:59:59"]})
    assert fs.get_training_set(text, ["stats@1:x"], timestamp="at").column("x").to_pylist() == [1.0, None]
    assert fs.get_training_set(ent, ["stats:n"]).column("n").to_pylist() == [3]
    with pytest.raises(NotFoundError, match="feature 'x' is not in view 'stats' \\(version 2\\)"):
        fs.get_training_set(ent, ["stats:x"])


def test_duplicate_entity_rows_are_kept_in_order(fs_settings: Settings, write_parquet: Callable[..., Path]) -> None:
    write_parquet(fs_settings.project_dir / "data" / "stats.parquet", pd.DataFrame({
        "driver_id": [1, 1], "event_timestamp": [T0, T0 + pd.Timedelta(hours=1)], "x": [1.0, 2.0], "n": [1, 2],
        "flag": [True, False], "label_text": ["a", "b"],
    }))
    fs = get_feature_store(fs_settings)
    fs.apply([DRIVER, _stats_view()])
    late, early = T0 + pd.Timedelta(hours=2), T0 + pd.Timedelta(minutes=30)
    ent = pd.DataFrame({"driver_id": [1, 1, 1, 1, 1], "event_timestamp": [late, early, late, early, late],
                        "label": [0, 1, 2, 3, 4]})
    out = fs.get_training_set(ent, ["stats:x"]).to_pydict()
    assert out["label"] == [0, 1, 2, 3, 4]
    assert out["x"] == [2.0, 1.0, 2.0, 1.0, 2.0]


def test_public_api() -> None:
    import loopml.features as features

    assert sorted(features.__all__) == [
        "DTYPES", "Entity", "FeatureStore", "FeatureView", "Field", "OnDemandFeature", "OnlineStore",
        "RedisOnlineStore", "SqliteOnlineStore", "get_feature_store", "load_definitions", "open_online_store", "reset",
    ]
    for name in features.__all__:
        assert hasattr(features, name)
