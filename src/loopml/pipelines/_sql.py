"""SQL implementation of the pipeline repository, shared by SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from loopml.errors import ConflictError, NotFoundError
from loopml.pipelines.models import PipelineRun, StepRun
from loopml.storage import _schema as t
from loopml.storage.base import MetadataStore

__all__ = ["SqlPipelineRepository"]

def _step(row: Any) -> StepRun:
    m = row._mapping
    return StepRun(
        id=m["id"], run_id=m["run_id"], step=m["step"], status=m["status"], attempts=m["attempts"],
        cache_key=m["cache_key"], code_hash=m["code_hash"], input_hashes=m["input_hashes"] or {},
        params=m["params"] or {}, outputs=m["outputs"] or {}, cached_from=m["cached_from"],
        cache_miss=m["cache_miss"], started_at=m["started_at"], ended_at=m["ended_at"], logs=m["logs"],
        error=m["error"],
    )


class SqlPipelineRepository:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def create_run(self, run_id: str, row: dict[str, Any]) -> None:
        """Insert the run.

        Raises:
            ConflictError: a run with this id exists (it was started already).
        """
        with self.store.write() as conn:
            ins = self.store.insert(t.pipeline_runs).values(id=run_id, **row)
            # RETURNING, not rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING
            if conn.execute(ins.on_conflict_do_nothing(index_elements=["id"]).returning(t.pipeline_runs.c.id)).first() is None:
                raise ConflictError(f"pipeline run {run_id} was started already", run_id=run_id)

    def finish_run(self, run_id: str, status: str, ended_at: int, error: str | None) -> None:
        with self.store.write() as conn:
            conn.execute(
                t.pipeline_runs.update().where(t.pipeline_runs.c.id == run_id)
                .values(status=status, ended_at=ended_at, error=error)
            )

    def reopen_run(self, run_id: str) -> None:
        with self.store.write() as conn:
            conn.execute(
                t.pipeline_runs.update().where(t.pipeline_runs.c.id == run_id)
                .values(status="running", ended_at=None, error=None)
            )

    def save_step(self, values: dict[str, Any]) -> int:
        """Insert the step's row for its run, or update it (resume, retries): one row per (run, step)."""
        with self.store.write() as conn:
            ins = self.store.insert(t.step_runs).values(**values)
            res = conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["run_id", "step"], set_={k: v for k, v in values.items() if k not in ("run_id", "step")}
                ).returning(t.step_runs.c.id)
            )
            return int(res.scalar_one())

    def get_run(self, run_id: str) -> PipelineRun:
        r = t.pipeline_runs.c
        with self.store.read() as conn:
            row = conn.execute(sa.select(t.pipeline_runs).where(r.id == run_id)).first()
            if row is None:
                matches = list(conn.execute(sa.select(r.id).where(r.id.like(f"{run_id}%")).limit(2)).scalars()) \
                    if len(run_id) >= 4 and run_id.isalnum() else []
                if len(matches) == 1:
                    row = conn.execute(sa.select(t.pipeline_runs).where(r.id == matches[0])).first()
            if row is None:
                raise NotFoundError(
                    f"pipeline run {run_id!r} does not exist; list runs with `loopml pipeline runs`", run_id=run_id
                )
            steps = conn.execute(
                sa.select(t.step_runs).where(t.step_runs.c.run_id == row.id).order_by(t.step_runs.c.id)
            ).all()
        m = row._mapping
        return PipelineRun(
            id=m["id"], pipeline=m["pipeline"], status=m["status"], params=m["params"] or {}, seed=m["seed"],
            cache=m["cache"], executor=m["executor"], trigger=m["trigger"], git_commit=m["git_commit"],
            started_at=m["started_at"], ended_at=m["ended_at"], error=m["error"], steps=[_step(s) for s in steps],
        )

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        r = t.pipeline_runs.c
        q = sa.select(r.id, r.pipeline, r.status, r.started_at, r.ended_at, r.trigger, r.error)
        if pipeline is not None:
            q = q.where(r.pipeline == pipeline)
        with self.store.read() as conn:
            return [dict(x._mapping) for x in conn.execute(q.order_by(r.started_at.desc()).limit(limit))]

    def find_cached(self, cache_key: str) -> StepRun | None:
        """The newest successful execution with this cache key (via the cache-key index)."""
        s = t.step_runs.c
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(t.step_runs).where(s.cache_key == cache_key, s.status == "done").order_by(s.id.desc()).limit(1)
            ).first()
        return None if row is None else _step(row)

    def last_success(self, step: str) -> StepRun | None:
        """The newest successful execution of a step of this name (to explain a cache miss)."""
        s = t.step_runs.c
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(t.step_runs).where(s.step == step, s.status == "done").order_by(s.id.desc()).limit(1)
            ).first()
        return None if row is None else _step(row)
