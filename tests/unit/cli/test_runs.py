"""``loopml runs list / show / compare`` against a real embedded store."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import Result

from loopml import tracking
from loopml.config import Settings

Cli = Callable[..., Result]


@pytest.fixture
def runs(project_settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Three finished runs in experiment ``wine`` and one in ``other``; name -> id."""
    ids: dict[str, str] = {}
    specs = [
        ("lr-small", {"model": "lr", "C": 0.1}, {"accuracy": 0.81, "loss": 0.50}),
        ("lr-big", {"model": "lr", "C": 10.0}, {"accuracy": 0.93, "loss": 0.20}),
        ("forest", {"model": "rf", "n_estimators": 100}, {"accuracy": 0.88, "loss": 0.35}),
    ]
    for name, params, final in specs:
        with tracking.start_run("wine", name=name, params=params, tags={"team": "ml"},
                                settings=project_settings) as run:
            for step in range(4):
                run.log_metric("train_loss", 1.0 / (step + 1), step=step)
            run.log_metrics(final)
            run.log_dataset(pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]}), name="toy")
            run.log_text("hello", "notes/readme.txt")
            ids[name] = run.id
    with tracking.start_run("other", name="[red]odd[/red]", settings=project_settings) as run:
        run.log_metric("accuracy", 0.5)
        ids["odd"] = run.id
    return ids


def assert_clean_error(res: Result, code: str) -> None:
    assert res.exit_code == 1, res.output
    assert code in res.output
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)


# -- list ----------------------------------------------------------------------------


def test_list_shows_runs_with_params_and_metrics(cli: Cli, runs: dict[str, str]) -> None:
    res = cli("runs", "list", "-e", "wine")
    assert res.exit_code == 0, res.output
    out = res.output
    for name in ("lr-small", "lr-big", "forest"):
        assert name in out
        assert runs[name][:8] in out
        assert runs[name] not in out  # short ids only
    assert "odd" not in out
    assert "experiment wine" in out
    for header in ("model", "C", "n_estimators", "accuracy", "loss", "train_loss"):
        assert header in out
    assert "0.93" in out and "0.81" in out and "finished" in out
    assert "3 of 3 runs" in out


def test_list_all_experiments_shows_the_experiment_column(cli: Cli, runs: dict[str, str]) -> None:
    res = cli("runs", "list")
    assert res.exit_code == 0, res.output
    assert "experiment" in res.output and "other" in res.output and "wine" in res.output
    assert "[red]odd[/red]" in res.output  # user text is never parsed as markup
    assert "4 of 4 runs" in res.output


def test_list_filter_and_order(cli: Cli, runs: dict[str, str]) -> None:
    res = cli("runs", "list", "-f", "params.model = 'lr' and metrics.accuracy > 0.8", "-o", "metrics.accuracy DESC")
    assert res.exit_code == 0, res.output
    assert "forest" not in res.output
    assert res.output.index("lr-big") < res.output.index("lr-small")
    assert "2 of 2 runs" in res.output


def test_list_pages(cli: Cli, runs: dict[str, str]) -> None:
    res = cli("runs", "list", "-e", "wine", "-o", "metrics.accuracy DESC", "--max", "1")
    assert res.exit_code == 0, res.output
    assert "lr-big" in res.output and "1 of 3 runs" in res.output
    token = res.output.split("--page-token", 1)[1].split()[0]
    res = cli("runs", "list", "-e", "wine", "-o", "metrics.accuracy DESC", "--max", "1", "--page-token", token)
    assert res.exit_code == 0, res.output
    assert "forest" in res.output and "lr-big" not in res.output


def test_list_empty_project(cli: Cli) -> None:
    res = cli("runs", "list")
    assert res.exit_code == 0
    assert "No runs" in res.output


@pytest.mark.parametrize(
    "args",
    [
        ("-f", "metrics.accuracy >"),
        ("-f", "bogus.field = 1"),
        ("-f", "metrics.accuracy like 'x'"),
        ("-o", "metrics.accuracy SIDEWAYS extra"),
    ],
)
def test_list_bad_filter_is_a_clean_error(cli: Cli, runs: dict[str, str], args: tuple[str, str]) -> None:
    res = cli("runs", "list", *args)
    assert_clean_error(res, "INVALID_FILTER")


def test_list_unknown_experiment_is_a_clean_error(cli: Cli, runs: dict[str, str]) -> None:
    res = cli("runs", "list", "-e", "nope")
    assert_clean_error(res, "NOT_FOUND")
    assert "nope" in res.output


def test_list_bad_max_is_a_usage_error(cli: Cli) -> None:
    res = cli("runs", "list", "--max", "0")
    assert res.exit_code == 2


def test_list_narrow_terminal_drops_columns_and_says_so(project: Path, runs: dict[str, str]) -> None:
    from typer.testing import CliRunner

    from loopml.cli.main import app

    res = CliRunner().invoke(app, ["-p", str(project), "runs", "list", "-e", "wine"], env={"COLUMNS": "90"})
    assert res.exit_code == 0, res.output
    table_lines = res.output.splitlines()[:5]
    assert all(len(line) <= 90 for line in table_lines)
    assert "not shown" in res.output


# -- show ----------------------------------------------------------------------------


def test_show_by_prefix(cli: Cli, runs: dict[str, str]) -> None:
    rid = runs["lr-big"]
    res = cli("runs", "show", rid[:6])
    assert res.exit_code == 0, res.output
    out = res.output
    assert rid in out
    assert "lr-big" in out and "wine" in out and "finished" in out
    for part in ("System", "python", "packages", "host", "git commit"):
        assert part in out
    assert "Params" in out and "10.0" in out
    assert "Tags" in out and "team" in out
    assert "Datasets" in out and "toy" in out
    assert "Artifacts" in out and "notes/readme.txt" in out and "5 B" in out
    # metrics: latest value, step and the number of points
    line = next(line for line in out.splitlines() if line.startswith("train_loss"))
    assert line.split()[1:4] == ["0.25", "3", "4"]


def test_show_full_id(cli: Cli, runs: dict[str, str]) -> None:
    res = cli("runs", "show", runs["forest"])
    assert res.exit_code == 0, res.output
    assert "forest" in res.output


def test_show_unknown_run(cli: Cli, runs: dict[str, str]) -> None:
    assert_clean_error(cli("runs", "show", "0" * 32), "RUN_NOT_FOUND")
    unused = next(p for p in (f"{i:04x}" for i in range(65536)) if not any(r.startswith(p) for r in runs.values()))
    res = cli("runs", "show", unused)
    assert_clean_error(res, "RUN_NOT_FOUND")
    assert unused in res.output
    assert_clean_error(cli("runs", "show", "not-hex!"), "RUN_NOT_FOUND")


def test_show_prefix_too_short(cli: Cli, runs: dict[str, str]) -> None:
    res = cli("runs", "show", runs["forest"][:3])
    assert_clean_error(res, "INVALID_INPUT")
    assert "at least 4" in res.output


def test_show_ambiguous_prefix(cli: Cli, project_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml.tracking import service

    fake = (f"abcd{n:028x}" for n in itertools.count(1))
    monkeypatch.setattr(service, "new_id", lambda: next(fake))
    for _ in range(2):
        with tracking.start_run("wine", settings=project_settings):
            pass
    res = cli("runs", "show", "abcd")
    assert_clean_error(res, "INVALID_INPUT")
    assert "ambiguous" in res.output and "matches 2 runs" in res.output
    res = cli("runs", "show", "abcd" + "0" * 27 + "1")
    assert res.exit_code == 0, res.output


# -- compare -------------------------------------------------------------------------


def test_compare_side_by_side(cli: Cli, runs: dict[str, str]) -> None:
    a, b, c = runs["lr-small"], runs["lr-big"], runs["forest"]
    res = cli("runs", "compare", a[:8], b[:8], c)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    header = "\n".join(lines[:3])
    assert a[:8] in header and b[:8] in header and c[:8] in header

    def row(label: str) -> str:
        return next(line for line in lines if label in line.split())

    assert "≠" in row("params.model")
    assert "≠" not in row("experiment")
    acc = row("metrics.accuracy")
    assert "0.93 ★" in acc and acc.count("★") == 1
    loss = row("metrics.loss")
    assert "0.2 ★" in loss and loss.count("★") == 1  # lower is better for a loss
    nest = row("params.n_estimators")
    assert "100" in nest and nest.count("-") >= 2  # missing for the two logistic regressions


def test_compare_needs_two_runs(cli: Cli, runs: dict[str, str]) -> None:
    assert cli("runs", "compare", runs["forest"]).exit_code == 2
    res = cli("runs", "compare", runs["forest"], runs["forest"][:8])
    assert res.exit_code == 2
    assert "same run" in res.output


def test_compare_unknown_run(cli: Cli, runs: dict[str, str]) -> None:
    assert_clean_error(cli("runs", "compare", runs["forest"], "f" * 32), "RUN_NOT_FOUND")


def test_lower_is_better() -> None:
    from loopml.cli.runs import lower_is_better

    assert lower_is_better("val_loss") and lower_is_better("rmse") and lower_is_better("error_rate")
    assert not lower_is_better("accuracy") and not lower_is_better("f1") and not lower_is_better("auc")
