"""Pipelines: DAG checks, records, caching with reasons, failures, retries, timeouts, parallelism, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from loopml.config import Settings
from loopml.errors import InvalidInputError
from loopml.pipelines import Pipeline, get_pipelines, step


@step
def make(n: int) -> np.ndarray:
    print(f"making {n}")
    return np.arange(n, dtype=float)


@step
def total(make: np.ndarray, scale: float = 1.0) -> float:
    return float(make.sum() * scale)


@step(outputs=("lo", "hi"))
def split(make: np.ndarray) -> tuple[float, float]:
    return float(make.min()), float(make.max())


def test_dag_is_inferred_and_bad_graphs_are_refused() -> None:
    pipe = Pipeline("stats", steps=[total, split, make], params={"n": 10})
    assert pipe.order.index("make") < pipe.order.index("total")
    assert pipe.upstream == {"make": set(), "total": {"make"}, "split": {"make"}}

    @step
    def a(b: int) -> int:
        return b

    @step
    def b(a: int) -> int:
        return a

    with pytest.raises(InvalidInputError, match="cycle: (a -> b -> a|b -> a -> b)"):
        Pipeline("loop", steps=[a, b])
    with pytest.raises(InvalidInputError, match="step 'total' needs input 'make'"):
        Pipeline("broken", steps=[total])
    with pytest.raises(InvalidInputError, match="produced by both"):
        Pipeline("twice", steps=[make, step(name="make2", outputs="make")(lambda n: n)], params={"n": 1})
    with pytest.raises(InvalidInputError, match="not a step"):
        Pipeline("plain", steps=[len])  # type: ignore[list-item]


def test_run_is_recorded_and_a_rerun_is_fully_cached(settings: Settings) -> None:
    pipe = Pipeline("stats", steps=[make, total, split], params={"n": 100})
    first = pipe.run(settings=settings, seed=7)
    assert first.status == "finished" and first.error is None
    assert [s.status for s in first.steps] == ["done", "done", "done"]
    assert first.outputs["total"] == pytest.approx(4950.0)
    assert (first.outputs["lo"], first.outputs["hi"]) == (0.0, 99.0)
    mk = first.step("make")
    assert mk.logs is not None and "making 100" in mk.logs
    assert mk.params == {"n": 100} and set(mk.input_hashes) == {"n"} and len(mk.code_hash or "") == 64
    assert mk.cache_miss == "no earlier successful execution of this step"
    assert mk.duration_ms is not None and mk.duration_ms >= 0
    again = pipe.run(settings=settings)
    assert [s.status for s in again.steps] == ["cached", "cached", "cached"]
    assert again.step("total").cached_from == first.step("total").id
    assert again.outputs["total"] == pytest.approx(4950.0)
    stored = get_pipelines(settings).get_run(again.id)
    assert stored.status == "finished" and len(stored.steps) == 3


def test_cache_misses_say_why_and_can_be_turned_off(settings: Settings) -> None:
    pipe = Pipeline("stats", steps=[make, total], params={"n": 10})
    pipe.run(settings=settings)
    changed = pipe.run(settings=settings, scale=2.0)
    assert [s.status for s in changed.steps] == ["cached", "done"]
    assert changed.step("total").cache_miss == "input 'scale' changed"
    assert changed.outputs["total"] == pytest.approx(90.0)
    bigger = pipe.run(settings=settings, n=20)
    assert bigger.step("make").cache_miss == "input 'n' changed"
    assert "input 'make' changed" in (bigger.step("total").cache_miss or "")
    off = pipe.run(settings=settings, cache=False)
    assert [s.status for s in off.steps] == ["done", "done"]
    assert off.step("make").cache_miss == "caching is off for this run"
    uncached = Pipeline("nocache", steps=[step(name="make", cache=False)(make.fn), total], params={"n": 10})
    assert [s.status for s in uncached.run(settings=settings).steps] == ["done", "cached"]


def test_a_cache_hit_needs_the_stored_outputs(settings: Settings) -> None:
    pipe = Pipeline("big", steps=[make, total], params={"n": 100_000})
    first = pipe.run(settings=settings)
    key = first.step("make").outputs["make"]["key"]  # large outputs live in the artifact store
    (Path(settings.artifact_root) / key).unlink()
    again = pipe.run(settings=settings)
    assert again.step("make").status == "done"
    assert again.step("make").cache_miss == "the earlier outputs are no longer stored"
    assert again.step("total").status == "cached"  # same content, so the downstream key matches


def test_a_failing_step_is_recorded_and_downstream_skipped(settings: Settings) -> None:
    @step
    def boom(make: np.ndarray) -> float:
        raise ValueError("no pumpkins today")

    @step
    def after(boom: float) -> float:
        return boom

    run = Pipeline("fails", steps=[make, boom, after], params={"n": 3}).run(settings=settings)
    assert run.status == "failed"
    assert run.error is not None and "boom" in run.error and "no pumpkins today" in run.error
    assert [s.status for s in run.steps] == ["done", "failed", "skipped"]
    assert "Traceback" in (run.step("boom").error or "") and "ValueError" in (run.step("boom").error or "")
    assert run.step("after").error == "upstream step 'boom' failed"


def test_unpicklable_output_names_the_step(settings: Settings) -> None:
    @step
    def lock(n: int) -> object:
        return threading.Lock()

    run = Pipeline("lock", steps=[lock], params={"n": 1}).run(settings=settings)
    assert run.status == "failed"
    assert "step 'lock': output 'lock' of type lock cannot be serialised" in (run.step("lock").error or "")


def test_retries_with_backoff(settings: Settings, tmp_path: Path) -> None:
    counter = tmp_path / "count"

    @step(retries=2, retry_backoff=0.01)
    def flaky(n: int) -> int:
        tries = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(tries))
        if tries < 2:
            raise ConnectionError("transient")
        return n

    run = Pipeline("flaky", steps=[flaky], params={"n": 5}).run(settings=settings)
    assert run.status == "finished" and run.step("flaky").attempts == 2 and run.outputs["flaky"] == 5


def test_timeout_stops_a_step(settings: Settings) -> None:
    @step(timeout=0.5)
    def slow(n: int) -> int:
        time.sleep(30)
        return n

    @step(timeout=5)
    def quick(n: int) -> int:
        return n * 2

    run = Pipeline("slow", steps=[slow, quick], params={"n": 2}).run(settings=settings)
    assert run.step("slow").status == "failed"
    assert "did not finish within its timeout of 0.5 s" in (run.step("slow").error or "")
    assert run.step("quick").status == "done" and run.outputs["quick"] == 4


def test_independent_branches_run_in_parallel(settings: Settings) -> None:
    @step
    def left(n: int) -> tuple[float, float]:
        start = time.monotonic()
        time.sleep(0.3)
        return start, time.monotonic()

    @step
    def right(n: int) -> tuple[float, float]:
        start = time.monotonic()
        time.sleep(0.3)
        return start, time.monotonic()

    run = Pipeline("branches", steps=[left, right], params={"n": 1}).run(settings=settings, workers=2, cache=False)
    (l0, l1), (r0, r1) = run.outputs["left"], run.outputs["right"]
    assert l0 < r1 and r0 < l1  # the two intervals overlap


def test_seed_is_derived_from_the_run(settings: Settings) -> None:
    @step
    def draw(n: int, seed: int) -> float:
        return float(np.random.default_rng(seed).random())

    pipe = Pipeline("seeded", steps=[draw], params={"n": 1})
    a = pipe.run(settings=settings, seed=1, cache=False)
    b = pipe.run(settings=settings, seed=1, cache=False)
    c = pipe.run(settings=settings, seed=2, cache=False)
    assert a.outputs["draw"] == b.outputs["draw"] != c.outputs["draw"]
    with pytest.raises(InvalidInputError, match="no parameter"):
        pipe.run(settings=settings, bogus=1)


def _write_project(tmp_path: Path, helper_body: str) -> Path:
    (tmp_path / "helpers.py").write_text(f"def adjust(x):\n    return {helper_body}\n")
    (tmp_path / "flow.py").write_text(textwrap.dedent("""
        import os, sys, time
        from pathlib import Path
        from loopml.config import Settings
        from loopml.pipelines import Pipeline, step
        import helpers

        HERE = Path(__file__).parent

        @step
        def first(n: int) -> int:
            with open(HERE / "first.count", "a") as f:
                f.write("x")
            return helpers.adjust(n)

        @step
        def second(first: int) -> int:
            if os.environ.get("HANG_IN_SECOND"):
                (HERE / "in_second").write_text("1")
                time.sleep(60)
            return first * 10

        @step
        def third(second: int) -> int:
            return second + 1

        PIPE = Pipeline("flow", steps=[first, second, third], params={"n": 1})
        SETTINGS = Settings.for_dir(HERE)

        if __name__ == "__main__":
            run = PIPE.run(settings=SETTINGS)
            print(run.id, run.outputs["third"], ",".join(s.status for s in run.steps))
    """))
    return tmp_path


def _run_flow(project: Path, env: dict[str, str] | None = None) -> list[str]:
    out = subprocess.run([sys.executable, str(project / "flow.py")], cwd=project, capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=120, check=True)
    return out.stdout.split()


def test_changed_helper_in_another_module_invalidates_the_cache(tmp_path: Path) -> None:
    project = _write_project(tmp_path, "x + 1")
    _, value, statuses = _run_flow(project)
    assert (value, statuses) == ("21", "done,done,done")
    _, value, statuses = _run_flow(project)
    assert statuses == "cached,cached,cached"
    _write_project(tmp_path, "x + 2")
    _, value, statuses = _run_flow(project)
    assert value == "31"  # not the stale 21
    assert statuses.split(",")[0] == "done"


def test_resume_after_kill_9_keeps_finished_steps(tmp_path: Path) -> None:
    project = _write_project(tmp_path, "x + 1")
    err = tmp_path / "stderr.txt"
    with err.open("w") as errf, subprocess.Popen([sys.executable, str(project / "flow.py")], cwd=project,
                                                 env={**os.environ, "HANG_IN_SECOND": "1"},
                                                 stdout=subprocess.DEVNULL, stderr=errf) as proc:
        try:
            deadline = time.monotonic() + 60
            while not (project / "in_second").exists():
                assert proc.poll() is None, err.read_text()
                assert time.monotonic() < deadline, "the pipeline never reached its second step"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
    sys.path.insert(0, str(project))
    try:
        import flow  # the project's pipeline module, as `loopml pipeline resume` would import it

        svc = get_pipelines(flow.SETTINGS)
        [stuck] = svc.list_runs("flow")
        assert stuck["status"] == "running"
        before = svc.get_run(stuck["id"])
        assert [s.status for s in before.steps] == ["done", "running"]
        resumed = svc.resume(stuck["id"])
        assert resumed.id == stuck["id"] and resumed.status == "finished"
        assert [(s.step, s.status) for s in resumed.steps] == [("first", "done"), ("second", "done"), ("third", "done")]
        assert resumed.outputs["third"] == 21
        assert (project / "first.count").read_text() == "x"  # the finished step was not redone
        assert len(svc.get_run(stuck["id"]).steps) == 3  # one record per step, no duplicates
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("flow", None)
        sys.modules.pop("helpers", None)


def test_process_executor_isolates_steps(settings: Settings) -> None:
    @step
    def where(n: int) -> int:
        return os.getpid()

    @step
    def crash(n: int) -> int:
        os._exit(3)

    run = Pipeline("isolated", steps=[where, crash], params={"n": 1}).run(settings=settings, executor="processes",
                                                                          workers=2)
    assert run.executor == "processes"
    assert run.step("where").status == "done" and run.outputs["where"] != os.getpid()
    assert run.step("crash").status == "failed"
    assert "exited without a result (exit code 3)" in (run.step("crash").error or "")
    assert run.status == "failed"
    with pytest.raises(InvalidInputError, match="executor 'ray-ish' is unknown"):
        Pipeline("isolated", steps=[where], params={"n": 1}).run(settings=settings, executor="ray-ish")
