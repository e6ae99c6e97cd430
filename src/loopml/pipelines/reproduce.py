"""Reproducing a registered model: re-run the pipeline run that produced it and compare.

The producing run is found from the step whose output is the model version
(a step that returns a :class:`~loopml.registry.ModelVersion` records its
URI). The pipeline is run again with the recorded parameters and seed, with
the cache off, and the new model file's sha256 is compared with the
original's. scikit-learn models trained with a seed reproduce bit for bit;
the report also says whether the code commit matches the recorded one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from loopml.config import Settings
from loopml.errors import NotFoundError
from loopml.pipelines.pipeline import PIPELINES, get_pipelines
from loopml.storage import _schema as t

__all__ = ["Reproduction", "find_producer", "reproduce"]


@dataclass(frozen=True)
class Reproduction:
    original: str  # models:/name/N
    original_sha256: str
    reproduced: str | None  # the new version's URI
    reproduced_sha256: str | None
    match: bool
    pipeline_run: str  # the original run
    new_run: str
    recorded_commit: str | None
    current_commit: str | None
    detail: str

    @property
    def commit_matches(self) -> bool:
        return self.recorded_commit is not None and self.recorded_commit == self.current_commit


def find_producer(uri: str, *, settings: Settings | None = None) -> tuple[str, str]:
    """(pipeline run id, step name) of the step that output the registered version ``uri``.

    Raises:
        NotFoundError: no pipeline step produced it.
    """
    svc = get_pipelines(settings)
    s = t.step_runs.c
    with svc.backend.metadata.read() as conn:
        rows = conn.execute(
            sa.select(s.run_id, s.step, s.outputs).where(s.status == "done").order_by(s.id.desc())
        ).all()
    for run_id, step, outputs in rows:
        if any(isinstance(o, dict) and o.get("uri") == uri for o in (outputs or {}).values()):
            return run_id, step
    raise NotFoundError(
        f"{uri} was not produced by a pipeline step (only versions returned by a step can be reproduced); "
        "register models from a pipeline step that returns the ModelVersion",
        uri=uri,
    )


def reproduce(uri: str, *, settings: Settings | None = None) -> Reproduction:
    """Re-run the pipeline run that produced model version ``uri`` (cache off) and compare content hashes.

    Raises:
        NotFoundError: the version, its producing run, or its pipeline is unknown here.
    """
    from loopml import registry
    from loopml.tracking._env import git_state

    original = registry.get_registry(settings).resolve(uri)
    run_id, step = find_producer(original.uri, settings=settings)
    svc = get_pipelines(settings)
    old = svc.get_run(run_id)
    pipe = PIPELINES.get(old.pipeline)
    if pipe is None:
        raise NotFoundError(f"pipeline {old.pipeline!r} is not defined in this process; list its module in loopml.toml")
    new = pipe.run(settings=settings, cache=False, seed=old.seed, trigger=f"reproduce:{original.uri}", **old.params)
    current_commit = git_state(str(svc.backend.settings.project_dir))[0]
    out: dict[str, Any] = next((s.outputs for s in new.steps if s.step == step), {}) or {}
    new_uri = next((o.get("uri") for o in out.values() if isinstance(o, dict) and str(o.get("uri", "")).startswith("models:/")), None)
    if new.status != "finished" or new_uri is None:
        return Reproduction(original.uri, original.sha256, None, None, False, run_id, new.id, old.git_commit,
                            current_commit, f"the re-run ended {new.status}: {new.error or 'no model version output'}")
    again = registry.get_registry(settings).resolve(new_uri)
    match = again.sha256 == original.sha256
    if match:
        detail = "bit for bit: the model files have the same sha256"
    else:
        detail = (f"the model files differ ({original.flavor} flavor); a library may train non-deterministically "
                  "(e.g. torch on some kernels, or an estimator without a fixed random_state): pass the step's "
                  "seed to every random component")
    if old.git_commit != current_commit:
        detail += f"; note the code commit differs (recorded {old.git_commit}, now {current_commit})"
    return Reproduction(original.uri, original.sha256, again.uri, again.sha256, match, run_id, new.id,
                        old.git_commit, current_commit, detail)
