"""The Ray executor against a real local Ray (``ray.init()`` on this machine)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopml.config import Settings
from loopml.errors import InvalidInputError
from loopml.pipelines import Pipeline, step
from loopml.pipelines._isolate import StepTimeoutError

ray = pytest.importorskip("ray", reason="the Ray executor needs the ray extra")

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ray")]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@step
def make(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64)


@step
def where_make(make: np.ndarray) -> int:
    print("running in", os.getpid())
    return os.getpid()


@step
def total(make: np.ndarray) -> float:
    return float(make.sum())


def test_steps_run_as_ray_tasks_and_data_goes_through_the_store(settings: Settings) -> None:
    pipe = Pipeline("ray-sum", steps=[make, where_make, total], params={"n": 200_000})
    run = pipe.run(settings=settings, executor="ray", workers=2)
    assert run.status == "finished", run.error
    assert run.executor == "ray"
    assert run.outputs["total"] == float(np.arange(200_000).sum())
    assert run.outputs["where_make"] != os.getpid()  # ran in a Ray worker
    steps = {s.step: s for s in run.steps}
    assert "running in" in (steps["where_make"].logs or "")
    # the 1.6 MB array went to the artifact store, not through the driver
    ref = steps["make"].outputs["make"]
    assert "key" in ref and (settings.project_dir / ".loopml" / "artifacts" / ref["key"]).is_file()
    # the same run again is answered from the cache, without Ray
    again = pipe.run(settings=settings, executor="ray")
    assert [s.status for s in again.steps] == ["cached"] * 3


def test_project_helpers_are_shipped_by_value(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a module that exists only in this process's sys.path: Ray's workers cannot import it
    pkg = tmp_path / "proj"
    pkg.mkdir()
    (pkg / "raysteps_helpers.py").write_text("def scale(x):\n    return x * 3\n")
    (pkg / "raysteps_defs.py").write_text(
        "from loopml.pipelines import step\nfrom raysteps_helpers import scale\n\n"
        "@step\ndef tripled(k: int) -> int:\n    return scale(k)\n"
    )
    monkeypatch.chdir(pkg)
    monkeypatch.syspath_prepend(str(pkg))
    import raysteps_defs  # type: ignore[import-not-found]

    run = Pipeline("ray-helpers", steps=[raysteps_defs.tripled], params={"k": 7}).run(
        settings=Settings.for_dir(pkg), executor="ray")
    assert run.status == "finished", run.error
    assert run.outputs["tripled"] == 21


@step
def explode(make: np.ndarray) -> int:
    raise ValueError("bad batch 17")


@step
def after(explode: int) -> int:
    return explode


def test_a_failing_ray_step_is_recorded_with_its_traceback(settings: Settings) -> None:
    run = Pipeline("ray-fail", steps=[make, explode, after], params={"n": 3}).run(settings=settings, executor="ray")
    assert run.status == "failed"
    steps = {s.step: s for s in run.steps}
    assert steps["explode"].status == "failed"
    assert "ValueError: bad batch 17" in (steps["explode"].error or "")
    assert "explode" in (steps["explode"].error or "")  # the worker's traceback names the function
    assert steps["after"].status == "skipped"


_ATTEMPTS: list[int] = []


def test_retries_and_timeouts_on_ray(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "tries"

    @step(retries=2, retry_backoff=0.01)
    def flaky(n: int) -> int:
        tries = int(marker.read_text()) if marker.exists() else 0
        marker.write_text(str(tries + 1))
        if tries < 2:
            raise RuntimeError(f"try {tries}")
        return n

    run = Pipeline("ray-flaky", steps=[flaky], params={"n": 5}).run(settings=settings, executor="ray")
    assert run.status == "finished" and run.outputs["flaky"] == 5
    assert run.steps[0].attempts == 3

    @step(timeout=1.0)
    def sleepy(n: int) -> int:
        time.sleep(30)
        return n

    started = time.monotonic()
    run = Pipeline("ray-sleepy", steps=[sleepy], params={"n": 1}).run(settings=settings, executor="ray")
    assert time.monotonic() - started < 15
    assert run.status == "failed"
    assert StepTimeoutError.__name__ in (run.error or "") or "timeout" in (run.error or "")


def test_independent_branches_run_in_parallel_on_ray(settings: Settings) -> None:
    @step
    def left(n: int) -> float:
        time.sleep(1.0)
        return time.time()

    @step
    def right(n: int) -> float:
        time.sleep(1.0)
        return time.time()

    run = Pipeline("ray-par", steps=[left, right], params={"n": 1}).run(settings=settings, executor="ray", workers=2,
                                                                        cache=False)
    assert run.status == "finished", run.error
    durations = [(s.ended_at or 0) - (s.started_at or 0) for s in run.steps]
    wall = max(s.ended_at or 0 for s in run.steps) - min(s.started_at or 0 for s in run.steps)
    assert wall < sum(durations) * 0.8  # overlapped


def test_bad_resources_and_unknown_executor_are_refused(settings: Settings) -> None:
    with pytest.raises(InvalidInputError, match="resources"):
        step(name="neg", resources={"num_cpus": -1})(lambda: 1)
    with pytest.raises(InvalidInputError, match="executor 'spark' is unknown"):
        Pipeline("ray-x", steps=[make], params={"n": 1}).run(settings=settings, executor="spark")

    @step(resources={"num_cpus": 1})
    def light(n: int) -> int:
        return n + 1

    run = Pipeline("ray-res", steps=[light], params={"n": 1}).run(settings=settings, executor="ray")
    assert run.outputs["light"] == 2


def test_an_unpicklable_parameter_names_the_step(settings: Settings) -> None:
    import threading

    @step
    def uses(lock: Any = threading.Lock()) -> int:  # noqa: B008 - the point of the test
        return 1

    run = Pipeline("ray-lock", steps=[uses]).run(settings=settings, executor="ray")
    assert run.status == "failed"
    assert "uses" in (run.error or "") and "pickle" in (run.error or "")


def test_tuning_trials_run_as_ray_tasks_and_log_to_their_runs(settings: Settings) -> None:
    pytest.importorskip("optuna")
    from loopml.pipelines.tuning import tune
    from loopml.tracking import get_tracking, log_metric

    def objective(params: dict[str, Any], trial_seed: int) -> tuple[float, dict[str, Any]]:
        log_metric("worker_pid", float(os.getpid()))
        if params["x"] == 0:
            raise ValueError("x = 0 is not allowed")
        return -((params["x"] - 3) ** 2), {"x": params["x"]}

    result = tune(objective, {"x": ("int", 0, 6)}, n_trials=8, n_jobs=2, seed=3, settings=settings, executor="ray",
                  sampler="random")
    assert result.best_model == result.best_params
    assert result.best_value == max(t.value for t in result.trials if t.value is not None)
    svc = get_tracking(settings)
    pids = set()
    for t in result.trials:
        assert t.run_id is not None
        run = svc.get_run(t.run_id)
        if t.state == "COMPLETE":
            pids.add(run.metric("worker_pid"))
        else:
            assert "x = 0" in (t.error or "")
    assert pids and os.getpid() not in pids  # metrics were logged from Ray workers


def test_a_tuning_step_runs_its_trials_on_ray(settings: Settings) -> None:
    pytest.importorskip("optuna")
    from loopml.pipelines.tuning import tuning_step

    def objective(params: dict[str, Any], trial_seed: int, offset: float) -> float:
        return -abs(params["x"] - offset)

    st = tuning_step(objective, {"x": ("float", 0.0, 10.0)}, inputs=("offset",), n_trials=5, seed=1,
                     executor="ray")
    run = Pipeline("ray-tune", steps=[st], params={"offset": 4.0}).run(settings=settings)
    assert run.status == "finished", run.error
    assert 0.0 <= run.outputs["best_params"]["x"] <= 10.0
    with pytest.raises(InvalidInputError, match="executor"):
        tuning_step(objective, {"x": ("float", 0.0, 1.0)}, executor="spark")
