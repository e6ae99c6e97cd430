"""``loopml features``: apply a definitions file, list, show, materialize, get, skew — in a real project."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

T0 = pd.Timestamp("2024-01-01")

DEFINITIONS = '''
from datetime import timedelta
from loopml.features import Entity, FeatureView, Field, OnDemandFeature

driver = Entity("driver", join_keys=("driver_id",), description="a driver")
stats = FeatureView(
    "driver_stats", entities=("driver",), source="data/stats/*.parquet", timestamp="event_timestamp",
    features=(Field("rating", "float"), Field("trips", "int")), ttl=timedelta(days=TTL_DAYS),
    description="daily driver statistics",
)

def per_trip(df):
    return df["rating"] / df["trips"]

rating_per_trip = OnDemandFeature("rating_per_trip", ("driver_stats:rating", "driver_stats:trips"), per_trip, "float")
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from loopml import features, storage
    from loopml.project import init_project

    for var in ("LOOPML_PROJECT_DIR", "LOOPML_METADATA_URL", "LOOPML_ARTIFACT_ROOT", "LOOPML_USER",
                "LOOPML_S3_ENDPOINT_URL", "LOOPML_FEATURES_ONLINE_STORE", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    root = init_project(tmp_path / "proj").project_dir
    (root / "data" / "stats").mkdir(parents=True)
    pd.DataFrame({
        "driver_id": [1, 1, 2], "event_timestamp": [T0, T0 + pd.Timedelta(days=1), T0],
        "rating": [4.0, 4.5, 3.0], "trips": [4, 9, 3],
    }).to_parquet(root / "data" / "stats" / "day1.parquet", index=False)
    (root / "feature_repo.py").write_text(textwrap.dedent(DEFINITIONS).replace("TTL_DAYS", "30"))
    yield root
    features.reset()
    storage.reset_backends()


@pytest.fixture
def cli(project: Path) -> Callable[..., Result]:
    from loopml.cli.main import app

    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["-p", str(project), *args], env={"COLUMNS": "250", "NO_COLOR": "1"})

    return invoke


def test_apply_list_show(cli: Callable[..., Result], project: Path) -> None:
    res = cli("features", "apply", "feature_repo.py")
    assert res.exit_code == 0, res.output
    assert "driver_stats" in res.output and "created" in res.output and "3 new versions" in res.output
    res = cli("features", "apply", str(project / "feature_repo.py"))
    assert res.exit_code == 0 and "unchanged" in res.output and "0 new versions" in res.output
    (project / "feature_repo.py").write_text(textwrap.dedent(DEFINITIONS).replace("TTL_DAYS", "7"))
    res = cli("features", "apply", "feature_repo.py")
    assert "updated" in res.output and "1 new version" in res.output
    listed = cli("features", "list")
    assert listed.exit_code == 0
    assert "driver_stats" in listed.output and "v2" in listed.output and "rating, trips" in listed.output
    assert "7 days" in listed.output
    shown = cli("features", "show", "driver_stats")
    assert shown.exit_code == 0, shown.output
    for part in ("driver_id (BIGINT)", "data/stats/*.parquet", "event_timestamp (TIMESTAMP", "rating", "Versions", "v1"):
        assert part in shown.output
    assert "daily driver statistics" in shown.output
    od = cli("features", "show", "rating_per_trip")
    assert "def per_trip(df)" in od.output and "driver_stats:rating" in od.output
    missing = cli("features", "show", "nope")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output and "'nope'" in missing.output


def test_materialize_get_and_skew(cli: Callable[..., Result]) -> None:
    assert cli("features", "apply", "feature_repo.py").exit_code == 0
    res = cli("features", "materialize", "--end", "2024-01-05T00:00:00")
    assert res.exit_code == 0, res.output
    assert "driver_stats" in res.output and "full" in res.output and "2024-01-02 00:00:00" in res.output
    again = cli("features", "materialize", "--view", "driver_stats", "--end", "2024-01-05")
    assert again.exit_code == 0 and "incremental" in again.output
    got = cli("features", "get", "driver_stats:rating", "rating_per_trip", "--entity", "driver_id=1,2,3")
    assert got.exit_code == 0, got.output
    lines = [line.split() for line in got.output.splitlines() if line.strip()[:1].isdigit()]
    assert lines == [["1", "4.5", "0.5"], ["2", "3.0", "1.0"], ["3", "-", "-"]]
    skew = cli("features", "skew", "driver_stats", "--sample", "10")
    assert skew.exit_code == 0, skew.output
    assert "mismatched values" in skew.output
    bad = cli("features", "materialize", "--end", "yesterday")
    assert bad.exit_code == 1 and "not an ISO date/time" in bad.output
    unknown = cli("features", "get", "nope:x", "--entity", "driver_id=1")
    assert unknown.exit_code == 1 and "feature view 'nope' is not defined" in unknown.output


def test_skew_exits_1_on_mismatches(cli: Callable[..., Result], project: Path) -> None:
    from loopml.config import load_settings
    from loopml.features import get_feature_store

    assert cli("features", "apply", "feature_repo.py").exit_code == 0
    assert cli("features", "materialize", "--end", "2024-01-05").exit_code == 0
    get_feature_store(load_settings(project)).online.write_rows("driver_stats", ["1"], [{"rating": 0.0, "trips": 9}])
    res = cli("features", "skew", "driver_stats")
    assert res.exit_code == 1
    assert "driver_id=1" in res.output and "rating" in res.output


def test_apply_reports_bad_definitions(cli: Callable[..., Result], project: Path) -> None:
    (project / "broken.py").write_text("from loopml.features import Entity\nbad = Entity('driver', ())\n")
    res = cli("features", "apply", "broken.py")
    assert res.exit_code == 1 and "has no join keys" in res.output and "Traceback" not in res.output
    res = cli("features", "apply", "does_not_exist.py")
    assert res.exit_code == 1 and "does not exist" in res.output
    (project / "empty.py").write_text("x = 1\n")
    assert "defines no Entity" in cli("features", "apply", "empty.py").output
    (project / "crash.py").write_text("raise RuntimeError('boom')\n")
    assert "failed to import: RuntimeError: boom" in cli("features", "apply", "crash.py").output
