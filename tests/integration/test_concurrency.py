"""Several processes on one embedded (SQLite) store, and flushing at interpreter exit."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loopml.config import Settings
from loopml.tracking import RunStatus, get_tracking

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROCESSES = 8
POINTS = 1_000


def _log_in_child(project_dir: str, worker: int) -> None:
    """Run in a spawned process: one run with POINTS metric points."""
    import os

    from loopml.config import Settings
    from loopml.tracking import start_run

    settings = Settings.for_dir(project_dir)
    params = {"worker": worker, "pid": os.getpid()}
    with start_run("concurrent", name=f"worker-{worker}", params=params, settings=settings) as run:
        for step in range(POINTS):
            run.log_metric("loss", worker + step / POINTS, step=step)


def test_processes_lose_no_metric_points(tmp_path: Path, settings: Settings) -> None:
    # nothing opened the store yet: the children also race to create and migrate it
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_log_in_child, args=(str(tmp_path), w)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0] * PROCESSES

    svc = get_tracking(settings)
    page = svc.search_runs("concurrent", order_by="params.worker")
    assert page.total == PROCESSES
    runs = sorted(page.runs, key=lambda r: r.params["worker"])
    assert [r.params["worker"] for r in runs] == list(range(PROCESSES))
    assert len({r.params["pid"] for r in runs}) == PROCESSES
    total = 0
    for worker, run in enumerate(runs):
        assert run.status is RunStatus.FINISHED
        history = svc.metric_history(run.id, "loss")
        assert [m.step for m in history] == list(range(POINTS))
        assert [m.value for m in history] == [worker + step / POINTS for step in range(POINTS)]
        assert run.metrics["loss"].step == POINTS - 1
        total += len(history)
    assert total == PROCESSES * POINTS
    assert [e.name for e in svc.list_experiments()] == ["concurrent"]


def test_metrics_are_flushed_and_run_finished_at_exit(tmp_path: Path, settings: Settings) -> None:
    # a long flush interval and a big buffer: only the exit hooks can write the points
    script = textwrap.dedent(
        f"""
        from loopml.config import Settings
        from loopml.tracking import start_run

        settings = Settings.for_dir({str(tmp_path)!r}, metric_flush_interval=3600.0, metric_buffer_size=100_000)
        run = start_run("atexit", settings=settings)
        for step in range(500):
            run.log_metric("acc", step / 500)
        print(run.id)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()

    svc = get_tracking(settings)
    run = svc.get_run(run_id)
    assert run.status is RunStatus.FINISHED
    assert run.end_time is not None
    history = svc.metric_history(run_id, "acc")
    assert [m.step for m in history] == list(range(500))
    assert run.metrics["acc"].value == 499 / 500
