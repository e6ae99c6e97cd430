"""Export of a deployment: the Dockerfile and Kubernetes manifests, parsed back and checked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

import loopml
from loopml import registry
from loopml.config import Settings
from loopml.errors import InvalidInputError
from loopml.serving.deployments import Deployment, get_deployments
from loopml.serving.export import export, k8s_name, secret_name
from loopml.storage import _schema as t


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, LogisticRegression, LogisticRegression]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, LogisticRegression(max_iter=500).fit(X, y), LogisticRegression(C=0.1, max_iter=500).fit(X, y)


@pytest.fixture
def canary(settings: Settings, iris) -> Deployment:
    """Deployment ``Iris_API``: iris v1 primary at 90%, v2 canary at 10%."""
    X, a, b = iris
    registry.register(a, "iris", input_example=X.head(3), settings=settings)
    registry.register(b, "iris", input_example=X.head(3), settings=settings)
    svc = get_deployments(settings)
    svc.create("Iris_API", "models:/iris/1")
    return svc.canary("Iris_API", "models:/iris/2", weight=10)


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word, rest.strip()))
    return out


def test_export_writes_four_files_that_parse(canary: Deployment, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "out"
    files = export(canary, out, image="registry.example.com/iris:7", replicas=3, port=9000, max_replicas=12,
                   cpu_target=60, settings=settings)
    assert files == [out / "Dockerfile", out / "k8s" / "deployment.yaml", out / "k8s" / "service.yaml",
                     out / "k8s" / "hpa.yaml"]
    assert all(f.is_file() for f in files)

    dep = load(out / "k8s" / "deployment.yaml")
    assert (dep["apiVersion"], dep["kind"], dep["metadata"]["name"]) == ("apps/v1", "Deployment", "iris-api")
    assert dep["metadata"]["annotations"]["loopml.dev/deployment"] == "Iris_API"
    spec = dep["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    [c] = spec["template"]["spec"]["containers"]
    assert c["image"] == "registry.example.com/iris:7"
    assert c["command"] == ["loopml", "serve", "--deployment", "Iris_API", "--host", "0.0.0.0", "--port", "9000"]
    assert c["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["cpu"]
    assert re.fullmatch(r"\d+Mi", c["resources"]["requests"]["memory"])
    assert int(c["resources"]["limits"]["memory"][:-2]) > int(c["resources"]["requests"]["memory"][:-2])
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert env == {
        "LOOPML_METADATA_URL": {"name": "iris-api-loopml", "key": "LOOPML_METADATA_URL"},
        "LOOPML_ARTIFACT_ROOT": {"name": "iris-api-loopml", "key": "LOOPML_ARTIFACT_ROOT"},
    }
    assert c["envFrom"] == [{"secretRef": {"name": "iris-api-loopml", "optional": False}}]

    svc = load(out / "k8s" / "service.yaml")
    assert (svc["apiVersion"], svc["kind"], svc["metadata"]["name"]) == ("v1", "Service", "iris-api")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert svc["spec"]["ports"] == [{"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}]

    hpa = load(out / "k8s" / "hpa.yaml")
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris-api"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]


def test_dockerfile_pins_the_models_libraries_and_bakes_no_settings(canary: Deployment, settings: Settings,
                                                                    tmp_path: Path) -> None:
    [dockerfile, *manifests] = export(canary, tmp_path, settings=settings)
    text = dockerfile.read_text()
    steps = dockerfile_instructions(text)
    words = [w for w, _ in steps]
    assert words.index("ARG") < words.index("FROM")
    assert dict(steps)["FROM"] == "python:${PYTHON_VERSION}-slim"
    assert "ARG PYTHON_VERSION=3.11" in text
    run = next(a for w, a in steps if w == "RUN" and "pip install" in a)
    reqs = registry.get_version("iris", 1, settings=settings).requirements
    assert reqs["scikit-learn"]
    for dist in ("scikit-learn", "numpy", "pandas", "cloudpickle"):
        assert f'"{dist}=={reqs[dist]}"' in run
    assert f'ARG LOOPML_SPEC="loopml[postgres,s3]=={loopml.__version__}"' in text
    assert "${LOOPML_SPEC}" in run
    cmd = json.loads(dict(steps)["CMD"])
    assert cmd == ["loopml", "serve", "--deployment", "Iris_API", "--host", "0.0.0.0", "--port", "8080"]
    assert dict(steps)["EXPOSE"] == "8080"
    assert dict(steps)["USER"] == "10001"
    # the store settings are documented for run time, never set in the image
    assert "LOOPML_METADATA_URL" in text and "LOOPML_ARTIFACT_ROOT" in text
    assert not any(w == "ENV" and "LOOPML_" in a for w, a in steps)
    for f in [dockerfile, *manifests]:
        body = f.read_text()
        assert settings.metadata_url not in body and settings.artifact_root not in body
    # defaults
    dep = load(tmp_path / "k8s" / "deployment.yaml")
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "loopml-serve:latest"
    hpa = load(tmp_path / "k8s" / "hpa.yaml")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


def test_different_library_versions_are_pinned_to_the_newest_with_a_note(canary: Deployment, settings: Settings,
                                                                         tmp_path: Path) -> None:
    store = registry.get_registry(settings).backend.metadata
    mv = t.model_versions.c
    with store.write() as conn:  # as if version 1 had been saved by an older scikit-learn on Python 3.10
        reqs = dict(conn.execute(sa.select(mv.requirements).where(mv.name == "iris", mv.version == 1)).scalar_one())
        reqs.update({"scikit-learn": "1.0.2", "python": "3.10.4", "evil": "1; rm -rf /"})
        conn.execute(t.model_versions.update().where(mv.name == "iris", mv.version == 1).values(requirements=reqs))
    current = registry.get_version("iris", 2, settings=settings).requirements["scikit-learn"]
    text = export(canary, tmp_path, settings=settings)[0].read_text()
    assert f'"scikit-learn=={current}"' in text and "scikit-learn==1.0.2" not in text
    assert "# NOTE: scikit-learn: models were saved with different versions" in text
    assert "# NOTE: models were saved with Python 3.10, 3.11" in text and "ARG PYTHON_VERSION=3.11" in text
    assert not any("rm -rf" in a for w, a in dockerfile_instructions(text) if w == "RUN")


def test_memory_covers_every_loaded_model_and_names_fit_kubernetes(settings: Settings, iris, tmp_path: Path) -> None:
    X, a, b = iris
    registry.register(a, "iris", input_example=X.head(3), settings=settings)
    registry.register(b, "iris", input_example=X.head(3), settings=settings)
    svc = get_deployments(settings)
    svc.create("9lives", "models:/iris/1", strategy="blue-green")

    def memory() -> int:
        manifest = load(tmp_path / "k8s" / "deployment.yaml")
        assert manifest["metadata"]["name"] == "loopml-9lives"
        [c] = manifest["spec"]["template"]["spec"]["containers"]
        assert c["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "loopml-9lives-loopml"
        return int(c["resources"]["requests"]["memory"][:-2])

    export(svc.get("9lives"), tmp_path, settings=settings)
    one = memory()
    assert one >= 512
    # a staged (standby) model is loaded too, so it counts
    big = KNeighborsClassifier(n_neighbors=1).fit(pd.concat([X] * 5000), [0, 1, 2] * 250_000)  # keeps its data: ~36 MB
    registry.register(big, "iris", settings=settings)
    sized = registry.get_version("iris", 3, settings=settings).size
    assert sized > 32 * 1024 * 1024
    export(svc.stage("9lives", "models:/iris/3"), tmp_path, settings=settings)
    mib = 1024 * 1024
    need = 512 * mib + 2 * (registry.get_version("iris", 1, settings=settings).size + sized)
    assert memory() == -(-need // (64 * mib)) * 64 > one  # base + twice the stored models, in 64 MiB steps


def test_names_for_kubernetes() -> None:
    assert k8s_name("Iris_API") == "iris-api"
    assert k8s_name("9lives") == "loopml-9lives"
    assert k8s_name("_x_") == "x"
    long = k8s_name("a" * 64)
    assert len(long) == 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", long)
    assert secret_name("Iris_API") == "iris-api-loopml"


@pytest.mark.parametrize("kwargs, match", [
    ({"replicas": 0}, "replicas 0"),
    ({"replicas": 3, "max_replicas": 2}, "max replicas 2"),
    ({"port": 70000}, "port 70000"),
    ({"port": "8080"}, "port '8080'"),
    ({"cpu_target": 0}, "cpu target 0"),
    ({"cpu_target": 101}, "cpu target 101"),
    ({"image": "my image"}, "image 'my image'"),
    ({"image": ""}, "image ''"),
])
def test_bad_export_options(canary: Deployment, settings: Settings, tmp_path: Path, kwargs: dict[str, Any],
                            match: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(match)):
        export(canary, tmp_path / "out", settings=settings, **kwargs)
    assert not (tmp_path / "out").exists()
