"""``loopml models list / show / alias / rollback`` against a real embedded registry."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from typer.testing import Result

from loopml import registry, tracking
from loopml.config import Settings

Cli = Callable[..., Result]


@pytest.fixture
def wine(project_settings: Settings) -> str:
    """Model ``wine`` with versions 1 and 2 (sklearn), ``champion`` moved from 1 to 2; returns the run id of v2."""
    from sklearn.dummy import DummyClassifier

    X = pd.DataFrame({"alcohol": [13.0, 12.1, 14.2, 11.9], "proline": [1000, 500, 1200, 450]})
    y = [0, 1, 0, 1]
    run_id = ""
    for strategy in ("most_frequent", "stratified"):
        with tracking.start_run("wine", settings=project_settings) as run:
            model = DummyClassifier(strategy=strategy, random_state=0).fit(X, y)
            mv = registry.register(model, "wine", input_example=X.head(2), run_id=run.id,
                                   description="toy", settings=project_settings)
            registry.set_alias("wine", "champion", mv.version, settings=project_settings)
            run_id = run.id
    return run_id


def assert_clean_error(res: Result, code: str) -> None:
    assert res.exit_code == 1, res.output
    assert code in res.output
    assert "Traceback" not in res.output


def test_list_empty(cli: Cli) -> None:
    res = cli("models", "list")
    assert res.exit_code == 0, res.output
    assert "No registered models" in res.output


def test_list(cli: Cli, wine: str) -> None:
    res = cli("models", "list")
    assert res.exit_code == 0, res.output
    line = next(line for line in res.output.splitlines() if line.startswith("wine"))
    assert "v2" in line and "@champion->v2" in line
    assert "1 model" in res.output


def test_show(cli: Cli, wine: str) -> None:
    res = cli("models", "show", "wine")
    assert res.exit_code == 0, res.output
    out = res.output
    lines = out.splitlines()
    v2 = next(line for line in lines if line.strip().startswith("v2 "))
    v1 = next(line for line in lines if line.strip().startswith("v1 "))
    assert "sklearn" in v2 and wine[:8] in v2 and "@champion" in v2
    assert "@champion" not in v1
    assert out.index(v2) < out.index(v1)  # newest first
    # signature of the latest version
    assert "Signature" in out
    assert any(line.split()[:3] == ["input", "alcohol", "float"] for line in lines)
    assert any(line.split()[:2] == ["proline", "integer"] for line in lines)
    # alias history, newest first
    assert "Alias history" in out
    assert "v1 -> v2" in out and "- -> v1" in out
    assert out.index("v1 -> v2") < out.index("- -> v1")


def test_alias_and_rollback(cli: Cli, wine: str, project_settings: Settings) -> None:
    res = cli("models", "rollback", "wine", "--alias", "champion")
    assert res.exit_code == 0, res.output
    assert "wine@champion" in res.output and "v2 -> v1" in res.output
    assert registry.get_model("wine", settings=project_settings).aliases == {"champion": 1}

    res = cli("models", "rollback", "wine")  # default alias: champion; nothing before v1
    assert_clean_error(res, "CONFLICT")

    res = cli("models", "alias", "wine", "staging", "1")
    assert res.exit_code == 0, res.output
    assert "wine@staging" in res.output and "(unset) -> v1" in res.output
    res = cli("models", "alias", "wine", "champion", "2")
    assert res.exit_code == 0, res.output
    assert "v1 -> v2" in res.output
    assert registry.get_model("wine", settings=project_settings).aliases == {"champion": 2, "staging": 1}


def test_errors_are_clean(cli: Cli, wine: str) -> None:
    assert_clean_error(cli("models", "show", "nope"), "MODEL_NOT_FOUND")
    assert_clean_error(cli("models", "alias", "wine", "champion", "9"), "MODEL_VERSION_NOT_FOUND")
    assert_clean_error(cli("models", "rollback", "wine", "--alias", "ghost"), "ALIAS_NOT_FOUND")
    assert cli("models", "alias", "wine", "champion", "0").exit_code == 2  # usage: version >= 1
