"""Deployments: strategies, revisions, history, rollback chains, bad input, events and concurrent
writers, on SQLite and PostgreSQL with real registered models."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from loopml import registry
from loopml.config import Settings
from loopml.errors import ConflictError, InvalidInputError, InvalidUriError, NotFoundError
from loopml.serving.deployments import (
    DEPLOYMENT_CHANGED,
    STRATEGIES,
    Deployment,
    DeploymentService,
    Variant,
    get_deployments,
)
from loopml.storage import open_backend
from loopml.storage.events import read_events


@pytest.fixture(scope="module")
def iris_models() -> tuple[pd.DataFrame, list[LogisticRegression]]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, [LogisticRegression(C=c, max_iter=500).fit(X, y) for c in (1.0, 0.3, 0.1)]


@pytest.fixture
def project(backend_settings: Settings, iris_models) -> Settings:
    """A project (on each database) with model ``iris`` versions 1-3 and ``champion`` -> 1; user alice."""
    s = dataclasses.replace(backend_settings, user="alice")
    X, fitted = iris_models
    for clf in fitted:
        registry.register(clf, "iris", input_example=X.head(3), settings=s)
    registry.set_alias("iris", "champion", 1, settings=s)
    return s


@pytest.fixture
def svc(project: Settings) -> DeploymentService:
    return get_deployments(project)


def pinned(dep: Deployment) -> list[tuple[str, str, int, float, str]]:
    return [(v.name, v.model, v.version, v.weight, v.role) for v in dep.variants]


def changed_events(svc: DeploymentService, name: str) -> list[tuple[int, str]]:
    return [(e.payload["revision"], e.payload["action"])
            for e in read_events(svc.backend.metadata, kind=DEPLOYMENT_CHANGED, subject=name)]


# -- create, get, list -----------------------------------------------------------


def test_create_pins_the_version_and_records_revision_1(svc: DeploymentService, project: Settings) -> None:
    dep = svc.create("iris-api", "models:/iris@champion")
    assert (dep.name, dep.revision, dep.strategy, dep.sticky_header) == ("iris-api", 1, "single", None)
    assert pinned(dep) == [("primary", "iris", 1, 100.0, "live")]
    assert dep.live() == list(dep.variants) and dep.shadows() == [] and dep.standby() == []
    assert dep.variants[0].uri == "models:/iris/1"
    assert dep.updated_at > 0
    # the alias moving later does not change what the deployment serves
    registry.set_alias("iris", "champion", 3, settings=project)
    assert svc.get("iris-api") == dep
    assert svc.revision("iris-api") == 1
    [h] = svc.history("iris-api")
    assert (h["revision"], h["previous"], h["action"], h["user"], h["strategy"]) == (1, None, "create", "alice", "single")
    assert h["summary"] == "single: primary=iris/1 100%"
    assert h["variants"] == [v.to_dict() for v in dep.variants]
    assert h["changed_at"] == dep.updated_at


def test_latest_uri_and_round_trip_of_to_dict(svc: DeploymentService) -> None:
    dep = svc.create("latest", "models:/iris")
    assert dep.variants[0].version == 3
    d = dep.to_dict()
    assert d["variants"][0] == {"name": "primary", "model": "iris", "version": 3, "weight": 100.0, "role": "live",
                                "uri": "models:/iris/3"}
    assert Deployment.from_dict(d) == dep


def test_list_is_sorted_and_delete_removes_everything(svc: DeploymentService) -> None:
    svc.create("b-api", "models:/iris/1")
    svc.create("a_api", "models:/iris/2")
    svc.update("b-api", "models:/iris/3")
    assert [d.name for d in svc.list()] == ["a_api", "b-api"]
    svc.delete("b-api")
    assert [d.name for d in svc.list()] == ["a_api"]
    with pytest.raises(NotFoundError, match="known deployments: a_api"):
        svc.get("b-api")
    with pytest.raises(NotFoundError):
        svc.history("b-api")
    with pytest.raises(NotFoundError):
        svc.delete("b-api")
    # the name can be used again, with a fresh history
    again = svc.create("b-api", "models:/iris/1")
    assert again.revision == 1 and [h["revision"] for h in svc.history("b-api")] == [1]
    assert changed_events(svc, "b-api") == [(1, "create"), (2, "update"), (2, "delete"), (1, "create")]


def test_create_conflict_and_bad_input_store_nothing(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")
    with pytest.raises(ConflictError, match="already exists"):
        svc.create("api", "models:/iris/2")
    assert svc.get("api").variants[0].version == 1
    for bad in ("", "a b", "x" * 65, "-api", "_api", "api/v1", "ápi", "api.v1", None, 7):
        with pytest.raises(InvalidInputError, match="deployment name"):
            svc.create(bad, "models:/iris/1")  # type: ignore[arg-type]
    assert svc.create("x" * 64, "models:/iris/1").revision == 1
    # the name is checked first, whatever else is wrong
    for change in (svc.update, svc.shadow, svc.stage, lambda n, u: svc.canary(n, u, weight=10)):
        with pytest.raises(InvalidInputError, match="deployment name"):
            change("bad name", "models:/nope/1")
    with pytest.raises(NotFoundError, match="'nope'"):
        svc.create("other", "models:/nope/1")
    with pytest.raises(NotFoundError, match="version 9"):
        svc.create("other", "models:/iris/9")
    with pytest.raises(NotFoundError, match="'staging'"):
        svc.create("other", "models:/iris@staging")
    with pytest.raises(InvalidUriError):
        svc.create("other", "iris/1")
    with pytest.raises(InvalidInputError, match="one of single, canary, shadow, blue-green"):
        svc.create("other", "models:/iris/1", strategy="rolling")
    for s in ("canary", "shadow"):
        with pytest.raises(InvalidInputError, match="create it with strategy 'single'"):
            svc.create("other", "models:/iris/1", strategy=s)
    assert [d.name for d in svc.list()] == ["api", "x" * 64]
    assert STRATEGIES == ("single", "canary", "shadow", "blue-green")


def test_unknown_deployment_names_the_known_ones(svc: DeploymentService) -> None:
    with pytest.raises(NotFoundError, match="no deployments yet"):
        svc.revision("ghost")
    svc.create("api", "models:/iris/1")
    svc.create("batch", "models:/iris/1")
    for call in (svc.get, svc.revision, svc.promote, svc.switch, svc.rollback, svc.history,
                 lambda n: svc.update(n, "models:/iris/2"), lambda n: svc.set_weight(n, 5)):
        with pytest.raises(NotFoundError, match="'ghost' does not exist; known deployments: api, batch"):
            call("ghost")


# -- canary ------------------------------------------------------------------------


def test_canary_split_and_weight_shift(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")
    dep = svc.canary("api", "models:/iris/2", weight=10, sticky_header="X-User-Id")
    assert dep.strategy == "canary" and dep.revision == 2 and dep.sticky_header == "X-User-Id"
    assert pinned(dep) == [("primary", "iris", 1, 90.0, "live"), ("canary", "iris", 2, 10.0, "live")]
    dep = svc.set_weight("api", 33.3)
    assert [v.weight for v in dep.live()] == [pytest.approx(66.7), pytest.approx(33.3)]
    assert math.isclose(sum(v.weight for v in dep.live()), 100.0)
    assert dep.sticky_header == "X-User-Id"  # kept by a weight change
    # a new canary replaces the old one, with its own options
    dep = svc.canary("api", "models:/iris/3", weight=50)
    assert pinned(dep) == [("primary", "iris", 1, 50.0, "live"), ("canary", "iris", 3, 50.0, "live")]
    assert dep.sticky_header is None
    assert [h["action"] for h in svc.history("api")] == ["create", "canary", "weight", "canary"]


@pytest.mark.parametrize("weight", [0, 100, 150, -5, 0.00001, 99.99999, math.nan, math.inf, True, "10", None])
def test_bad_canary_weights_are_refused(svc: DeploymentService, weight: object) -> None:
    svc.create("api", "models:/iris/1")
    with pytest.raises(InvalidInputError, match="strictly between 0 and 100"):
        svc.canary("api", "models:/iris/2", weight=weight)  # type: ignore[arg-type]
    svc.canary("api", "models:/iris/2", weight=10)
    with pytest.raises(InvalidInputError, match="strictly between 0 and 100"):
        svc.set_weight("api", weight)  # type: ignore[arg-type]
    assert svc.revision("api") == 2
    assert [v.weight for v in svc.get("api").live()] == [90.0, 10.0]


def test_canary_misuse(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")
    with pytest.raises(ConflictError, match="no canary whose weight could change"):
        svc.set_weight("api", 20)
    with pytest.raises(ConflictError, match="already the primary"):
        svc.canary("api", "models:/iris/1", weight=10)
    with pytest.raises(InvalidInputError, match="sticky header"):
        svc.canary("api", "models:/iris/2", weight=10, sticky_header="X User")
    svc.canary("api", "models:/iris/2", weight=10)
    with pytest.raises(ConflictError, match="already the canary.*promote api"):
        svc.update("api", "models:/iris/2")
    # update replaces the primary and keeps the canary
    dep = svc.update("api", "models:/iris/3")
    assert pinned(dep) == [("primary", "iris", 3, 90.0, "live"), ("canary", "iris", 2, 10.0, "live")]
    assert svc.revision("api") == 3


# -- shadow, promote, remove ---------------------------------------------------------


def test_shadow_then_promote(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")
    dep = svc.shadow("api", "models:/iris/2")
    assert dep.strategy == "shadow"
    assert pinned(dep) == [("primary", "iris", 1, 100.0, "live"), ("shadow", "iris", 2, 0.0, "shadow")]
    assert [v.name for v in dep.live()] == ["primary"] and [v.name for v in dep.shadows()] == ["shadow"]
    dep = svc.promote("api")
    assert (dep.strategy, pinned(dep)) == ("single", [("primary", "iris", 2, 100.0, "live")])
    with pytest.raises(ConflictError, match="no challenger to promote"):
        svc.promote("api")


def test_canary_promote_and_challenger_swaps(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")
    svc.canary("api", "models:/iris/2", weight=20, sticky_header="X-User")
    # a shadow replaces the canary: its traffic goes back to the primary
    dep = svc.shadow("api", "models:/iris/3")
    assert pinned(dep) == [("primary", "iris", 1, 100.0, "live"), ("shadow", "iris", 3, 0.0, "shadow")]
    assert dep.sticky_header is None
    # and a canary replaces the shadow
    dep = svc.canary("api", "models:/iris/3", weight=5)
    assert pinned(dep) == [("primary", "iris", 1, 95.0, "live"), ("canary", "iris", 3, 5.0, "live")]
    dep = svc.promote("api")
    assert (dep.strategy, pinned(dep), dep.sticky_header) == ("single", [("primary", "iris", 3, 100.0, "live")], None)


def test_remove_challenger(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")
    with pytest.raises(ConflictError, match="no canary, shadow or staged model"):
        svc.remove_challenger("api")
    for add in (lambda: svc.canary("api", "models:/iris/2", weight=30), lambda: svc.shadow("api", "models:/iris/2")):
        add()
        dep = svc.remove_challenger("api")
        assert (dep.strategy, pinned(dep)) == ("single", [("primary", "iris", 1, 100.0, "live")])
    assert [h["action"] for h in svc.history("api")] == [
        "create", "canary", "remove-challenger", "shadow", "remove-challenger"]


# -- blue-green ----------------------------------------------------------------------


def test_blue_green_stage_switch_and_back(svc: DeploymentService) -> None:
    dep = svc.create("bg", "models:/iris/1", strategy="blue-green")
    assert (dep.strategy, pinned(dep)) == ("blue-green", [("blue", "iris", 1, 100.0, "live")])
    with pytest.raises(ConflictError, match="nothing staged.*stage bg"):
        svc.switch("bg")
    with pytest.raises(ConflictError, match="already live in the blue color"):
        svc.stage("bg", "models:/iris/1")
    dep = svc.stage("bg", "models:/iris/2")
    assert pinned(dep) == [("blue", "iris", 1, 100.0, "live"), ("green", "iris", 2, 0.0, "standby")]
    assert [v.name for v in dep.standby()] == ["green"]
    dep = svc.switch("bg")
    assert pinned(dep) == [("blue", "iris", 1, 0.0, "standby"), ("green", "iris", 2, 100.0, "live")]
    dep = svc.switch("bg")
    assert pinned(dep) == [("blue", "iris", 1, 100.0, "live"), ("green", "iris", 2, 0.0, "standby")]
    svc.switch("bg")
    # staging goes to the idle color (blue now), replacing what was there
    dep = svc.stage("bg", "models:/iris/3")
    assert pinned(dep) == [("blue", "iris", 3, 0.0, "standby"), ("green", "iris", 2, 100.0, "live")]
    # update hot-replaces the live color's model; the staged one stays
    dep = svc.update("bg", "models:/iris/1")
    assert pinned(dep) == [("blue", "iris", 3, 0.0, "standby"), ("green", "iris", 1, 100.0, "live")]
    with pytest.raises(ConflictError, match="already the blue.*switch bg"):
        svc.update("bg", "models:/iris/3")
    # promote: the staged color goes live alone
    dep = svc.promote("bg")
    assert (dep.strategy, pinned(dep)) == ("blue-green", [("blue", "iris", 3, 100.0, "live")])
    svc.stage("bg", "models:/iris/2")
    dep = svc.remove_challenger("bg")
    assert pinned(dep) == [("blue", "iris", 3, 100.0, "live")]
    assert [h["action"] for h in svc.history("bg")] == [
        "create", "stage", "switch", "switch", "switch", "stage", "update", "promote", "stage", "remove-challenger"]


def test_strategy_operations_that_make_no_sense(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")
    svc.canary("api", "models:/iris/2", weight=10)
    with pytest.raises(ConflictError, match="uses the canary strategy; switch works on blue-green deployments only"):
        svc.switch("api")
    with pytest.raises(ConflictError, match="stage works on blue-green"):
        svc.stage("api", "models:/iris/3")
    svc.create("bg", "models:/iris/1", strategy="blue-green")
    with pytest.raises(ConflictError, match="blue-green, which has no canary.*stage bg"):
        svc.canary("bg", "models:/iris/2", weight=10)
    with pytest.raises(ConflictError, match="blue-green, which has no shadow"):
        svc.shadow("bg", "models:/iris/2")
    with pytest.raises(ConflictError, match="no canary whose weight"):
        svc.set_weight("bg", 10)
    assert (svc.revision("api"), svc.revision("bg")) == (2, 1)


# -- revisions, no-ops, rollback -------------------------------------------------------


def test_a_change_to_the_same_configuration_records_nothing(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")
    svc.canary("api", "models:/iris/2", weight=10)
    assert svc.update("api", "models:/iris@champion").revision == 2
    assert svc.set_weight("api", 10).revision == 2
    assert svc.canary("api", "models:/iris/2", weight=10).revision == 2
    assert [h["revision"] for h in svc.history("api")] == [1, 2]
    assert changed_events(svc, "api") == [(1, "create"), (2, "canary")]


def test_rollback_walks_back_one_change_at_a_time(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")                            # r1
    svc.update("api", "models:/iris/2")                            # r2
    svc.canary("api", "models:/iris/3", weight=25, sticky_header="X-User")  # r3
    r3 = svc.get("api")
    svc.promote("api")                                             # r4: single iris/3
    dep = svc.rollback("api")                                      # r5: back to r3, the whole configuration
    assert dep.revision == 5
    assert (dep.strategy, pinned(dep), dep.sticky_header) == (r3.strategy, pinned(r3), "X-User")
    dep = svc.rollback("api")                                      # r6: back to r2, not to r4
    assert (dep.revision, dep.strategy, pinned(dep)) == (6, "single", [("primary", "iris", 2, 100.0, "live")])
    dep = svc.rollback("api")                                      # r7: back to r1
    assert pinned(dep) == [("primary", "iris", 1, 100.0, "live")]
    with pytest.raises(ConflictError, match="no earlier configuration"):
        svc.rollback("api")
    assert svc.revision("api") == 7
    hist = svc.history("api")
    assert [(h["revision"], h["action"], h["previous"]) for h in hist] == [
        (1, "create", None), (2, "update", 1), (3, "canary", 2), (4, "promote", 3),
        (5, "rollback", 2), (6, "rollback", 1), (7, "rollback", None),
    ]
    # a new change after rollbacks can itself be rolled back
    svc.update("api", "models:/iris/3")                            # r8
    assert svc.rollback("api").variants[0].version == 1            # r9: back to r7's configuration
    assert changed_events(svc, "api")[-3:] == [(7, "rollback"), (8, "update"), (9, "rollback")]


def test_rollback_steps(svc: DeploymentService) -> None:
    for v in (1, 2, 3):
        (svc.create if v == 1 else svc.update)("api", f"models:/iris/{v}")
    dep = svc.rollback("api", steps=2)
    assert (dep.revision, dep.variants[0].version) == (4, 1)
    with pytest.raises(ConflictError, match="no earlier configuration"):
        svc.rollback("api")
    svc.update("api", "models:/iris/2")
    svc.update("api", "models:/iris/3")
    with pytest.raises(ConflictError, match="reaches only 2 changes back"):
        svc.rollback("api", steps=4)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(InvalidInputError, match="positive integer"):
            svc.rollback("api", steps=bad)  # type: ignore[arg-type]
    assert svc.revision("api") == 6


def test_event_payloads(svc: DeploymentService) -> None:
    svc.create("api", "models:/iris/1")
    svc.update("api", "models:/iris/2")
    svc.rollback("api")
    events = read_events(svc.backend.metadata, kind=DEPLOYMENT_CHANGED, subject="api")
    assert [e.payload for e in events] == [
        {"revision": 1, "action": "create"},
        {"revision": 2, "action": "update"},
        {"revision": 3, "action": "rollback", "restored": 1},
    ]
    assert all(e.subject == "api" and e.kind == "deployment.changed" for e in events)
    # failed changes announce nothing
    with pytest.raises(ConflictError):
        svc.switch("api")
    assert len(read_events(svc.backend.metadata, kind=DEPLOYMENT_CHANGED)) == 3


def test_another_process_sees_changes_through_revision(svc: DeploymentService, project: Settings) -> None:
    """A server with its own connection pool follows the writer by polling the revision."""
    svc.create("api", "models:/iris/1")
    server = DeploymentService(open_backend(project))
    try:
        assert server.revision("api") == 1
        svc.canary("api", "models:/iris/2", weight=10)
        assert server.revision("api") == 2
        assert server.get("api") == svc.get("api")
    finally:
        server.backend.close()


# -- concurrency ---------------------------------------------------------------------


def _in_threads(n: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as e:  # collected and checked by the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_concurrent_changes_lose_nothing(svc: DeploymentService, project: Settings) -> None:
    n = 8
    svc.create("api", "models:/iris/1")
    svc.canary("api", "models:/iris/2", weight=50)
    # each writer has its own backend (connection pool), like separate processes
    writers = [DeploymentService(open_backend(project)) for _ in range(n)]
    try:
        results = _in_threads(n, lambda i: writers[i].set_weight("api", i + 1))
    finally:
        for w in writers:
            w.backend.close()
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    revisions = sorted(r.revision for r in results if isinstance(r, Deployment))
    assert revisions == list(range(3, 3 + n))
    hist = svc.history("api")
    assert [h["revision"] for h in hist] == list(range(1, 3 + n))
    # each revision's previous is the one it replaced: a total order, no lost update
    assert [h["previous"] for h in hist[2:]] == list(range(2, 2 + n))
    assert sorted(h["variants"][1]["weight"] for h in hist[2:]) == [float(i + 1) for i in range(n)]
    final = svc.get("api")
    assert final.revision == 2 + n
    assert final.variants[1].weight == hist[-1]["variants"][1]["weight"]
    assert sorted(rev for rev, action in changed_events(svc, "api") if action == "weight") == revisions


def test_concurrent_creates_of_one_name(svc: DeploymentService, project: Settings) -> None:
    n = 6
    writers = [DeploymentService(open_backend(project)) for _ in range(n)]
    try:
        results = _in_threads(n, lambda i: writers[i].create("api", f"models:/iris/{i % 3 + 1}"))
    finally:
        for w in writers:
            w.backend.close()
    created = [r for r in results if isinstance(r, Deployment)]
    assert len(created) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, Deployment))
    assert svc.get("api") == created[0]
    assert len(svc.history("api")) == 1


def test_variant_uri() -> None:
    v = Variant("canary", "iris", 4, 10.0, "live")
    assert v.uri == "models:/iris/4"
    assert v.describe() == "canary=iris/4 10%"
    assert Variant("shadow", "iris", 4, 0.0, "shadow").describe() == "shadow=iris/4 (shadow)"
