"""``loopml pipeline ...`` against a project whose loopml.toml names its pipeline module."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import Result


@pytest.fixture
def pipeline_project(project: Path) -> Iterator[Path]:
    (project / "myflows.py").write_text(textwrap.dedent("""
        from pathlib import Path
        from loopml.pipelines import Pipeline, step

        HERE = Path(__file__).parent

        @step
        def numbers(n: int) -> list:
            return list(range(n))

        @step
        def total(numbers: list, factor: int = 1) -> int:
            if (HERE / "broken").exists():
                raise RuntimeError("the scale is broken")
            return sum(numbers) * factor

        Pipeline("sums", steps=[numbers, total], params={"n": 5}, description="adds numbers")
    """))
    cfg = project / "loopml.toml"
    text = cfg.read_text()
    assert '# modules = ["pipelines.train"]' in text  # the commented template line
    cfg.write_text(text.replace('# modules = ["pipelines.train"]', 'modules = ["myflows"]'))
    yield project
    sys.modules.pop("myflows", None)
    from loopml.pipelines import PIPELINES

    PIPELINES.pop("sums", None)


def test_list_run_show_and_runs(cli: Callable[..., Result], pipeline_project: Path) -> None:
    listed = cli("pipeline", "list")
    assert listed.exit_code == 0, listed.output
    assert "sums" in listed.output and "numbers -> total" in listed.output and "adds numbers" in listed.output
    res = cli("pipeline", "run", "sums", "-p", "n=10", "-p", "factor=2")
    assert res.exit_code == 0, res.output
    assert "finished" in res.output and "no earlier successful execution" in res.output
    run_id = next(ln.split()[-1] for ln in res.output.splitlines() if ln.strip().startswith("run "))
    again = cli("pipeline", "run", "sums", "-p", "n=10", "-p", "factor=2")
    assert again.output.count("cached") >= 2
    shown = cli("pipeline", "show", run_id[:8])
    assert shown.exit_code == 0 and run_id in shown.output and '"factor": 2' in shown.output
    runs = cli("pipeline", "runs", "sums")
    assert runs.output.count("finished") == 2


def test_failed_run_exits_1_and_resumes(cli: Callable[..., Result], pipeline_project: Path) -> None:
    (pipeline_project / "broken").write_text("1")
    res = cli("pipeline", "run", "sums")
    assert res.exit_code == 1
    assert "the scale is broken" in res.output and "Traceback" in res.output  # the step's traceback, shown as data
    run_id = next(ln.split()[-1] for ln in res.output.splitlines() if ln.strip().startswith("run "))
    (pipeline_project / "broken").unlink()
    resumed = cli("pipeline", "resume", run_id)
    assert resumed.exit_code == 0, resumed.output
    assert "finished" in resumed.output
    done = cli("pipeline", "resume", run_id)
    assert done.exit_code == 1 and "already finished" in done.output


def test_unknown_pipeline_and_bad_params(cli: Callable[..., Result], pipeline_project: Path) -> None:
    res = cli("pipeline", "run", "nope")
    assert res.exit_code == 1 and "no pipeline called 'nope'" in res.output and "sums" in res.output
    res = cli("pipeline", "run", "sums", "-p", "oops")
    assert res.exit_code == 1 and "KEY=VALUE" in res.output
    res = cli("pipeline", "run", "sums", "-p", "bogus=1")
    assert res.exit_code == 1 and "no parameter" in res.output


def test_triggers_and_one_scheduler_round(cli: Callable[..., Result], pipeline_project: Path) -> None:
    bad = cli("trigger", "add", "nightly", "--pipeline", "sums", "--cron", "not a cron")
    assert bad.exit_code == 1 and "is invalid" in bad.output
    both = cli("trigger", "add", "x", "--pipeline", "sums", "--cron", "0 * * * *", "--on-event", "alert.raised")
    assert both.exit_code == 1 and "exactly one" in both.output
    ok = cli("trigger", "add", "nightly", "--pipeline", "sums", "--cron", "0 3 * * *", "-p", "n=3")
    assert ok.exit_code == 0 and "next:" in ok.output, ok.output
    assert cli("trigger", "add", "on-alert", "--pipeline", "sums", "--on-event", "alert.raised").exit_code == 0
    listed = cli("trigger", "list")
    assert "nightly" in listed.output and "0 3 * * *" in listed.output and "on-alert" in listed.output
    from loopml.config import load_settings
    from loopml.pipelines.triggers import get_triggers
    from loopml.storage.events import emit

    emit(get_triggers(load_settings(pipeline_project)).store, "alert.raised", payload={"rule": "drift"})
    res = cli("scheduler", "--once")
    assert res.exit_code == 0, res.output
    assert "fired on-alert" in res.output
    assert "fired" not in cli("scheduler", "--once").output  # nothing new: nothing fires twice
    assert cli("trigger", "remove", "nightly").exit_code == 0
    assert "nightly" not in cli("trigger", "list").output
