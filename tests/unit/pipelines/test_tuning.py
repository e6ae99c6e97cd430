"""Tuning with Optuna: trials as nested runs, failures, determinism, threads, the pipeline step, the code hash."""

from __future__ import annotations

import contextvars
import importlib
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("optuna")
pytest.importorskip("sklearn")

from optuna.distributions import FloatDistribution, IntDistribution  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_wine  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

from loopml.config import Settings  # noqa: E402
from loopml.errors import InvalidInputError, LoopmlError  # noqa: E402
from loopml.pipelines import Pipeline, step  # noqa: E402
from loopml.pipelines._codehash import code_hash  # noqa: E402
from loopml.pipelines.tuning import TuneResult, parse_space, trial_seed, tune, tuning_step  # noqa: E402
from loopml.tracking import active_run, get_tracking, log_metric, start_run  # noqa: E402

TREE_SPACE: dict[str, Any] = {
    "max_depth": ("int", 2, 8),
    "min_samples_leaf": ("int", 1, 20, "log"),
    "criterion": ("categorical", ["gini", "entropy"]),
    "ccp_alpha": ("float", 0.0, 0.02),
}


def _cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


def tree_objective(params: dict[str, Any], trial_seed: int) -> tuple[float, DecisionTreeClassifier]:
    X, y = _cancer()
    model = DecisionTreeClassifier(random_state=trial_seed, **params)
    score = float(cross_val_score(model, X, y, cv=3).mean())
    return score, model.fit(X, y)


def quadratic(params: dict[str, Any], trial_seed: int) -> float:
    """A cheap objective with its maximum at x=0.3, n=4, kind='b'."""
    return float(-((params["x"] - 0.3) ** 2) - 0.01 * (params["n"] - 4) ** 2 + (0.1 if params["kind"] == "b" else 0.0))


QUAD_SPACE: dict[str, Any] = {"x": ("float", -1.0, 1.0), "n": ("int", 1, 8), "kind": ("categorical", ["a", "b"])}


CONTEXT: contextvars.ContextVar[str] = contextvars.ContextVar("test_tuning_context", default="unset")


def _children(settings: Settings, parent_id: str) -> list[Any]:
    runs = get_tracking(settings).search_runs(filter=f"attributes.parent_run_id = '{parent_id}'").runs
    return sorted(runs, key=lambda r: int(r.tags["loopml.tune.trial"]))


def test_tune_finds_params_in_the_space_and_records_every_trial(settings: Settings) -> None:
    result = tune(tree_objective, TREE_SPACE, n_trials=6, seed=0, settings=settings)
    assert isinstance(result, TuneResult) and len(result.trials) == 6
    bp = result.best_params
    assert set(bp) == set(TREE_SPACE)
    assert 2 <= bp["max_depth"] <= 8 and 1 <= bp["min_samples_leaf"] <= 20
    assert bp["criterion"] in ("gini", "entropy") and 0.0 <= bp["ccp_alpha"] <= 0.02
    assert all(t.state == "COMPLETE" and t.value is not None for t in result.trials)
    values = [t.value for t in result.trials if t.value is not None]
    assert result.best_value == max(values)
    best_trial = next(t for t in result.trials if t.value == result.best_value)
    assert best_trial.params == bp
    # the best model is the best trial's, fitted
    X, y = _cancer()
    model = result.best_model
    assert isinstance(model, DecisionTreeClassifier) and model.get_depth() <= bp["max_depth"]
    assert model.get_params()["criterion"] == bp["criterion"] and (model.predict(X) == y).mean() > 0.8

    svc = get_tracking(settings)
    parent = svc.get_run(result.parent_run_id)
    assert parent.status.value == "finished" and parent.experiment == "tuning" and parent.name == "tune"
    assert parent.parent_run_id is None
    assert {f"best_{k}": v for k, v in bp.items()}.items() <= parent.params.items()
    assert parent.params["n_trials"] == 6 and parent.params["seed"] == 0 and parent.params["direction"] == "maximize"
    assert parent.metric("best_score") == pytest.approx(result.best_value)
    assert parent.metric("trials_complete") == 6 and parent.metric("trials_failed") == 0
    assert parent.tags["loopml.tune.study"] == result.study_name
    series = svc.metric_history(result.parent_run_id, "best_score")
    assert [m.step for m in series] == list(range(6))
    assert [m.value for m in series] == pytest.approx(list(np.maximum.accumulate(values)))

    children = _children(settings, result.parent_run_id)
    assert [c.id for c in children] == [t.run_id for t in result.trials]
    for c, t in zip(children, result.trials, strict=True):
        assert c.parent_run_id == result.parent_run_id and c.status.value == "finished"
        assert c.name == f"trial-{t.number}" and c.experiment == "tuning"
        assert c.params == t.params and c.metric("score") == pytest.approx(t.value)
        assert c.tags["loopml.tune.trial"] == str(t.number) and c.tags["loopml.tune.state"] == "COMPLETE"
        assert c.tags["loopml.tune.trial_seed"] == str(trial_seed(0, t.number))


def test_failing_trials_are_recorded_and_the_study_goes_on(settings: Settings) -> None:
    calls: list[int] = []

    def flaky(params: dict[str, Any], seed: int) -> float:
        calls.append(seed)
        if len(calls) in (2, 4):
            raise ValueError(f"diverged at call {len(calls)}")
        return quadratic(params, seed)

    result = tune(flaky, QUAD_SPACE, n_trials=6, direction="maximize", metric="objective", settings=settings)
    assert [t.state for t in result.trials] == ["COMPLETE", "FAIL", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    failed = result.trials[1]
    assert failed.value is None and failed.error == "ValueError: diverged at call 2"
    svc = get_tracking(settings)
    run = svc.get_run(failed.run_id or "")
    assert run.status.value == "failed" and run.parent_run_id == result.parent_run_id
    assert run.tags["loopml.tune.state"] == "FAIL" and "diverged at call 2" in run.tags["loopml.error"]
    assert "objective" not in run.metrics
    parent = svc.get_run(result.parent_run_id)
    assert parent.status.value == "finished" and parent.metric("trials_failed") == 2
    assert [m.step for m in svc.metric_history(parent.id, "best_objective")] == [0, 2, 4, 5]
    assert result.best_model is None  # the objective returned values only


def test_all_trials_failing_is_an_error(settings: Settings) -> None:
    def broken(params: dict[str, Any], seed: int) -> float:
        raise RuntimeError("no data")

    with pytest.raises(LoopmlError, match=r"all 3 trials of tune run \w+ failed; the first error: RuntimeError: no data"):
        tune(broken, QUAD_SPACE, n_trials=3, settings=settings)
    (parent,) = [r for r in get_tracking(settings).search_runs("tuning").runs if r.name == "tune"]
    assert parent.status.value == "failed" and "all 3 trials" in parent.tags["loopml.error"]
    assert [c.status.value for c in _children(settings, parent.id)] == ["failed"] * 3

    def wrong_type(params: dict[str, Any], seed: int) -> str:
        return "high"

    with pytest.raises(LoopmlError, match="must return a number or \\(number, model\\), got str"):
        tune(wrong_type, QUAD_SPACE, n_trials=2, settings=settings)


def test_the_same_seed_gives_the_same_study(settings: Settings) -> None:
    seeds: list[list[int]] = [[], [], []]

    def run(i: int, seed: int, sampler: str = "tpe") -> TuneResult:
        def objective(params: dict[str, Any], trial_seed: int) -> float:
            seeds[i].append(trial_seed)
            return quadratic(params, trial_seed)

        return tune(objective, QUAD_SPACE, n_trials=12, seed=seed, sampler=sampler, settings=settings)

    a, b, c = run(0, 7), run(1, 7), run(2, 8)  # past TPE's 10 random start-up trials
    assert a.best_params == b.best_params and a.best_value == b.best_value
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert seeds[0] == seeds[1] == [trial_seed(7, n) for n in range(12)] and len(set(seeds[0])) == 12
    assert seeds[2] != seeds[0] and [t.params for t in c.trials] != [t.params for t in a.trials]
    assert run(0, 5, "random").trials[3].params == run(1, 5, "random").trials[3].params


def test_nests_under_the_active_run_and_the_objective_logs_to_its_trial(settings: Settings) -> None:
    def objective(params: dict[str, Any], seed: int) -> float:
        log_metric("inner", float(params["n"]))
        return quadratic(params, seed)

    with start_run("outer-exp", settings=settings) as outer:
        result = tune(objective, QUAD_SPACE, n_trials=3, direction="minimize", settings=settings)
        assert active_run() is outer
    svc = get_tracking(settings)
    parent = svc.get_run(result.parent_run_id)
    assert parent.parent_run_id == outer.id and parent.experiment == "outer-exp"
    assert result.best_value == min(t.value for t in result.trials if t.value is not None)
    for c, t in zip(_children(settings, parent.id), result.trials, strict=True):
        assert c.experiment == "outer-exp" and c.metric("inner") == t.params["n"]
    assert "inner" not in svc.get_run(outer.id).metrics


def test_threads_create_each_trial_run_in_its_worker(settings: Settings) -> None:
    threads: dict[int, str] = {}
    lock = threading.Lock()

    def objective(params: dict[str, Any], seed: int) -> tuple[float, dict[str, Any]]:
        run = active_run()
        assert run is not None
        assert CONTEXT.get() == "from the caller"  # context variables (e.g. a step's settings) reach the workers
        with lock:
            threads[seed] = threading.current_thread().name
        log_metric("seen_by", float(seed % 1000))
        return quadratic(params, seed), dict(params)

    token = CONTEXT.set("from the caller")
    try:
        result = tune(objective, QUAD_SPACE, n_trials=6, n_jobs=3, seed=1, settings=settings)
    finally:
        CONTEXT.reset(token)
    assert len(result.trials) == 6 and all(t.state == "COMPLETE" for t in result.trials)
    assert all(name != threading.current_thread().name for name in threads.values())
    assert result.best_model == result.best_params  # the model of the best trial, kept across threads
    for c in _children(settings, result.parent_run_id):
        assert c.parent_run_id == result.parent_run_id and c.status.value == "finished"
        assert c.metric("seen_by") == int(c.tags["loopml.tune.trial_seed"]) % 1000


def test_timeout_stops_starting_trials(settings: Settings) -> None:
    def slow(params: dict[str, Any], seed: int) -> float:
        time.sleep(0.05)
        return quadratic(params, seed)

    result = tune(slow, QUAD_SPACE, n_trials=100, timeout=0.2, settings=settings)
    assert 1 <= len(result.trials) < 100 and all(t.state == "COMPLETE" for t in result.trials)
    parent = get_tracking(settings).get_run(result.parent_run_id)
    assert parent.status.value == "finished" and parent.metric("trials_complete") == len(result.trials)


def test_optuna_distributions_are_accepted(settings: Settings) -> None:
    space = {"x": FloatDistribution(-1.0, 1.0), "n": IntDistribution(1, 8, step=1),
             "kind": ("categorical", ("a", "b"))}
    result = tune(quadratic, space, n_trials=4, sampler="random", settings=settings)
    assert -1.0 <= result.best_params["x"] <= 1.0 and result.best_params["n"] in range(1, 9)
    assert parse_space({"s": ("float", 0.0, 1.0, 0.25)})["s"] == FloatDistribution(0.0, 1.0, step=0.25)


@pytest.mark.parametrize(("space", "message"), [
    ({"depth": ("integer", 1, 3)}, "parameter 'depth' has unknown kind 'integer'; known kinds: int, float, categorical"),
    ({"depth": ("int", 9, 3)}, "parameter 'depth': low 9 is greater than high 3"),
    ({"lr": ("float", 0.5, 0.1)}, "parameter 'lr': low 0.5 is greater than high 0.1"),
    ({"lr": ("float", 0.0, 0.1, "log")}, "parameter 'lr': a log scale needs low > 0"),
    ({"depth": ("int", 1.5, 3)}, "parameter 'depth': low must be an integer"),
    ({"lr": ("float", 0.1, "big")}, "parameter 'lr': high must be a finite number"),
    ({"depth": ("int", 1, 9, 0)}, "parameter 'depth': step must be > 0"),
    ({"c": ("categorical", [])}, "parameter 'c': use \\('categorical', \\[choice, ...\\]\\)"),
    ({"c": ("categorical", [object()])}, "parameter 'c': choices must be"),
    ({"c": "gini"}, "parameter 'c' has spec 'gini'"),
    ({"d": ("int", 1)}, "parameter 'd': use \\('int', low, high\\)"),
    ({}, "space must be a non-empty dict"),
])
def test_invalid_spaces_are_rejected(space: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        tune(quadratic, space, n_trials=1)
    with pytest.raises(InvalidInputError, match=message):
        tuning_step(quadratic, space)


@pytest.mark.parametrize(("options", "message"), [
    ({"n_trials": 0}, "n_trials must be an integer >= 1"),
    ({"direction": "up"}, "direction must be 'maximize' or 'minimize'"),
    ({"sampler": "grid"}, "sampler must be 'tpe', 'random' or an Optuna sampler"),
    ({"n_jobs": 0}, "n_jobs must be an integer >= 1"),
    ({"timeout": -1}, "timeout must be a number of seconds > 0"),
    ({"seed": -3}, "seed must be an integer >= 0 or None"),
])
def test_invalid_options_are_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        tune(quadratic, QUAD_SPACE, **options)


# -- the pipeline step --------------------------------------------------------------------


@step(outputs=("features", "target"))
def wine() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_wine(return_X_y=True)
    return X, y


def wine_objective(params: dict[str, Any], trial_seed: int, features: np.ndarray,
                   target: np.ndarray) -> tuple[float, DecisionTreeClassifier]:
    model = DecisionTreeClassifier(random_state=trial_seed, **params)
    return float(cross_val_score(model, features, target, cv=3).mean()), model.fit(features, target)


def test_tuning_step_in_a_pipeline_returns_the_best_model_and_is_cached(settings: Settings) -> None:
    tune_step = tuning_step(wine_objective, {"max_depth": ("int", 1, 6), "criterion": ("categorical", ["gini", "entropy"])},
                            inputs=("features", "target"), name="tune_tree", n_trials=6, n_jobs=2)
    # no settings=: a step's default project is the pipeline's, also in Optuna's worker threads
    assert tune_step.name == "tune_tree" and tune_step.inputs == ("features", "target")
    assert tune_step.outputs == ("best_params", "best_model", "best_value")
    pipe = Pipeline("tune-wine", steps=[wine, tune_step])
    first = pipe.run(settings=settings, seed=1)
    assert first.status == "finished", first.error
    assert [s.status for s in first.steps] == ["done", "done"]
    model, params = first.outputs["best_model"], first.outputs["best_params"]
    X, y = load_wine(return_X_y=True)
    assert model.predict(X).shape == y.shape and (model.predict(X) == y).mean() > 0.8
    assert model.get_params()["max_depth"] == params["max_depth"] and 1 <= params["max_depth"] <= 6
    assert 0.5 < first.outputs["best_value"] <= 1.0
    (parent,) = [r for r in get_tracking(settings).search_runs("tuning").runs if r.name == "tune_tree"]
    assert len(_children(settings, parent.id)) == 6

    again = pipe.run(settings=settings, seed=2)
    assert [s.status for s in again.steps] == ["cached", "cached"]
    assert again.outputs["best_params"] == params
    assert len(get_tracking(settings).search_runs("tuning").runs) == 7  # no new trials

    seeded = tuning_step(wine_objective, {"max_depth": ("int", 1, 6)}, inputs=("features", "target"), seed=None,
                         name="tune_seeded", outputs=("p", "m", "v"), n_trials=2, settings=settings)
    assert seeded.inputs == ("features", "target", "seed") and seeded.outputs == ("p", "m", "v")
    best_params, best_model, best_value = seeded(features=X, target=y, seed=3)  # a step is callable
    assert set(best_params) == {"max_depth"} and best_model.get_depth() <= best_params["max_depth"]
    (seeded_run,) = [r for r in get_tracking(settings).search_runs("tuning").runs if r.name == "tune_seeded"]
    assert seeded_run.params["seed"] == 3 and seeded_run.metric("best_score") == best_value


def test_tuning_step_arguments_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="'seed' cannot be an input"):
        tuning_step(wine_objective, {"d": ("int", 1, 2)}, inputs=("features", "seed"))
    with pytest.raises(InvalidInputError, match="input name 'not valid' must be a Python identifier"):
        tuning_step(wine_objective, {"d": ("int", 1, 2)}, inputs=("not valid",))
    with pytest.raises(InvalidInputError, match="outputs must name 3 outputs"):
        tuning_step(wine_objective, {"d": ("int", 1, 2)}, outputs=("a", "b"))
    with pytest.raises(InvalidInputError, match="direction must be"):
        tuning_step(wine_objective, {"d": ("int", 1, 2)}, direction="sideways")


def test_the_step_code_hash_follows_the_objective(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(body: str, helper: str = "x * 2") -> Any:
        (tmp_path / "tunex_objective.py").write_text(textwrap.dedent(f"""\
            def helper(x):
                return {helper}

            def objective(params, trial_seed, features):
                return {body}
            """))
        importlib.invalidate_caches()
        sys.modules.pop("tunex_objective", None)
        return importlib.import_module("tunex_objective").objective

    def hash_of(objective: Any, **options: Any) -> str:
        st = tuning_step(objective, options.pop("space", {"a": ("int", 1, 3)}), inputs=("features",), **options)
        return code_hash(st.fn, project_root=tmp_path)

    try:
        base = hash_of(write("helper(params['a'])"))
        assert hash_of(write("helper(params['a'])  # a comment")) == base
        assert hash_of(write("helper(params['a']) + 1")) != base  # the objective's code
        assert hash_of(write("helper(params['a'])", helper="x * 3")) != base  # a helper it calls
        objective = write("helper(params['a'])")
        assert hash_of(objective, space={"a": ("int", 1, 4)}) != base
        assert hash_of(objective, n_trials=5) != base
        dist = hash_of(objective, space={"a": IntDistribution(1, 3)})
        assert dist == hash_of(objective, space={"a": ("int", 1, 3)})  # the same space, spelled differently
        assert hash_of(objective, space={"a": IntDistribution(1, 5)}) != dist
        assert hash_of(objective) == base
    finally:
        sys.modules.pop("tunex_objective", None)
