"""Experiment tracking, run unchanged against every metadata backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import hashlib
import math
import platform
import shutil
import socket
from pathlib import Path

import pandas as pd
import pytest

from loopml.config import Settings
from loopml.core import now_ms
from loopml.errors import (
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    ConflictError,
    ExperimentNotFoundError,
    FilterSyntaxError,
    InvalidInputError,
    InvalidMetricError,
    InvalidParamError,
    ParamConflictError,
    RunNotActiveError,
    RunNotFoundError,
)
from loopml.storage import open_backend
from loopml.tracking import (
    RunStatus,
    TrackingService,
    active_run,
    compare_runs,
    download_artifact,
    get_run,
    get_tracking,
    log_metric,
    metric_history,
    search_runs,
    start_run,
)


@pytest.fixture
def s(backend_settings: Settings) -> Settings:
    return backend_settings


@pytest.fixture
def svc(s: Settings) -> TrackingService:
    return get_tracking(s)


@pytest.fixture
def fresh_service(s: Settings):  # type: ignore[no-untyped-def]
    """A second service on the same database: it knows run states only from the database."""
    backend = open_backend(s)
    service = TrackingService(backend)
    yield service
    service.close()
    backend.close()


# -- run lifecycle ---------------------------------------------------------------


def test_start_run_with_params_and_tags(s: Settings) -> None:
    params = {"lr": 0.1, "layers": [64, 32], "model": "rf", "seed": 7, "extra": None}
    with start_run("exp", name="first", params=params, tags={"team": "ml", "n": 3}, settings=s) as run:
        assert active_run() is run
        info = run.info
        assert info.status is RunStatus.RUNNING
        assert info.end_time is None
    assert active_run() is None
    assert run.status is RunStatus.FINISHED

    stored = get_run(run.id, settings=s)
    assert stored.id == run.id
    assert stored.name == "first"
    assert stored.experiment == "exp"
    assert stored.status is RunStatus.FINISHED
    assert stored.params == params
    assert stored.tags == {"team": "ml", "n": "3"}
    assert stored.parent_run_id is None
    assert stored.end_time is not None and stored.end_time >= stored.start_time


def test_default_experiment(s: Settings, svc: TrackingService) -> None:
    with start_run(settings=s) as run:
        pass
    assert get_run(run.id, settings=s).experiment == "default"
    assert [e.name for e in svc.list_experiments()] == ["default"]


def test_experiment_is_created_once(s: Settings, svc: TrackingService, fresh_service: TrackingService) -> None:
    a = svc.experiment("shared")
    b = fresh_service.experiment("shared")
    assert a.id == b.id
    assert [e.name for e in svc.list_experiments()] == ["shared"]


def test_explicit_end(s: Settings) -> None:
    run = start_run("exp", settings=s)
    run.end(RunStatus.KILLED)
    run.end()  # ending twice does nothing
    assert get_run(run.id, settings=s).status is RunStatus.KILLED
    assert active_run() is None


def test_end_run_needs_a_terminal_status(svc: TrackingService) -> None:
    run_id = svc.create_run("exp")
    with pytest.raises(InvalidInputError, match="terminal status"):
        svc.end_run(run_id, RunStatus.RUNNING)
    assert svc.get_run(run_id).status is RunStatus.RUNNING


def test_nested_runs(s: Settings) -> None:
    with start_run("parent-exp", settings=s) as parent:
        with pytest.raises(ConflictError, match="nested=True"):
            start_run(settings=s)
        with start_run(nested=True, name="child") as child:
            assert active_run() is child
            with start_run(nested=True, name="grandchild") as grandchild:
                pass
        assert active_run() is parent
    runs = {r.id: r for r in search_runs("parent-exp", settings=s)}
    assert runs[child.id].parent_run_id == parent.id
    assert runs[grandchild.id].parent_run_id == child.id
    assert runs[parent.id].parent_run_id is None
    assert runs[child.id].experiment == "parent-exp"  # inherited from the parent
    assert {r.status for r in runs.values()} == {RunStatus.FINISHED}
    children = search_runs("parent-exp", filter=f"parent_run_id = '{parent.id}'", settings=s)
    assert [r.id for r in children] == [child.id]


def test_unknown_parent_run(svc: TrackingService) -> None:
    with pytest.raises(RunNotFoundError):
        svc.create_run("exp", parent_run_id="0" * 32)


def test_exception_marks_the_run_failed_and_is_reraised(s: Settings) -> None:
    class TrainingDiverged(Exception):
        pass

    with pytest.raises(TrainingDiverged, match="loss is nan"):
        with start_run("exp", settings=s) as run:
            run.log_metric("loss", 1.0)
            raise TrainingDiverged("loss is nan")
    stored = get_run(run.id, settings=s)
    assert stored.status is RunStatus.FAILED
    assert stored.end_time is not None
    assert stored.tags["loopml.error"] == "TrainingDiverged: loss is nan"
    assert stored.metric("loss") == 1.0  # what was logged before the failure is kept
    assert active_run() is None


def test_keyboard_interrupt_marks_the_run_killed(s: Settings) -> None:
    with pytest.raises(KeyboardInterrupt):
        with start_run("exp", settings=s) as run:
            raise KeyboardInterrupt
    assert get_run(run.id, settings=s).status is RunStatus.KILLED
    assert active_run() is None


# -- params ----------------------------------------------------------------------


def test_log_param_is_idempotent_and_immutable(s: Settings) -> None:
    with start_run("exp", params={"lr": 0.1}, settings=s) as run:
        run.log_param("lr", 0.1)  # same value: fine
        run.log_param("depth", 3)
        run.log_params({"depth": 3, "model": "rf"})
        with pytest.raises(ParamConflictError) as err:
            run.log_param("lr", 0.2)
        assert "'lr'" in str(err.value) and "0.1" in str(err.value) and "0.2" in str(err.value)
        with pytest.raises(ParamConflictError):
            run.log_param("depth", "3")  # the string is another value than the number
    assert get_run(run.id, settings=s).params == {"lr": 0.1, "depth": 3, "model": "rf"}


def test_conflicting_batch_stores_nothing(s: Settings) -> None:
    with start_run("exp", params={"a": 1}, settings=s) as run:
        with pytest.raises(ParamConflictError):
            run.log_params({"b": 2, "a": 99})
    assert get_run(run.id, settings=s).params == {"a": 1}


@pytest.mark.parametrize("value", [object(), {1, 2}, b"raw"])
def test_unstorable_param(s: Settings, svc: TrackingService, value: object) -> None:
    with start_run("exp", settings=s) as run:
        with pytest.raises(InvalidParamError):
            run.log_param("p", value)
    assert get_run(run.id, settings=s).params == {}
    with pytest.raises(InvalidParamError):
        start_run("exp", params={"p": value}, settings=s)
    assert active_run() is None
    assert svc.search_runs("exp").total == 1  # no run was created for the rejected params


def test_params_must_be_a_mapping(svc: TrackingService) -> None:
    run_id = svc.create_run("exp")
    with pytest.raises(InvalidParamError, match="mapping"):
        svc.log_params(run_id, [("a", 1)])  # type: ignore[arg-type]


# -- metrics ---------------------------------------------------------------------


def test_metrics_with_steps_and_timestamps(s: Settings) -> None:
    with start_run("exp", settings=s) as run:
        run.log_metric("loss", 0.5, step=10, timestamp=1_000)
        run.log_metric("loss", 0.4, step=20, timestamp=2_000)
        run.log_metric("loss", 0.45, step=15, timestamp=3_000)  # late point for an earlier step
    history = metric_history(run.id, "loss", settings=s)
    assert [(m.step, m.value, m.timestamp) for m in history] == [(10, 0.5, 1_000), (15, 0.45, 3_000), (20, 0.4, 2_000)]
    latest = get_run(run.id, settings=s).metrics["loss"]
    assert (latest.step, latest.value) == (20, 0.4)  # the latest is the highest step, not the last logged


def test_auto_steps_count_per_key(s: Settings) -> None:
    before = now_ms()
    with start_run("exp", settings=s) as run:
        for v in (3.0, 2.0, 1.0):
            run.log_metric("loss", v)
        run.log_metric("acc", 0.5)
        with pytest.raises(InvalidMetricError):
            run.log_metric("loss", "bad")  # a rejected value uses up no step
        run.log_metric("loss", 0.5)
    after = now_ms()
    loss = metric_history(run.id, "loss", settings=s)
    assert [(m.step, m.value) for m in loss] == [(0, 3.0), (1, 2.0), (2, 1.0), (3, 0.5)]
    assert all(before <= m.timestamp <= after for m in loss)
    assert [(m.step, m.value) for m in metric_history(run.id, "acc", settings=s)] == [(0, 0.5)]


def test_log_metrics_shares_step_and_time(s: Settings) -> None:
    with start_run("exp", settings=s) as run:
        run.log_metrics({"a": 1, "b": 2.5})
        run.log_metrics({"a": 2, "b": 3.5}, step=7, timestamp=42)
        run.log_metrics({"a": 3})
    history = metric_history(run.id, settings=s)
    assert [(m.key, m.step, m.value) for m in history] == [
        ("a", 0, 1.0), ("a", 7, 2.0), ("a", 8, 3.0), ("b", 0, 2.5), ("b", 7, 3.5),
    ]
    first = [m for m in history if m.step == 0]
    assert first[0].timestamp == first[1].timestamp
    assert {m.timestamp for m in history if m.step == 7} == {42}
    assert get_run(run.id, settings=s).metrics["a"].value == 3.0


def test_metric_batch(s: Settings, svc: TrackingService) -> None:
    with start_run("exp", settings=s) as run:
        run.log_metric_batch("curve", [0.9, 0.8, 0.7])
        run.log_metric("curve", 0.6)
        with pytest.raises(InvalidMetricError, match="3 values but 2 steps"):
            run.log_metric_batch("other", [1, 2, 3], steps=[0, 1])
    assert [(m.step, m.value) for m in svc.metric_history(run.id, "curve")] == [
        (0, 0.9), (1, 0.8), (2, 0.7), (3, 0.6),
    ]


def test_metrics_are_visible_before_the_run_ends(s: Settings, svc: TrackingService) -> None:
    with start_run("exp", settings=s) as run:
        run.log_metric("m", 1.0)
        assert [m.value for m in svc.metric_history(run.id, "m")] == [1.0]
        assert svc.get_run(run.id).metric("m") == 1.0


@pytest.mark.parametrize(("value", "flag"), [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")])
def test_non_finite_metrics_are_stored_and_flagged(s: Settings, value: float, flag: str) -> None:
    with start_run("exp", settings=s) as run:
        run.log_metric("m", 1.0)
        run.log_metric("m", value)
    history = metric_history(run.id, "m", settings=s)
    assert [m.flag for m in history] == [None, flag]
    got = history[1].value
    assert math.isnan(got) if flag == "nan" else got == value
    latest = get_run(run.id, settings=s).metrics["m"]
    assert latest.flag == flag and latest.step == 1


@pytest.mark.parametrize("value", ["abc", None, "1.0", [1.0], True, complex(1, 1)])
def test_non_number_metric(s: Settings, value: object) -> None:
    with start_run("exp", settings=s) as run:
        with pytest.raises(InvalidMetricError) as err:
            run.log_metric("m", value)  # type: ignore[arg-type]
        assert "'m'" in str(err.value)
        with pytest.raises(InvalidMetricError):
            run.log_metrics({"ok": 1.0, "m": value})  # type: ignore[dict-item]
    assert metric_history(run.id, settings=s) == []


def test_bad_step_and_timestamp(s: Settings) -> None:
    with start_run("exp", settings=s) as run:
        with pytest.raises(InvalidMetricError, match="step"):
            run.log_metric("m", 1.0, step="1")  # type: ignore[arg-type]
        with pytest.raises(InvalidMetricError, match="timestamp"):
            run.log_metric("m", 1.0, timestamp=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="metric key"):
            run.log_metric("", 1.0)
    assert metric_history(run.id, settings=s) == []


def test_numpy_metric_values(s: Settings) -> None:
    import numpy as np

    with start_run("exp", settings=s) as run:
        run.log_metric("a", np.float32(0.5))
        run.log_metric("b", np.int64(3))
    assert get_run(run.id, settings=s).metrics["b"].value == 3.0
    assert get_run(run.id, settings=s).metrics["a"].value == 0.5


def test_fluent_functions_need_an_active_run() -> None:
    with pytest.raises(RunNotActiveError, match="no run is active"):
        log_metric("m", 1.0)


# -- finished and unknown runs ---------------------------------------------------


def test_logging_to_a_finished_run_through_the_handle(s: Settings, tmp_path: Path) -> None:
    with start_run("exp", settings=s) as run:
        pass
    f = tmp_path / "f.txt"
    f.write_text("x")
    for call in (
        lambda: run.log_param("p", 1),
        lambda: run.log_params({"p": 1}),
        lambda: run.log_metric("m", 1.0),
        lambda: run.log_metrics({"m": 1.0}),
        lambda: run.log_artifact(f),
        lambda: run.log_dataset(f),
    ):
        with pytest.raises(RunNotActiveError, match="finished"):
            call()
    with pytest.raises(RunNotActiveError):
        get_tracking(s).log_metric(run.id, "m", 1.0)  # the service that ran it knows it ended
    run.set_tag("note", "tags stay editable")
    stored = get_run(run.id, settings=s)
    assert stored.params == {} and stored.metrics == {} and stored.artifacts == [] and stored.datasets == []
    assert stored.tags == {"note": "tags stay editable"}


def test_logging_to_a_finished_run_through_another_service(
    s: Settings, fresh_service: TrackingService, tmp_path: Path
) -> None:
    with start_run("exp", settings=s) as run:
        pass
    f = tmp_path / "f.txt"
    f.write_text("x")
    # the fresh service never saw the run: it must ask the database for its status
    for call in (
        lambda: fresh_service.log_params(run.id, {"p": 1}),
        lambda: fresh_service.log_metric(run.id, "m", 1.0),
        lambda: fresh_service.log_metrics(run.id, {"m": 1.0}),
        lambda: fresh_service.log_artifact(run.id, f),
        lambda: fresh_service.end_run(run.id, RunStatus.FAILED),
    ):
        with pytest.raises(RunNotActiveError) as err:
            call()
        assert err.value.details["status"] == "finished"
    stored = fresh_service.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert stored.params == {} and stored.metrics == {}


def test_another_service_can_log_to_a_running_run(s: Settings, fresh_service: TrackingService) -> None:
    with start_run("exp", settings=s) as run:
        fresh_service.log_metric(run.id, "m", 2.0)
        fresh_service.log_params(run.id, {"p": "x"})
        fresh_service.flush()
    stored = get_run(run.id, settings=s)
    assert stored.metric("m") == 2.0 and stored.params == {"p": "x"}


def test_unknown_run(svc: TrackingService, tmp_path: Path) -> None:
    missing = "f" * 32
    calls = [
        lambda: svc.get_run(missing),
        lambda: svc.metric_history(missing),
        lambda: svc.log_metric(missing, "m", 1.0),
        lambda: svc.log_params(missing, {"p": 1}),
        lambda: svc.set_tags(missing, {"t": 1}),
        lambda: svc.end_run(missing),
        lambda: svc.download_artifact(missing, "x", tmp_path / "x"),
    ]
    for call in calls:
        with pytest.raises(RunNotFoundError) as err:
            call()
        assert missing in str(err.value)
    assert svc.buffer.pending() == 0


def test_unknown_experiment_in_search(svc: TrackingService) -> None:
    svc.create_run("exists")
    with pytest.raises(ExperimentNotFoundError) as err:
        svc.search_runs(["exists", "nope"])
    assert "'nope'" in str(err.value)
    assert "'exists'" not in str(err.value)


# -- search ----------------------------------------------------------------------


@pytest.fixture
def population(svc: TrackingService) -> dict[str, str]:
    """Runs in experiment "search" (plus one in "other"); name -> run id."""
    specs = [
        ("r1", "search", {"model": "rf", "lr": 0.1}, {"team": "ml"}, {"acc": 0.9, "loss": 0.2}, RunStatus.FINISHED),
        ("r2", "search", {"model": "svm", "lr": 0.01}, {"team": "ops"}, {"acc": 0.7, "loss": 0.5}, RunStatus.FINISHED),
        ("r3", "search", {"model": "rf"}, {}, {"acc": float("nan")}, RunStatus.FAILED),
        ("r4", "search", {"model": "knn"}, {"team": "ml-research"}, {}, RunStatus.KILLED),
        ("r5", "other", {"model": "rf"}, {"team": "ml"}, {"acc": 0.95}, RunStatus.FINISHED),
    ]
    ids = {}
    for name, exp, params, tags, metrics, status in specs:
        run_id = svc.create_run(exp, name=name, params=params, tags=tags)
        if metrics:
            svc.log_metrics(run_id, metrics)
        svc.end_run(run_id, status)
        ids[name] = run_id
    return ids


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("metrics.acc > 0.8", {"r1"}),
        ("metrics.acc >= 0.7 and params.model = 'rf'", {"r1"}),
        ("metrics.acc != 0.9", {"r2"}),  # NaN is not a number to compare
        ("metrics.loss <= 0.2", {"r1"}),
        ("params.model = 'rf' or tags.team = 'ops'", {"r1", "r2", "r3"}),
        ("(params.model = 'rf' or params.model = 'svm') and metrics.acc < 0.8", {"r2"}),
        ("params.model = 'rf' or params.model = 'svm' and metrics.acc < 0.8", {"r1", "r2", "r3"}),
        ("not params.model = 'rf'", {"r2", "r4"}),
        ("not (params.model = 'rf' or tags.team = 'ops')", {"r4"}),
        ("params.model in ('svm', 'knn')", {"r2", "r4"}),
        ("params.model not in ('svm', 'knn')", {"r1", "r3"}),
        ("params.lr = 0.1", {"r1"}),
        ("tags.team like 'ml%'", {"r1", "r4"}),
        ("tags.team like 'ML%'", set()),  # like is case-sensitive on every backend
        ("tags.team ilike 'ML%'", {"r1", "r4"}),
        ("tags.team like '_l'", {"r1"}),
        ("tags.team is null", {"r3"}),
        ("tags.team is not null", {"r1", "r2", "r4"}),
        ("metrics.acc is null", {"r4"}),
        ("params.lr is not null and metrics.loss is not null", {"r1", "r2"}),
        ("status = 'finished'", {"r1", "r2"}),
        ("attributes.status = 'FAILED'", {"r3"}),
        ("status in ('failed', 'killed')", {"r3", "r4"}),
        ("run_name like 'r%' and status != 'finished'", {"r3", "r4"}),
        ("parent_run_id is null", {"r1", "r2", "r3", "r4"}),
        ("start_time > 0 and end_time is not null", {"r1", "r2", "r3", "r4"}),
        ("tags.missing = 'x'", set()),
    ],
)
def test_search_filters(svc: TrackingService, population: dict[str, str], filter: str, expected: set[str]) -> None:
    page = svc.search_runs("search", filter=filter)
    assert {r.name for r in page} == expected
    assert page.total == len(expected)
    assert page.next_page_token is None


def test_search_across_experiments(svc: TrackingService, population: dict[str, str]) -> None:
    assert {r.name for r in svc.search_runs(filter="params.model = 'rf'")} == {"r1", "r3", "r5"}
    assert {r.name for r in svc.search_runs(["search", "other"], filter="metrics.acc > 0.8")} == {"r1", "r5"}
    assert {r.name for r in svc.search_runs("other")} == {"r5"}
    assert {r.name for r in search_runs("search", settings=svc.backend.settings)} == {"r1", "r2", "r3", "r4"}


def test_search_results_carry_params_tags_and_metrics(svc: TrackingService, population: dict[str, str]) -> None:
    (r1,) = svc.search_runs("search", filter="run_name = 'r1'")
    assert r1.id == population["r1"]
    assert r1.params == {"model": "rf", "lr": 0.1}
    assert r1.tags == {"team": "ml"}
    assert {k: m.value for k, m in r1.metrics.items()} == {"acc": 0.9, "loss": 0.2}
    assert r1.experiment == "search"


def test_order_by_metric_puts_missing_values_last(svc: TrackingService, population: dict[str, str]) -> None:
    desc = [r.name for r in svc.search_runs("search", order_by="metrics.acc DESC")]
    assert desc[:2] == ["r1", "r2"]
    assert set(desc[2:]) == {"r3", "r4"}  # NaN (stored as no number) and no metric at all
    asc = [r.name for r in svc.search_runs("search", order_by=["metrics.acc asc"])]
    assert asc[:2] == ["r2", "r1"]
    assert set(asc[2:]) == {"r3", "r4"}


def test_order_by_param_and_attribute(svc: TrackingService, population: dict[str, str]) -> None:
    by_model = [r.name for r in svc.search_runs("search", order_by=["params.model", "metrics.acc desc"])]
    assert by_model == ["r4", "r1", "r3", "r2"]
    by_name = [r.name for r in svc.search_runs("search", order_by="attributes.run_name desc")]
    assert by_name == ["r4", "r3", "r2", "r1"]


def test_default_order_is_newest_first(svc: TrackingService) -> None:
    ids = []
    for i in range(3):
        run_id = svc.create_run("exp", name=f"n{i}")
        ids.append(run_id)
    found = [r.id for r in svc.search_runs("exp")]
    starts = [svc.get_run(i).start_time for i in found]
    assert starts == sorted(starts, reverse=True)
    assert set(found) == set(ids)


@pytest.mark.parametrize("order_by", [None, "metrics.acc desc", "params.group"])
def test_pagination_covers_every_run_once(svc: TrackingService, order_by: str | None) -> None:
    expected = set()
    for i in range(11):
        run_id = svc.create_run("paged", params={"group": str(i % 3)})
        if i % 4:
            svc.log_metric(run_id, "acc", i / 10)
        svc.end_run(run_id)
        expected.add(run_id)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = svc.search_runs("paged", order_by=order_by, max_results=4, page_token=token)
        pages += 1
        assert page.total == 11
        seen += [r.id for r in page]
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == expected


def test_search_loads_details_of_many_runs(svc: TrackingService) -> None:
    # more runs than fit a short IN list: the bulk loading path of each backend
    ids = {}
    for i in range(40):
        run_id = svc.create_run("many", name=f"m{i}", params={"i": i}, tags={"parity": "odd" if i % 2 else "even"})
        svc.log_metric(run_id, "score", float(i))
        ids[run_id] = i
    page = svc.search_runs("many", max_results=100)
    assert page.total == 40 and len(page) == 40
    for run in page:
        i = ids[run.id]
        assert run.params == {"i": i}
        assert run.tags == {"parity": "odd" if i % 2 else "even"}
        assert run.metric("score") == float(i)
    odd = svc.search_runs("many", filter="tags.parity = 'odd' and metrics.score >= 20", order_by="metrics.score")
    assert [r.params["i"] for r in odd] == list(range(21, 40, 2))
    df = svc.compare_runs(list(ids)[:20])
    assert df.shape[1] == 20


def test_pagination_with_a_filter(svc: TrackingService, population: dict[str, str]) -> None:
    first = svc.search_runs("search", filter="status != 'killed'", max_results=2, order_by="run_name")
    assert [r.name for r in first] == ["r1", "r2"] and first.total == 3
    second = svc.search_runs(
        "search", filter="status != 'killed'", max_results=2, order_by="run_name", page_token=first.next_page_token
    )
    assert [r.name for r in second] == ["r3"] and second.next_page_token is None


@pytest.mark.parametrize(
    ("filter", "position"),
    [("metrics.acc > 0.9 andd params.model = 'rf'", 18), ("metrics.acc >", 13), ("params.x = 'a' $", 15)],
)
def test_bad_filter_names_the_position(svc: TrackingService, filter: str, position: int) -> None:
    with pytest.raises(FilterSyntaxError) as err:
        svc.search_runs(filter=filter)
    assert f"position {position}" in str(err.value)


def test_bad_search_arguments(svc: TrackingService) -> None:
    with pytest.raises(FilterSyntaxError):
        svc.search_runs(order_by="metrics.acc sideways")
    for bad in (0, -1, 50_001, True, "10"):
        with pytest.raises(InvalidInputError, match="max_results"):
            svc.search_runs(max_results=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="page token"):
        svc.search_runs(page_token="not-a-token")


def test_compare_runs(s: Settings, population: dict[str, str]) -> None:
    ids = [population["r1"], population["r2"], population["r4"]]
    df = compare_runs(ids, settings=s)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ids
    assert df.loc["name", ids[0]] == "r1"
    assert df.loc["status", ids[2]] == "killed"
    assert df.loc["params.model", ids[1]] == "svm"
    assert df.loc["metrics.acc", ids[0]] == 0.9
    assert df.loc["metrics.loss", ids[1]] == 0.5
    assert pd.isna(df.loc["metrics.acc", ids[2]])  # r4 has no acc
    assert pd.isna(df.loc["params.lr", ids[2]])


def test_compare_unknown_run(svc: TrackingService, population: dict[str, str]) -> None:
    with pytest.raises(RunNotFoundError):
        svc.compare_runs([population["r1"], "0" * 32])


# -- artifacts -------------------------------------------------------------------


def _artifact_file(s: Settings, run_id: str, path: str) -> Path:
    return Path(s.artifact_root) / "runs" / run_id / "artifacts" / path


def test_log_artifact_file_and_folder(s: Settings, tmp_path: Path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80model bytes")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png-a")
    (folder / "sub" / "b.txt").write_text("b")

    with start_run("exp", settings=s) as run:
        (info,) = run.log_artifact(model)
        assert info.path == "model.pkl"
        assert info.sha256 == hashlib.sha256(b"\x80model bytes").hexdigest()
        stored = run.log_artifact(folder, artifact_path="outputs/plots")
        assert sorted(a.path for a in stored) == ["outputs/plots/a.png", "outputs/plots/sub/b.txt"]
        run.log_text("hello", "notes/readme.txt")
        run.log_dict({"b": 1, "a": [1, 2]}, "config.json")

    artifacts = {a.path: a for a in get_run(run.id, settings=s).artifacts}
    assert sorted(artifacts) == [
        "config.json", "model.pkl", "notes/readme.txt", "outputs/plots/a.png", "outputs/plots/sub/b.txt",
    ]
    assert artifacts["model.pkl"].size == len(b"\x80model bytes")

    dest = download_artifact(run.id, "model.pkl", tmp_path / "dl" / "model.pkl", settings=s)
    assert dest.read_bytes() == b"\x80model bytes"
    dest = download_artifact(run.id, "outputs/plots/sub/b.txt", tmp_path / "dl" / "b.txt", settings=s)
    assert dest.read_text() == "b"
    svc = get_tracking(s)
    assert svc.read_artifact(run.id, "notes/readme.txt") == b"hello"
    assert svc.read_artifact(run.id, "config.json") == b'{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}'


def test_relogging_an_artifact_replaces_it(s: Settings, tmp_path: Path) -> None:
    f = tmp_path / "m.txt"
    with start_run("exp", settings=s) as run:
        f.write_text("v1")
        run.log_artifact(f)
        f.write_text("v2")
        run.log_artifact(f)
    (info,) = get_run(run.id, settings=s).artifacts
    assert info.sha256 == hashlib.sha256(b"v2").hexdigest()
    assert download_artifact(run.id, "m.txt", tmp_path / "out.txt", settings=s).read_text() == "v2"


def test_download_detects_corruption(s: Settings, tmp_path: Path) -> None:
    f = tmp_path / "weights.bin"
    f.write_bytes(b"good weights")
    with start_run("exp", settings=s) as run:
        run.log_artifact(f)
    stored = _artifact_file(s, run.id, "weights.bin")
    assert stored.read_bytes() == b"good weights"

    stored.write_bytes(b"evil weights")
    dest = tmp_path / "dl" / "weights.bin"
    with pytest.raises(ArtifactCorruptedError) as err:
        download_artifact(run.id, "weights.bin", dest, settings=s)
    assert "weights.bin" in str(err.value)
    assert not dest.exists()
    with pytest.raises(ArtifactCorruptedError):
        get_tracking(s).read_artifact(run.id, "weights.bin")

    stored.unlink()
    with pytest.raises(ArtifactNotFoundError, match="weights.bin"):
        download_artifact(run.id, "weights.bin", dest, settings=s)


def test_unknown_artifact(s: Settings, svc: TrackingService, tmp_path: Path) -> None:
    with start_run("exp", settings=s) as run:
        pass
    with pytest.raises(ArtifactNotFoundError, match="no artifact 'nope.txt'"):
        svc.download_artifact(run.id, "nope.txt", tmp_path / "x")
    with pytest.raises(ArtifactNotFoundError):
        svc.read_artifact(run.id, "nope.txt")


def test_log_missing_artifact(s: Settings, tmp_path: Path) -> None:
    with start_run("exp", settings=s) as run:
        with pytest.raises(InvalidInputError, match="no such file"):
            run.log_artifact(tmp_path / "missing")
    assert get_run(run.id, settings=s).artifacts == []


# -- datasets --------------------------------------------------------------------


def test_log_dataset_from_a_csv_path(s: Settings, tmp_path: Path) -> None:
    content = "x,y\n1,2\n3,4\n"
    a = tmp_path / "train.csv"
    a.write_text(content)
    b = tmp_path / "copy" / "train.csv"
    b.parent.mkdir()
    b.write_text(content)
    with start_run("exp", settings=s) as run:
        ref_a = run.log_dataset(a)
        ref_b = run.log_dataset(b, name="train-copy", context="eval")
    assert ref_a.digest == ref_b.digest == hashlib.sha256(content.encode()).hexdigest()
    (stored_a, stored_b) = get_run(run.id, settings=s).datasets
    assert stored_a == ref_a
    assert (stored_a.name, stored_a.path, stored_a.context) == ("train", str(a.resolve()), "training")
    assert (stored_b.name, stored_b.context) == ("train-copy", "eval")


def test_log_dataset_from_a_dataframe(s: Settings) -> None:
    df = pd.DataFrame({"x": [1, 3], "y": [2.0, 4.0], "label": ["a", "b"]})
    with start_run("exp", settings=s) as run:
        ref = run.log_dataset(df, name="features")
        again = run.log_dataset(df.copy(), name="features")  # same content: same digest, one record
        changed = run.log_dataset(df.assign(y=[2.0, 5.0]), name="features")
    assert again.digest == ref.digest
    assert changed.digest != ref.digest
    stored = get_run(run.id, settings=s).datasets
    assert [d.digest for d in stored] == [ref.digest, changed.digest]
    assert stored[0].num_rows == 2
    assert stored[0].schema == {"x": "int64", "y": "float64", "label": str(df.dtypes["label"])}
    assert stored[0].path is None


def test_relogging_a_dataset_without_context_is_recorded_once(s: Settings, tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_text("a\n1\n")
    with start_run("exp", settings=s) as run:
        run.log_dataset(f, context=None)
        run.log_dataset(f, context=None)
    assert len(get_run(run.id, settings=s).datasets) == 1


def test_log_dataset_rejects_missing_files(s: Settings, tmp_path: Path) -> None:
    with start_run("exp", settings=s) as run:
        with pytest.raises(InvalidInputError, match="not a file"):
            run.log_dataset(tmp_path / "nope.csv")


# -- system information ----------------------------------------------------------


def test_system_info_is_captured(s: Settings) -> None:
    before = now_ms()
    with start_run("exp", settings=s) as run:
        pass
    after = now_ms()
    stored = get_run(run.id, settings=s)
    assert before <= stored.start_time <= stored.end_time <= after  # type: ignore[operator]
    assert stored.system["python"] == platform.python_version()
    assert stored.system["packages"]["sqlalchemy"]
    assert stored.host == socket.gethostname()
    assert stored.user  # the OS user, or the configured one
    assert stored.git_commit is None and stored.git_dirty is None  # tmp_path is not a git work tree


def test_configured_user_is_recorded(backend_settings: Settings) -> None:
    import dataclasses

    s = dataclasses.replace(backend_settings, user="ada")
    with start_run("exp", settings=s) as run:
        pass
    assert get_run(run.id, settings=s).user == "ada"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_is_captured(s: Settings, git_commit) -> None:  # type: ignore[no-untyped-def]
    project = Path(s.project_dir)
    (project / "train.py").write_text("print('train')\n")
    sha = git_commit(project)
    with start_run("exp", settings=s) as run:
        pass
    stored = get_run(run.id, settings=s)
    assert stored.git_commit == sha
    assert stored.git_dirty is False
