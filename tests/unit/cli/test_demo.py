"""``loopml demo`` end to end in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopml.cli.main import app


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reruns(tmp_path: Path) -> None:
    from loopml import registry, tracking
    from loopml.config import load_settings

    runner = CliRunner()
    env = {"COLUMNS": "250", "NO_COLOR": "1"}
    folder = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--project", str(folder)], env=env)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "models:/wine/1" in out
    assert "wine@champion: (new) -> v1" in out
    assert "★ best" in out
    assert "runs compare" in out and "models show wine" in out
    assert "Served over HTTP: POST http://127.0.0.1:" in out and "(the same answers" in out
    assert (folder / "loopml.toml").is_file() and (folder / ".loopml" / "loopml.db").is_file()

    settings = load_settings(folder)
    page = tracking.search_runs("wine", order_by=["metrics.accuracy DESC"], settings=settings)
    assert page.total == 3
    assert {r.params["model"] for r in page.runs} == {"logistic_regression", "random_forest"}
    best = page.runs[0]
    assert len(tracking.metric_history(best.id, "cv_accuracy", settings=settings)) == 5
    assert best.metrics["accuracy"].value > 0.9
    v1 = registry.get_version("wine", 1, settings=settings)
    assert v1.run_id == best.id and v1.signature is not None and len(v1.signature.inputs) == 13
    from loopml.serving.predlog import read_predictions

    assert read_predictions("wine", settings=settings).num_rows == 5  # the served request was logged

    res = runner.invoke(app, ["demo", "--project", str(folder)], env=env)
    assert res.exit_code == 0, res.output
    assert "wine@champion: v1 -> v2" in res.output
    assert registry.get_model("wine", settings=settings).aliases == {"champion": 2}
    assert tracking.search_runs("wine", settings=settings).total == 6

    res = runner.invoke(app, ["-p", str(folder), "models", "rollback", "wine"], env=env)
    assert res.exit_code == 0, res.output
    assert "v2 -> v1" in res.output
