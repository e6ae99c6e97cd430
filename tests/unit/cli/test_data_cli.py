"""``loopml data ...`` against a real embedded project."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_wine
from typer.testing import Result


@pytest.fixture
def wine_csv(tmp_path: Path) -> Path:
    frame = load_wine(as_frame=True).frame
    frame["contact"] = [f"grower{i}@example.com" for i in range(len(frame))]
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    return path


def test_register_list_show_alias(cli: Callable[..., Result], wine_csv: Path) -> None:
    res = cli("data", "register", "wine", str(wine_csv), "--alias", "training", "-t", "month=1")
    assert res.exit_code == 0, res.output
    assert "Registered datasets:/wine/1" in res.output and "178 rows" in res.output
    assert "email" in res.output  # the PII finding on the contact column
    again = cli("data", "register", "wine", str(wine_csv))
    assert again.exit_code == 0 and "Unchanged" in again.output
    listed = cli("data", "list")
    assert "wine" in listed.output and "v1" in listed.output
    shown = cli("data", "show", "datasets:/wine@training")
    assert shown.exit_code == 0, shown.output
    for text in ("datasets:/wine/1", "alcohol", "double", "@training", "month=1", "email"):
        assert text in shown.output
    moved = cli("data", "alias", "wine", "holdout", "1")
    assert "wine@holdout: (new) -> v1" in moved.output


def test_profile_writes_an_html_report(cli: Callable[..., Result], wine_csv: Path, tmp_path: Path) -> None:
    cli("data", "register", "wine", str(wine_csv))
    report = tmp_path / "report.html"
    res = cli("data", "profile", "wine", "--out", str(report))
    assert res.exit_code == 0, res.output
    html = report.read_text()
    assert html.count("<svg") >= 14 and "alcohol" in html


def test_infer_schema_then_validate_gates_on_errors(cli: Callable[..., Result], wine_csv: Path, tmp_path: Path) -> None:
    cli("data", "register", "wine", str(wine_csv))
    schema = tmp_path / "wine.schema.yaml"
    res = cli("data", "infer-schema", "wine", "--out", str(schema))
    assert res.exit_code == 0, res.output
    assert schema.is_file()
    assert cli("data", "infer-schema", "wine", "--out", str(schema)).exit_code == 1  # no silent overwrite
    ok = cli("data", "validate", str(wine_csv), "--schema", str(schema))
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output
    bad = pd.read_csv(wine_csv)
    bad.loc[:9, "alcohol"] = 99.0
    bad = bad.drop(columns=["proline"])
    bad_path = tmp_path / "bad.csv"
    bad.to_csv(bad_path, index=False)
    res = cli("data", "validate", str(bad_path), "--schema", str(schema))
    assert res.exit_code == 1
    assert "out_of_range" in res.output and "missing_column" in res.output and "proline" in res.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("columns: [unclosed\n")
    res = cli("data", "validate", str(wine_csv), "--schema", str(broken))
    assert res.exit_code == 1 and "Traceback" not in res.output


def test_pii_and_skew(cli: Callable[..., Result], wine_csv: Path, tmp_path: Path) -> None:
    res = cli("data", "pii", str(wine_csv))
    assert res.exit_code == 0 and "contact" in res.output and "email" in res.output
    cli("data", "register", "wine", str(wine_csv))
    shifted = pd.read_csv(wine_csv)
    shifted["alcohol"] = shifted["alcohol"] + 3 * shifted["alcohol"].std()
    shifted_path = tmp_path / "shifted.csv"
    shifted.to_csv(shifted_path, index=False)
    res = cli("data", "skew", "wine", str(shifted_path))
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.strip().startswith("alcohol"))
    assert "yes" in line


def test_unknown_dataset_and_missing_file_are_clean_errors(cli: Callable[..., Result], tmp_path: Path) -> None:
    res = cli("data", "show", "nope")
    assert res.exit_code == 1 and "DATASET_NOT_FOUND" in res.output and "Traceback" not in res.output
    res = cli("data", "register", "x", str(tmp_path / "missing.csv"))
    assert res.exit_code == 1 and "does not exist" in res.output
