"""Export a deployment as a container image recipe and Kubernetes manifests.

:func:`export` writes, for one deployment::

    Dockerfile            python slim image with loopml and the models' pinned libraries,
                          running `loopml serve --deployment NAME`
    k8s/deployment.yaml   apps/v1 Deployment: probes on /v2/health/ready and /v2/health/live,
                          resources, settings from the Secret NAME-loopml
    k8s/service.yaml      ClusterIP Service on the serving port
    k8s/hpa.yaml          autoscaling/v2 HorizontalPodAutoscaler on CPU utilisation

The image does not contain the models: replicas read the deployment and the
model files from the shared metadata store and artifact store at run time,
so a canary, a switch or a rollback needs no rebuild. Only a model version
that needs other library versions does. Nothing secret is written: the
store URLs and credentials come from a Kubernetes Secret the operator
creates (see ``docs/serving.md``).

Manifests are built as dicts and dumped with PyYAML, so every value is
quoted correctly whatever the deployment is called.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml

from loopml import __version__
from loopml.config import Settings
from loopml.errors import InvalidInputError
from loopml.registry import get_registry
from loopml.serving.deployments import Deployment

logger = logging.getLogger(__name__)

__all__ = ["HEALTH_LIVE", "HEALTH_READY", "export", "k8s_name", "secret_name"]

HEALTH_READY = "/v2/health/ready"
HEALTH_LIVE = "/v2/health/live"
DEFAULT_PYTHON = "3.11"
#: settings a replica cannot start without; the Secret must hold them (other keys pass through as env)
REQUIRED_ENV = ("LOOPML_METADATA_URL", "LOOPML_ARTIFACT_ROOT")

_MI = 1024 * 1024
_BASE_MEMORY = 512 * _MI  # interpreter, loopml, pandas, the server
_DIST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DIST_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_PYTHON = re.compile(r"^(\d+)\.(\d+)")
_IMAGE = re.compile(r"^\S+$")


def k8s_name(name: str) -> str:
    """``name`` as a Kubernetes object name (an RFC 1035 label: lowercase letters, digits, '-').

    ``Iris_API`` becomes ``iris-api``; a name starting with a digit gets a ``loopml-`` prefix.
    """
    k = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")
    if not k or not k[0].isalpha():
        k = f"loopml-{k}"
    return k[:63].rstrip("-")


def secret_name(name: str) -> str:
    """The Secret that holds the settings of deployment ``name``'s replicas: ``<k8s name>-loopml``."""
    return f"{k8s_name(name)}-loopml"


def _version_key(v: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+-]", v))


def _check_int(what: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{what} {value!r} is invalid: use a whole number from {low} to {high}",
                                **{what.replace(" ", "_"): repr(value)})
    return value


class _Requirements:
    """Library pins of every model the deployment loads, merged."""

    def __init__(self, deployment: Deployment, settings: Settings | None) -> None:
        registry = get_registry(settings)
        self.pins: dict[str, str] = {}
        self.notes: list[str] = []
        self.python = DEFAULT_PYTHON
        self.model_bytes = 0
        wanted: dict[str, dict[str, list[str]]] = {}
        pythons: set[str] = set()
        for v in deployment.variants:
            mv = registry.get_version(v.model, v.version)
            self.model_bytes += mv.size
            for dist, version in sorted(mv.requirements.items()):
                if dist == "python":
                    m = _PYTHON.match(str(version))
                    if m:
                        pythons.add(f"{m.group(1)}.{m.group(2)}")
                    continue
                if not _DIST.match(dist) or not _DIST_VERSION.match(str(version)):
                    self.notes.append(f"skipped requirement {dist!r}=={version!r} of {v.uri}: not a package pin")
                    continue
                wanted.setdefault(dist, {}).setdefault(str(version), []).append(v.uri)
        for dist, versions in sorted(wanted.items()):
            best = max(versions, key=_version_key)
            self.pins[dist] = best
            if len(versions) > 1:
                seen = "; ".join(f"{ver} by {', '.join(uris)}" for ver, uris in sorted(versions.items()))
                self.notes.append(f"{dist}: models were saved with different versions ({seen}); pinned {best}")
        if len(pythons) == 1 and _version_key(next(iter(pythons))) >= _version_key(DEFAULT_PYTHON):
            self.python = next(iter(pythons))
        elif pythons:
            self.notes.append(f"models were saved with Python {', '.join(sorted(pythons))}; "
                              f"the image uses Python {self.python}")

    @property
    def memory_request(self) -> str:
        """Base memory plus twice the stored size of the models (deserialised models are larger)."""
        need = _BASE_MEMORY + 2 * self.model_bytes
        return f"{-(-need // (64 * _MI)) * 64}Mi"

    @property
    def memory_limit(self) -> str:
        return f"{int(self.memory_request[:-2]) * 2}Mi"


def _dockerfile(dep: Deployment, req: _Requirements, *, port: int) -> str:
    name = dep.name
    secret = secret_name(name)
    pins = [f"{dist}=={version}" for dist, version in req.pins.items()]
    install = " \\\n        ".join(f'"{p}"' for p in ['${LOOPML_SPEC}', *pins])
    notes = "".join(f"# NOTE: {n}\n" for n in req.notes)
    cmd = ", ".join(f'"{a}"' for a in ["loopml", "serve", "--deployment", name, "--host", "0.0.0.0", "--port", str(port)])
    return f"""\
# syntax=docker/dockerfile:1
# Serves the loopml deployment {name!r}; generated by `loopml deploy export` at revision {dep.revision}
# ({dep.summary()}).
#
# The image holds loopml and the libraries the models were saved with, not the models: at start and
# whenever the deployment changes, the server reads its configuration from the metadata store and the
# model files from the artifact store. Canary, switch, promote and rollback need no new image; export
# again when a new model version needs other library versions.
#
#   docker build -t IMAGE .
#   docker run -p {port}:{port} -e LOOPML_METADATA_URL=... -e LOOPML_ARTIFACT_ROOT=... IMAGE
#
# Configuration comes from the environment at run time (in Kubernetes from the Secret {secret!r});
# never bake it into the image:
#   LOOPML_METADATA_URL      metadata database of the project, e.g. postgresql+psycopg://user:pass@db:5432/loopml
#   LOOPML_ARTIFACT_ROOT     artifact store holding the model files, e.g. s3://bucket/loopml
#   LOOPML_S3_ENDPOINT_URL   S3-compatible endpoint (MinIO, Ceph, ...) when not AWS S3
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION   credentials of the artifact store
#   other LOOPML_* settings of the server (API keys are not settings: they live in the metadata store)
{notes}
ARG PYTHON_VERSION={req.python}
FROM python:${{PYTHON_VERSION}}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1

# loopml with the PostgreSQL and S3 drivers; override to install from a wheel or a git URL
ARG LOOPML_SPEC="loopml[postgres,s3]=={__version__}"
RUN pip install \\
        {install}

RUN useradd --create-home --uid 10001 loopml
USER 10001
WORKDIR /home/loopml

EXPOSE {port}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{HEALTH_LIVE}', timeout=2)"]
CMD [{cmd}]
"""


def _labels(dep: Deployment) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "loopml-serve",
        "app.kubernetes.io/instance": k8s_name(dep.name),
        "app.kubernetes.io/component": "serving",
        "app.kubernetes.io/part-of": "loopml",
        "app.kubernetes.io/managed-by": "loopml",
    }


def _selector(dep: Deployment) -> dict[str, str]:
    return {"app.kubernetes.io/name": "loopml-serve", "app.kubernetes.io/instance": k8s_name(dep.name)}


def _deployment_manifest(dep: Deployment, req: _Requirements, *, image: str, replicas: int,
                         port: int) -> dict[str, Any]:
    secret = secret_name(dep.name)
    env: list[dict[str, Any]] = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}} for var in REQUIRED_ENV
    ]
    container: dict[str, Any] = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["loopml", "serve", "--deployment", dep.name, "--host", "0.0.0.0", "--port", str(port)],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        # every other key of the Secret (S3 endpoint and credentials, LOOPML_* settings) as environment
        "envFrom": [{"secretRef": {"name": secret, "optional": False}}],
        "startupProbe": {
            # loading the models can take a while; liveness starts counting once this passed
            "httpGet": {"path": HEALTH_LIVE, "port": "http"},
            "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 60,
        },
        "readinessProbe": {
            "httpGet": {"path": HEALTH_READY, "port": "http"},
            "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3, "successThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": HEALTH_LIVE, "port": "http"},
            "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "500m", "memory": req.memory_request},
            "limits": {"cpu": "2", "memory": req.memory_limit},
        },
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 10001},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": k8s_name(dep.name),
            "labels": _labels(dep),
            "annotations": {"loopml.dev/deployment": dep.name, "loopml.dev/exported-revision": str(dep.revision)},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _selector(dep)},
            # a new pod must be ready before an old one goes: no capacity dip during a rollout
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": _labels(dep),
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                    "prometheus.io/path": "/metrics"},
                },
                "spec": {"terminationGracePeriodSeconds": 30, "containers": [container]},
            },
        },
    }


def _service_manifest(dep: Deployment, *, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": k8s_name(dep.name), "labels": _labels(dep),
                     "annotations": {"loopml.dev/deployment": dep.name}},
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(dep),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _hpa_manifest(dep: Deployment, *, replicas: int, max_replicas: int, cpu_target: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": k8s_name(dep.name), "labels": _labels(dep),
                     "annotations": {"loopml.dev/deployment": dep.name}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": k8s_name(dep.name)},
            "minReplicas": replicas,
            "maxReplicas": max_replicas,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_target}},
            }],
        },
    }


def _dump(doc: dict[str, Any], dep: Deployment) -> str:
    head = (f"# loopml deployment {dep.name!r}: generated by `loopml deploy export` at revision {dep.revision}.\n"
            f"# Apply with: kubectl apply -f k8s/ (after creating the Secret {secret_name(dep.name)!r}).\n")
    return head + str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


def export(
    deployment: Deployment,
    out_dir: str | Path,
    *,
    image: str = "loopml-serve:latest",
    replicas: int = 2,
    port: int = 8080,
    max_replicas: int = 10,
    cpu_target: int = 70,
    settings: Settings | None = None,
) -> list[Path]:
    """Write a Dockerfile and Kubernetes manifests that serve ``deployment``.

    Existing files of the same names in ``out_dir`` are replaced; nothing else there is touched.

    Args:
        deployment: the deployment to serve (its variants' requirements are pinned in the image).
        out_dir: folder to write to (created if missing).
        image: image reference the Kubernetes Deployment runs (build and push it from the Dockerfile).
        replicas: replicas to start with, and the autoscaler's minimum.
        port: port the server listens on and the Service exposes.
        max_replicas: the autoscaler's maximum.
        cpu_target: average CPU utilisation (percent of the request) the autoscaler aims at.
        settings: project whose registry holds the deployment's models (default: the current one).

    Returns:
        The written files: Dockerfile, k8s/deployment.yaml, k8s/service.yaml, k8s/hpa.yaml.

    Raises:
        InvalidInputError: a bad image, port, replica bound or CPU target.
        NotFoundError: a model version of the deployment is no longer in the registry.
    """
    if not isinstance(image, str) or not _IMAGE.match(image):
        raise InvalidInputError(f"image {image!r} is invalid: give an image reference such as registry.example.com/iris:1")
    replicas = _check_int("replicas", replicas, 1, 1000)
    max_replicas = _check_int("max replicas", max_replicas, replicas, 1000)
    port = _check_int("port", port, 1, 65535)
    cpu_target = _check_int("cpu target", cpu_target, 1, 100)
    req = _Requirements(deployment, settings)
    for note in req.notes:
        logger.warning("export of %s: %s", deployment.name, note, extra={"deployment": deployment.name})

    out = Path(out_dir)
    (out / "k8s").mkdir(parents=True, exist_ok=True)
    files = {
        out / "Dockerfile": _dockerfile(deployment, req, port=port),
        out / "k8s" / "deployment.yaml": _dump(
            _deployment_manifest(deployment, req, image=image, replicas=replicas, port=port), deployment),
        out / "k8s" / "service.yaml": _dump(_service_manifest(deployment, port=port), deployment),
        out / "k8s" / "hpa.yaml": _dump(
            _hpa_manifest(deployment, replicas=replicas, max_replicas=max_replicas, cpu_target=cpu_target), deployment),
    }
    for path, content in files.items():
        path.write_text(content, encoding="utf-8")
    return list(files)
