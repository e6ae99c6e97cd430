"""``loopml deploy ...`` against a real embedded project with registered models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from loopml import registry
from loopml.cli import deploy, main
from loopml.config import Settings
from loopml.serving.deployments import DEPLOYMENT_CHANGED, get_deployments
from loopml.storage.events import read_events

# main.py registers the group as `loopml deploy`; until it does, mount it here (once)
if not any(g.name == "deploy" for g in main.app.registered_groups):
    main.app.add_typer(deploy.app, name="deploy")

Cli = Callable[..., Result]


@pytest.fixture
def iris(project_settings: Settings) -> Settings:
    """Model ``iris`` versions 1-3 in the project."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    for c in (1.0, 0.3, 0.1):
        registry.register(LogisticRegression(C=c, max_iter=500).fit(X, y), "iris", input_example=X.head(3),
                          settings=project_settings)
    return project_settings


def ok(res: Result) -> str:
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res.output


def clean_error(res: Result, code: str) -> str:
    assert res.exit_code == 1, res.output
    assert code in res.output
    assert "Traceback" not in res.output
    return res.output


def row(out: str, first: str) -> list[str]:
    """The words of the table line starting with ``first``."""
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [first])


def test_create_list_show(cli: Cli, iris: Settings) -> None:
    out = ok(cli("deploy", "list"))
    assert "No deployments" in out and "loopml deploy create" in out
    out = ok(cli("deploy", "create", "iris-api", "models:/iris/latest"))
    assert "iris-api created: revision 1 (single)" in out
    assert row(out, "primary") == ["primary", "iris", "v3", "live", "100%"]
    out = ok(cli("deploy", "list"))
    assert row(out, "iris-api")[:4] == ["iris-api", "single", "1", "primary=iris/3"]
    assert "1 deployment" in out
    out = ok(cli("deploy", "show", "iris-api"))
    assert "iris-api  revision 1  single" in out
    assert row(out, "primary") == ["primary", "iris", "v3", "live", "100%"]
    assert "create" in row(out, "1")


def test_canary_weight_promote_rollback(cli: Cli, iris: Settings) -> None:
    ok(cli("deploy", "create", "api", "models:/iris/1"))
    out = ok(cli("deploy", "canary", "api", "models:/iris/2", "--weight", "10", "--sticky-header", "X-User-Id"))
    assert "api canary: revision 1 -> 2 (canary)" in out
    assert row(out, "primary")[-1] == "90%" and row(out, "canary")[-1] == "10%"
    assert "same X-User-Id header" in out
    out = ok(cli("deploy", "weight", "api", "25"))
    assert row(out, "primary")[-1] == "75%" and row(out, "canary")[-1] == "25%"
    out = ok(cli("deploy", "weight", "api", "25"))
    assert "unchanged (already so at revision 3)" in out
    out = ok(cli("deploy", "promote", "api"))
    assert "revision 3 -> 4 (single)" in out and row(out, "primary")[:3] == ["primary", "iris", "v2"]
    out = ok(cli("deploy", "rollback", "api"))
    assert "rolled back: revision 4 -> 5 (canary)" in out and row(out, "canary")[-1] == "25%"
    out = ok(cli("deploy", "rollback", "api", "--steps", "2"))
    assert "revision 5 -> 6 (single)" in out and row(out, "primary")[:3] == ["primary", "iris", "v1"]
    clean_error(cli("deploy", "rollback", "api"), "CONFLICT")
    out = ok(cli("deploy", "history", "api"))
    revs = [int(line.split()[0]) for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert revs == [6, 5, 4, 3, 2, 1]  # newest first
    assert "rollback" in row(out, "6") and "canary" in row(out, "2")
    out = ok(cli("deploy", "history", "api", "--limit", "2"))
    assert row(out, "6") and not any(line.split()[:1] == ["4"] for line in out.splitlines())
    actions = [e.payload["action"] for e in read_events(get_deployments(iris).backend.metadata, kind=DEPLOYMENT_CHANGED)]
    assert actions == ["create", "canary", "weight", "promote", "rollback", "rollback"]


def test_shadow_and_remove_challenger(cli: Cli, iris: Settings) -> None:
    ok(cli("deploy", "create", "api", "models:/iris/1"))
    out = ok(cli("deploy", "shadow", "api", "models:/iris/3"))
    assert row(out, "shadow") == ["shadow", "iris", "v3", "shadow", "copy"]
    out = ok(cli("deploy", "remove-challenger", "api"))
    assert "(single)" in out and not any(line.split()[:1] == ["shadow"] for line in out.splitlines())
    clean_error(cli("deploy", "remove-challenger", "api"), "CONFLICT")


def test_blue_green(cli: Cli, iris: Settings) -> None:
    out = ok(cli("deploy", "create", "bg", "models:/iris/1", "--strategy", "blue-green"))
    assert row(out, "blue") == ["blue", "iris", "v1", "live", "100%"]
    assert "stage bg" in clean_error(cli("deploy", "switch", "bg"), "CONFLICT")
    out = ok(cli("deploy", "stage", "bg", "models:/iris/2"))
    assert row(out, "green") == ["green", "iris", "v2", "standby", "0%"]
    out = ok(cli("deploy", "switch", "bg"))
    assert row(out, "blue")[3:] == ["standby", "0%"] and row(out, "green")[3:] == ["live", "100%"]
    ok(cli("deploy", "create", "single", "models:/iris/1"))
    err = clean_error(cli("deploy", "switch", "single"), "CONFLICT")
    assert "blue-green deployments only" in err


def test_bad_input_is_a_clean_error(cli: Cli, iris: Settings) -> None:
    assert "'nope'" in clean_error(cli("deploy", "create", "api", "models:/nope/1"), "MODEL_NOT_FOUND")
    clean_error(cli("deploy", "create", "api", "models:/iris/7"), "MODEL_VERSION_NOT_FOUND")
    clean_error(cli("deploy", "create", "bad name", "models:/iris/1"), "INVALID_INPUT")
    clean_error(cli("deploy", "create", "api", "iris"), "INVALID_URI")
    clean_error(cli("deploy", "create", "api", "models:/iris/1", "--strategy", "rolling"), "INVALID_INPUT")
    ok(cli("deploy", "create", "api", "models:/iris/1"))
    clean_error(cli("deploy", "create", "api", "models:/iris/1"), "CONFLICT")
    for w in ("0", "100", "150", "nan"):
        assert "between 0 and 100" in clean_error(cli("deploy", "canary", "api", "models:/iris/2", "--weight", w),
                                                  "INVALID_INPUT")
    assert "known deployments: api" in clean_error(cli("deploy", "show", "ghost"), "NOT_FOUND")
    assert cli("deploy", "canary", "api", "models:/iris/2").exit_code == 2  # usage: --weight is required
    assert get_deployments(iris).revision("api") == 1


def test_json_output(cli: Cli, iris: Settings) -> None:
    ok(cli("deploy", "create", "api", "models:/iris/1"))
    ok(cli("deploy", "canary", "api", "models:/iris/2", "-w", "5"))
    [d] = json.loads(ok(cli("deploy", "list", "--json")))
    assert (d["name"], d["revision"], d["strategy"]) == ("api", 2, "canary")
    assert [(v["uri"], v["weight"]) for v in d["variants"]] == [("models:/iris/1", 95.0), ("models:/iris/2", 5.0)]
    shown = json.loads(ok(cli("deploy", "show", "api", "--json")))
    assert [h["action"] for h in shown["history"]] == ["create", "canary"]


def test_delete_asks_unless_yes(cli: Cli, iris: Settings, project: Path) -> None:
    ok(cli("deploy", "create", "api", "models:/iris/1"))
    runner = CliRunner()
    res = runner.invoke(main.app, ["-p", str(project), "deploy", "delete", "api"], input="n\n",
                        env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert res.exit_code == 1 and "Aborted" in res.output
    assert get_deployments(iris).revision("api") == 1
    out = ok(cli("deploy", "delete", "api", "--yes"))
    assert "Deleted deployment api" in out
    clean_error(cli("deploy", "show", "api"), "NOT_FOUND")


def test_export(cli: Cli, iris: Settings, tmp_path: Path) -> None:
    ok(cli("deploy", "create", "api", "models:/iris/1"))
    out_dir = tmp_path / "export"
    out = ok(cli("deploy", "export", "api", "--out", str(out_dir), "--image", "reg.example.com/api:1",
                 "--replicas", "3", "--port", "9000", "--max-replicas", "6", "--cpu-target", "50"))
    assert "kubectl apply -f" in out and "kubectl create secret generic api-loopml" in out
    assert (out_dir / "Dockerfile").is_file()
    dep = yaml.safe_load((out_dir / "k8s" / "deployment.yaml").read_text())
    [c] = dep["spec"]["template"]["spec"]["containers"]
    assert (dep["spec"]["replicas"], c["image"], c["ports"][0]["containerPort"]) == (3, "reg.example.com/api:1", 9000)
    hpa = yaml.safe_load((out_dir / "k8s" / "hpa.yaml").read_text())
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    clean_error(cli("deploy", "export", "api", "--out", str(out_dir), "--port", "0"), "INVALID_INPUT")
