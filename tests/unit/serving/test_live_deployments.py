"""Deployment strategies on a running server: canary split, sticky keys, shadow, blue-green switch and
rollback under concurrent load (zero failed requests), changes picked up without a restart."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pandas as pd
import pytest
from serving_helpers import LiveServer  # type: ignore[import-not-found]
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import loopml.registry as reg
from loopml.config import Settings
from loopml.serving.deployments import get_deployments
from loopml.serving.predlog import read_predictions


@pytest.fixture
def versions(settings: Settings) -> pd.DataFrame:
    """Three versions of one model: v1 and v3 agree with the labels, v2 answers the opposite class."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    for target in (y, 1 - y, y):
        reg.register(LogisticRegression(max_iter=5000).fit(X, target), "cancer", input_example=X.head(5),
                     settings=settings)
    return X


def body(X: pd.DataFrame, i: int = 0) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(X.columns), "data": X.iloc[[i]].to_numpy().tolist()}}


def wait_for(c: httpx.Client, X: pd.DataFrame, want_model: str, timeout: float = 2.0) -> float:
    """Seconds until answers come from ``want_model``."""
    started = time.monotonic()
    while c.post("/invocations", json=body(X)).headers["x-loopml-model"] != want_model:
        assert time.monotonic() - started < timeout, f"still not serving {want_model}"
        time.sleep(0.02)
    return time.monotonic() - started


def test_canary_split_is_within_statistical_tolerance_and_sticky(serve: Callable[..., LiveServer], settings: Settings,
                                                                 versions: pd.DataFrame) -> None:
    X = versions
    deps = get_deployments(settings)
    deps.create("web", "models:/cancer/1")
    deps.canary("web", "models:/cancer/2", weight=30)
    live = serve(deployment="web")
    n = 1500
    with live.client() as c:
        seen = Counter(c.post("/invocations", json=body(X, i % 50)).headers["x-loopml-variant"] for i in range(n))
        share = seen["canary"] / n
        sigma = math.sqrt(0.3 * 0.7 / n)
        assert abs(share - 0.3) < 4 * sigma, seen
        # sticky: the same user always gets the same variant
        deps.canary("web", "models:/cancer/2", weight=30, sticky_header="X-User")
        wait_revision(live, deps.revision("web"))
        for user in ("ann", "bob", "cyd", "dan", "eve"):
            variants = {c.post("/invocations", json=body(X), headers={"X-User": user}).headers["x-loopml-variant"]
                        for _ in range(15)}
            assert len(variants) == 1, (user, variants)


def wait_revision(live: LiveServer, revision: int, timeout: float = 2.0) -> None:
    started = time.monotonic()
    while live.state.router is None or live.state.router.revision != revision:
        assert time.monotonic() - started < timeout, "the server did not pick up the change"
        time.sleep(0.01)


def test_shadow_answers_are_logged_and_compared_never_returned(serve: Callable[..., LiveServer], settings: Settings,
                                                               versions: pd.DataFrame) -> None:
    X = versions
    deps = get_deployments(settings)
    deps.create("shadowed", "models:/cancer/1")
    deps.shadow("shadowed", "models:/cancer/2")
    live = serve(deployment="shadowed")
    with live.client() as c:
        for i in range(20):
            r = c.post("/invocations", json=body(X, i))
            assert r.headers["x-loopml-model"] == "models:/cancer/1"
        time.sleep(0.3)  # shadow calls run after the answer
        metrics = c.get("/metrics").text
    assert 'loopml_shadow_rows_total{deployment="shadowed",result="disagree",variant="shadow"} 20.0' in metrics
    assert live.state.predlog is not None
    live.state.predlog.flush()
    log = read_predictions("shadowed", settings=settings).to_pandas()
    assert sorted(Counter(log["role"]).items()) == [("live", 20), ("shadow", 20)]
    paired = log.pivot_table(index="request_id", columns="role", values="prediction", aggfunc="first")
    assert ((paired["live"] + paired["shadow"]) == 1).all()  # v2 answers the opposite class, only in the log


def test_blue_green_switch_and_rollback_under_load_fail_no_request(serve: Callable[..., LiveServer],
                                                                   settings: Settings, versions: pd.DataFrame) -> None:
    X = versions
    deps = get_deployments(settings)
    deps.create("bg", "models:/cancer/1", strategy="blue-green")
    deps.stage("bg", "models:/cancer/3")
    live = serve(deployment="bg")
    stop = threading.Event()
    failures: list[str] = []
    answered: Counter[str] = Counter()
    lock = threading.Lock()

    def hammer() -> None:
        with live.client() as c:
            i = 0
            while not stop.is_set():
                try:
                    r = c.post("/invocations", json=body(X, i % 100))
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        with lock:
                            answered[r.headers["x-loopml-model"]] += 1
                except httpx.HTTPError as e:
                    failures.append(repr(e))
                i += 1

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        with live.client() as c:
            time.sleep(0.3)
            deps.switch("bg")
            took = wait_for(c, X, "models:/cancer/3")
            assert took < 1.0
            time.sleep(0.3)
            deps.rollback("bg")
            took = wait_for(c, X, "models:/cancer/1")
            assert took < 1.0
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert answered["models:/cancer/1"] > 50 and answered["models:/cancer/3"] > 50


def test_admin_endpoint_changes_the_deployment(serve: Callable[..., LiveServer], settings: Settings,
                                               versions: pd.DataFrame) -> None:
    X = versions
    deps = get_deployments(settings)
    deps.create("api", "models:/cancer/1")
    live = serve(deployment="api")
    with live.client() as c:
        r = c.post("/admin/deployment/canary", json={"model": "models:/cancer/2", "weight": 50})
        assert r.status_code == 200, r.text
        assert {v["variant"]: v["weight"] for v in r.json()["variants"]} == {"primary": 50, "canary": 50}
        r = c.post("/admin/deployment/weight", json={"weight": 150})
        assert r.status_code == 400 and "weight" in r.json()["message"]
        assert c.post("/admin/deployment/promote").status_code == 200
        assert wait_for(c, X, "models:/cancer/2") < 1.0
        r = c.post("/admin/deployment/rollback", json={})
        assert r.status_code == 200 and r.json()["revision"] == deps.revision("api")
        assert c.post("/admin/deployment/explode").status_code == 404
        r = c.post("/admin/deployment/update", json={"model": "models:/cancer/77"})
        assert r.status_code == 404 and "77" in r.json()["message"]
