"""Definitions: versions on every metadata backend, and malformed definitions rejected with clear errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from features_helpers import random_features

from loopml import data
from loopml.config import Settings
from loopml.errors import InvalidInputError, NotFoundError
from loopml.features import Entity, FeatureStore, FeatureView, Field, OnDemandFeature, get_feature_store

DRIVER = Entity("driver", ("driver_id",), description="a driver")


def _view(**changes: object) -> FeatureView:
    base: dict[str, object] = {
        "name": "stats", "entities": ("driver",), "source": "data/stats.parquet", "timestamp": "event_timestamp",
        "features": (Field("x", "float"), Field("n", "int")), "ttl": timedelta(days=1),
    }
    base.update(changes)
    return FeatureView(**base)  # type: ignore[arg-type]


@pytest.fixture
def stats_file(write_parquet: Callable[..., Path]) -> Callable[[Settings], Path]:
    def make(settings: Settings) -> Path:
        return write_parquet(settings.project_dir / "data" / "stats.parquet",
                             random_features(np.random.default_rng(0), entities=5, rows=50))
    return make


def test_definitions_are_versioned(backend_settings: Settings, stats_file: Callable[[Settings], Path]) -> None:
    stats_file(backend_settings)
    fs = get_feature_store(backend_settings)
    first = fs.apply([DRIVER, _view()])
    assert [(r["kind"], r["name"], r["version"], r["status"]) for r in first] == [
        ("entity", "driver", 1, "created"), ("view", "stats", 1, "created")]
    again = fs.apply([DRIVER, _view()])
    assert [(r["version"], r["status"]) for r in again] == [(1, "unchanged"), (1, "unchanged")]
    # an equal definition built anew is still unchanged; a changed one is the next version
    assert fs.apply([_view(features=[Field("x", "float"), Field("n", "int")])])[0]["status"] == "unchanged"
    changed = fs.apply([_view(ttl=timedelta(days=2))])
    assert changed == [{"kind": "view", "name": "stats", "version": 2, "status": "updated"}]
    fs.apply([_view(description="now documented")])
    assert fs.get_view("stats").description == "now documented"
    assert fs.get_view("stats@1").ttl == timedelta(days=1)
    assert fs.get_view("stats@2").ttl == timedelta(days=2)
    assert fs.get_view("stats") == _view(description="now documented")
    assert fs.get_entity("driver") == DRIVER
    listed = {(i["kind"], i["name"]): i for i in fs.list()}
    assert listed[("view", "stats")]["version"] == 3 and listed[("view", "stats")]["versions"] == 3
    assert listed[("entity", "driver")]["join_keys"] == ["driver_id"]
    shown = fs.describe("stats")
    assert [v["version"] for v in shown["versions"]] == [1, 2, 3]
    assert shown["spec"]["key_types"] == {"driver_id": "BIGINT"}
    with pytest.raises(NotFoundError, match="feature view 'other' is not defined; known: stats"):
        fs.get_view("other")
    with pytest.raises(NotFoundError, match="has no version 9"):
        fs.get_view("stats@9")
    # another process (a new store object) sees the same versions
    assert FeatureStore(backend_settings).get_view("stats@2").ttl == timedelta(days=2)


def test_on_demand_definitions_are_versioned_by_code(fs_settings: Settings, stats_file: Callable[[Settings], Path]) -> None:
    stats_file(fs_settings)
    fs = get_feature_store(fs_settings)

    def doubled(df: pd.DataFrame) -> pd.Series:
        return df["x"] * 2

    def tripled(df: pd.DataFrame) -> pd.Series:
        return df["x"] * 3

    fs.apply([DRIVER, _view(), OnDemandFeature("x2", ("stats:x",), doubled, "float")])
    assert fs.apply([OnDemandFeature("x2", ("stats:x",), doubled, "float")])[0]["status"] == "unchanged"
    assert fs.apply([OnDemandFeature("x2", ("stats:x",), tripled, "float")])[0]["version"] == 2
    # a fresh store (another process) loads the stored function
    fresh = FeatureStore(fs_settings)
    loaded = fresh.get_on_demand("x2")
    assert list(loaded.fn(pd.DataFrame({"x": [1.0, 2.0]}))) == [3.0, 6.0]
    fresh.close()


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([Entity("driver", ())], "entity 'driver' has no join keys"),
        ([Entity("bad name!", ("id",))], "entity name 'bad name!' is invalid"),
        ([DRIVER, _view(timestamp="ts")], "has no timestamp column 'ts'"),
        ([DRIVER, _view(timestamp="label_text")], "timestamp column 'label_text' is VARCHAR, not a date or timestamp"),
        ([DRIVER, _view(features=(Field("x", "int"),))], "feature 'x' is declared 'int' but the source column is DOUBLE"),
        ([DRIVER, _view(features=(Field("label_text", "float"),))], "declared 'float' but the source column is VARCHAR"),
        ([DRIVER, _view(features=(Field("x", "double"),))], "dtype 'double'; use one of float, int, string, bool"),
        ([DRIVER, _view(features=(Field("x", "float"), Field("x", "float")))], "declares feature 'x' twice"),
        ([DRIVER, _view(features=(Field("missing", "float"),))], "has no column 'missing' for feature 'missing'"),
        ([DRIVER, _view(features=())], "declares no features"),
        ([DRIVER, _view(ttl=timedelta(hours=-1))], "ttl must be positive"),
        ([DRIVER, _view(ttl=timedelta(0))], "ttl must be positive"),
        ([DRIVER, _view(ttl=30)], "ttl must be a datetime.timedelta"),
        ([_view()], "uses unknown entity 'driver'"),
        ([Entity("driver", ("id",)), _view()], r"no join key column\(s\) \['id'\]"),
        ([DRIVER, _view(source="data/none.parquet")], "does not exist"),
        ([DRIVER, _view(source="data/*.csv")], "no parquet files match"),
        ([DRIVER, _view(source="sql: SELECT nonsense FROM nowhere")], "cannot be read"),
        ([DRIVER, _view(source="datasets:/unknown")], "dataset 'unknown' is not registered"),
        ([DRIVER, _view(features=(Field("driver_id", "int"),))], "'driver_id' is a join key or the timestamp column"),
        ([DRIVER, _view(), OnDemandFeature("o", ("stats:zzz",), lambda df: df, "float")], "view 'stats' has no feature 'zzz'"),
        ([DRIVER, _view(), OnDemandFeature("o", ("nope:x",), lambda df: df, "float")], "names unknown view 'nope'"),
        ([DRIVER, _view(), OnDemandFeature("o", ("stats:x",), lambda df: df, "decimal")], "dtype 'decimal'"),
        ([DRIVER, _view(), OnDemandFeature("o", (), lambda df: df, "float")], "has no inputs"),
        ([DRIVER, _view(), OnDemandFeature("o", ("a",), "not callable", "float")], "fn must be a function"),  # type: ignore[arg-type]
        (["driver"], "cannot apply str"),
    ],
)
def test_malformed_definitions_are_rejected(fs_settings: Settings, stats_file: Callable[[Settings], Path],
                                            objects: list[object], message: str) -> None:
    stats_file(fs_settings)
    fs = get_feature_store(fs_settings)
    with pytest.raises(InvalidInputError, match=message) as info:
        fs.apply(objects)  # type: ignore[arg-type]
    assert "nothing was applied" in info.value.message
    assert fs.list() == []


def test_every_problem_is_listed_and_nothing_is_stored(fs_settings: Settings, stats_file: Callable[[Settings], Path]) -> None:
    stats_file(fs_settings)
    fs = get_feature_store(fs_settings)
    with pytest.raises(InvalidInputError) as info:
        fs.apply([Entity("driver", ()), _view(name="ok", entities=("rider",)),
                  _view(name="bad", ttl=timedelta(days=-1), features=(Field("x", "long"),))])
    problems = info.value.details["problems"]
    assert len(problems) == 5, problems  # the invalid entity also makes 'bad' reference an unknown entity
    assert info.value.message.startswith("5 problems in the feature definitions: (1) entity 'driver' has no join keys")
    assert any("view 'ok' uses unknown entity 'rider'" in p for p in problems)
    assert any("view 'bad': ttl must be positive" in p for p in problems)
    assert any("view 'bad': feature 'x' has dtype 'long'" in p for p in problems)
    assert fs.list() == []


def test_dataset_sources_are_checked_from_the_snapshot(fs_settings: Settings) -> None:
    frame = random_features(np.random.default_rng(0), entities=5, rows=50)
    data.register("stats", frame, settings=fs_settings)
    fs = get_feature_store(fs_settings)
    fs.apply([DRIVER, _view(source="datasets:/stats")])
    with pytest.raises(InvalidInputError, match="has no column 'y'"):
        fs.apply([_view(source="datasets:/stats/1", features=(Field("y", "float"),))])
