"""Fixtures for the command-line tests: a real embedded project in ``tmp_path`` and a runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from loopml.config import Settings, load_settings


def _reset() -> None:
    from loopml import data, registry, storage
    from loopml.tracking import fluent

    fluent.reset()
    registry.reset()
    data.reset()
    storage.reset_backends()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No LOOPML_* variables from the caller's shell; cached services and backends dropped afterwards."""
    for var in ("LOOPML_PROJECT_DIR", "LOOPML_METADATA_URL", "LOOPML_ARTIFACT_ROOT", "LOOPML_USER",
                "LOOPML_S3_ENDPOINT_URL", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    yield
    _reset()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An initialised project folder (loopml.toml, migrated store)."""
    from loopml.project import init_project

    return init_project(tmp_path / "proj").project_dir


@pytest.fixture
def project_settings(project: Path) -> Settings:
    return load_settings(project)


@pytest.fixture
def cli(project: Path) -> Callable[..., Result]:
    """Run ``loopml -p <project> ARGS...`` in-process; output is 250 columns wide and colourless."""
    from loopml.cli.main import app

    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["-p", str(project), *args], env={"COLUMNS": "250", "NO_COLOR": "1"})

    return invoke
