"""``loopml batch`` against a real embedded project with a registered model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from typer.testing import Result

from loopml import registry
from loopml.cli import batch, main
from loopml.config import Settings

# main.py registers the command as `loopml batch`; until it does, register it here (once)
if not any(c.name == "batch" for c in main.app.registered_commands):
    main.app.command("batch")(batch.batch)

Cli = Callable[..., Result]
X, Y = load_breast_cancer(return_X_y=True, as_frame=True)


@pytest.fixture
def cancer(project_settings: Settings) -> LogisticRegression:
    """``models:/cancer/1`` with alias ``champion``."""
    model = LogisticRegression(max_iter=5000).fit(X, Y)
    registry.register(model, "cancer", input_example=X.head(), settings=project_settings)
    registry.set_alias("cancer", "champion", 1, settings=project_settings)
    return model


def ok(res: Result) -> str:
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res.output


def failed(res: Result, code: str) -> str:
    assert res.exit_code == 1, res.output
    assert code in res.output and "Traceback" not in res.output
    return res.output


def test_batch_scores_a_file_and_prints_a_summary(cli: Cli, cancer: LogisticRegression, tmp_path: Path) -> None:
    src, dst = tmp_path / "in.parquet", tmp_path / "out" / "scores.parquet"
    X.to_parquet(src)
    out = ok(cli("batch", "models:/cancer@champion", str(src), str(dst), "--workers", "2", "--chunk-rows", "100"))
    line = next(line for line in out.splitlines() if line.startswith("Scored"))
    assert line.startswith("Scored 569 rows with models:/cancer/1 in ")
    assert "rows/s, 6 chunks, processes) -> " in line and line.endswith(str(dst))
    scores = pd.read_parquet(dst)
    assert scores["row_id"].tolist() == list(range(569))
    np.testing.assert_array_equal(scores["prediction"], cancer.predict(X))


def test_batch_csv_with_an_id_column_and_probabilities(cli: Cli, cancer: LogisticRegression, tmp_path: Path) -> None:
    df = X.copy()
    df.insert(0, "patient", [f"p{i}" for i in range(len(df))])
    src, dst = tmp_path / "in.csv", tmp_path / "scores.csv"
    df.to_csv(src, index=False)
    ok(cli("batch", "models:/cancer/1", str(src), str(dst), "--executor", "local", "--id-column", "patient",
           "--proba", "--output-column", "malignant"))
    scores = pd.read_csv(dst)
    assert list(scores.columns) == ["patient", "malignant", "proba_0", "proba_1"]
    assert scores["patient"].tolist() == df["patient"].tolist()
    np.testing.assert_allclose(scores[["proba_0", "proba_1"]], cancer.predict_proba(X))


def test_batch_errors_show_a_headline_not_a_traceback(cli: Cli, cancer: LogisticRegression, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    bad = X.astype(object)
    bad.loc[123, "mean radius"] = "big"
    bad.to_csv(src, index=False)
    out = failed(cli("batch", "models:/cancer/1", str(src), str(tmp_path / "out.csv"), "--chunk-rows", "50"),
                 "SIGNATURE_MISMATCH")
    assert "starting at row 100" in out and "'big' at row 123" in out
    assert not (tmp_path / "out.csv").exists()

    failed(cli("batch", "models:/nope@champion", str(src), str(tmp_path / "out.csv")), "MODEL_NOT_FOUND")
    out = failed(cli("batch", "models:/cancer/1", str(src), str(tmp_path / "out.csv"), "--id-column", "patient"),
                 "INVALID_INPUT")
    assert "'patient' is not in" in out


def test_batch_options(cli: Cli) -> None:
    out = ok(cli("batch", "--help"))
    for option in ("--id-column", "--chunk-rows", "--workers", "--executor", "--proba", "local|processes|ray"):
        assert option in out
    res = cli("batch", "models:/cancer/1", "a.parquet", "b.parquet", "--executor", "threads")
    assert res.exit_code == 2 and "threads" in res.output
