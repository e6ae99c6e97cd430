"""Requests with only entity keys, enriched from the online feature store on a live server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serving_helpers import LiveServer  # type: ignore[import-not-found]
from sklearn.linear_model import LogisticRegression

import loopml.registry as reg
from loopml.config import Settings
from loopml.features import Entity, FeatureView, Field, get_feature_store
from loopml.serving.deployments import get_deployments
from loopml.serving.predlog import read_predictions


@pytest.fixture
def driver_features(settings: Settings, tmp_path: Path) -> tuple[pd.DataFrame, LogisticRegression]:
    rng = np.random.default_rng(3)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for driver in range(1, 21):
        for k in range(3):
            rows.append({"driver_id": driver, "event_timestamp": now - timedelta(hours=3 - k),
                         "rate": float(rng.normal()), "trips": float(rng.integers(0, 50))})
    frame = pd.DataFrame(rows)
    path = tmp_path / "drivers.parquet"
    frame.to_parquet(path)
    store = get_feature_store(settings)
    store.apply([Entity("driver", ("driver_id",)),
                 FeatureView("stats", entities=("driver",), source=str(path), timestamp="event_timestamp",
                             features=(Field("rate", "float"), Field("trips", "float")), ttl=timedelta(days=1))])
    store.materialize()
    latest = frame.sort_values("event_timestamp").groupby("driver_id").last()
    X = latest[["rate", "trips"]]
    model = LogisticRegression().fit(X, (X["rate"] > 0).astype(int))
    reg.register(model, "driver-model", input_example=X.head(3), settings=settings)
    return latest, model


def test_entity_keys_are_enriched_before_prediction(serve: Callable[..., LiveServer], settings: Settings,
                                                    driver_features: tuple[pd.DataFrame, LogisticRegression]) -> None:
    latest, model = driver_features
    deps = get_deployments(settings)
    deps.create("drivers", "models:/driver-model/1")
    deps.set_features("drivers", ["stats:rate", "stats:trips"])
    assert deps.get("drivers").features == ("stats:rate", "stats:trips")
    live = serve(deployment="drivers")
    ids = [3, 7, 11]
    with live.client() as c:
        r = c.post("/invocations", json={"dataframe_records": [{"driver_id": i} for i in ids]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == model.predict(latest.loc[ids, ["rate", "trips"]]).tolist()
        r = c.post("/invocations", json={"dataframe_records": [{"driver_id": 999}]})
        assert r.status_code == 422 and "no online features" in r.json()["message"] and "999" in r.json()["message"]
        r = c.post("/invocations", json={"dataframe_records": [{"driver": 3}]})
        assert r.status_code == 400 and "driver_id" in r.json()["message"]
    assert live.state.predlog is not None
    live.state.predlog.flush()
    logged = read_predictions("drivers", settings=settings).column("inputs").flatten()
    assert logged[0].to_pylist() == latest.loc[ids, "rate"].tolist()  # the enriched inputs were logged
    # a later change of the model keeps the feature list
    deps.update("drivers", "models:/driver-model/1")
    assert deps.get("drivers").features == ("stats:rate", "stats:trips")
