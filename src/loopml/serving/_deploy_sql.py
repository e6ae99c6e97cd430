"""SQL implementation of the deployment repository, shared by SQLite and PostgreSQL.

A deployment is one row in ``deployments`` (its current configuration and
revision) plus one ``deployment_history`` row per revision. Every change
reads the current row and writes both tables in one write transaction, with
the deployment's row locked (``FOR UPDATE`` on PostgreSQL; SQLite's write
transactions are serialised already), so concurrent writers queue instead of
losing an update; the unique (deployment, revision) constraint of the history
is the last line of defence against duplicate revisions.

The repository stores configurations as plain JSON dicts; what they mean
(strategies, variants, weights) is the service's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.core import now_ms
from loopml.errors import ConflictError, NotFoundError
from loopml.storage import _schema as t
from loopml.storage.base import MetadataStore

__all__ = ["DeploymentRow", "HistoryRow", "SqlDeploymentRepository"]

#: how many names a "deployment not found" message lists
_KNOWN_SHOWN = 20


@dataclass(frozen=True)
class DeploymentRow:
    name: str
    revision: int
    config: dict[str, Any]
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class HistoryRow:
    revision: int
    previous: int | None
    config: dict[str, Any]
    action: str
    user: str | None
    changed_at: int


def _row(r: Any) -> DeploymentRow:
    return DeploymentRow(r.name, int(r.revision), dict(r.config or {}), int(r.created_at), int(r.updated_at))


class SqlDeploymentRepository:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    # -- reads -------------------------------------------------------------------

    def _not_found(self, conn: Connection, name: str) -> NotFoundError:
        d = t.deployments.c
        known = list(conn.execute(sa.select(d.name).order_by(d.name).limit(_KNOWN_SHOWN + 1)).scalars())
        if not known:
            listing = "there are no deployments yet; create one with `loopml deploy create NAME models:/MODEL/VERSION`"
        else:
            more = ", ..." if len(known) > _KNOWN_SHOWN else ""
            listing = f"known deployments: {', '.join(known[:_KNOWN_SHOWN])}{more}"
        return NotFoundError(f"deployment {name!r} does not exist; {listing}", deployment=name)

    def _current(self, conn: Connection, name: str, *, for_update: bool = False) -> DeploymentRow:
        q = sa.select(t.deployments).where(t.deployments.c.name == name)
        row = conn.execute(q.with_for_update() if for_update else q).first()
        if row is None:
            raise self._not_found(conn, name)
        return _row(row)

    def get(self, name: str) -> DeploymentRow:
        with self.store.read() as conn:
            return self._current(conn, name)

    def revision(self, name: str) -> int:
        """The current revision: one primary-key lookup on the driver's cursor (servers poll this)."""
        with self.store.read() as conn:
            rows = self.store.query(conn, "SELECT revision FROM deployments WHERE name = ?", (name,))
            if not rows:
                raise self._not_found(conn, name)
            return int(rows[0][0])

    def list_all(self) -> list[DeploymentRow]:
        with self.store.read() as conn:
            rows = conn.execute(sa.select(t.deployments).order_by(t.deployments.c.name)).all()
        return [_row(r) for r in rows]

    def history(self, name: str, *, limit: int | None = None) -> list[HistoryRow]:
        """History rows of ``name``, oldest first (with ``limit``, the newest ``limit`` of them)."""
        h = t.deployment_history.c
        with self.store.read() as conn:
            self._current(conn, name)
            q = sa.select(t.deployment_history).where(h.deployment == name).order_by(h.revision.desc())
            if limit is not None:
                q = q.limit(limit)
            rows = conn.execute(q).all()
        return [
            HistoryRow(int(r.revision), r.previous, dict(r.config or {}), r.action, r.user, int(r.changed_at))
            for r in reversed(rows)
        ]

    # -- writes ------------------------------------------------------------------

    def create(self, name: str, config: dict[str, Any], *, user: str | None) -> DeploymentRow:
        """Insert ``name`` at revision 1.

        Raises:
            ConflictError: a deployment called ``name`` exists.
        """
        now = now_ms()
        exists = ConflictError(
            f"deployment {name!r} already exists; change it with `loopml deploy update {name} MODEL_URI` "
            f"(or a canary, shadow, ...), or delete it first",
            deployment=name,
        )
        with self.store.write() as conn:
            ins = self.store.insert(t.deployments).values(
                name=name, revision=1, config=config, created_at=now, updated_at=now
            )
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING
            inserted = conn.execute(ins.on_conflict_do_nothing(index_elements=["name"]).returning(t.deployments.c.name))
            if inserted.first() is None:
                raise exists
            self._record(conn, name, 1, None, config, "create", user, now)
        return DeploymentRow(name, 1, config, now, now)

    def change(self, name: str, action: str, user: str | None,
               compute: Callable[[DeploymentRow], dict[str, Any] | None]) -> tuple[DeploymentRow, bool]:
        """Replace the configuration of ``name`` by ``compute(current)``, as revision current + 1.

        ``compute`` runs inside the write transaction with the row locked, so it sees the
        latest committed configuration; an error it raises aborts the change. When it returns
        None or the current configuration, nothing is written.

        Returns:
            The deployment as it is now, and whether a new revision was written.
        """
        with self.store.write() as conn:
            cur = self._current(conn, name, for_update=True)
            config = compute(cur)
            if config is None or config == cur.config:
                return cur, False
            return self._write(conn, cur, config, cur.revision, action, user), True

    def rollback(self, name: str, steps: int, user: str | None) -> tuple[DeploymentRow, int]:
        """Bring back the configuration ``steps`` changes before the current one, as a new revision.

        Each history row's ``previous`` is the revision a rollback of it returns to: for an
        ordinary change, the revision it replaced; for a rollback, the ``previous`` of the
        revision it restored. Following that chain, repeated rollbacks keep walking back.

        Returns:
            The deployment as it is now and the revision whose configuration it restored.

        Raises:
            ConflictError: the history does not reach ``steps`` changes back.
        """
        h = t.deployment_history.c
        with self.store.write() as conn:
            cur = self._current(conn, name, for_update=True)
            at = cur.revision
            target: Any = None
            for step in range(steps):
                entry = conn.execute(
                    sa.select(h.previous).where(h.deployment == name, h.revision == at)
                ).first()
                back = entry.previous if entry is not None else None
                if back is None:
                    why = (f"its history reaches only {step} change{'s' if step != 1 else ''} back" if step
                           else "there is no earlier configuration to return to")
                    raise ConflictError(
                        f"deployment {name!r} (revision {cur.revision}) cannot roll back "
                        f"{steps} step{'s' if steps != 1 else ''}: {why}; see `loopml deploy history {name}`, "
                        f"or set the model explicitly with `loopml deploy update`",
                        deployment=name, revision=cur.revision, steps=steps,
                    )
                target = conn.execute(
                    sa.select(h.revision, h.previous, h.config).where(h.deployment == name, h.revision == back)
                ).first()
                if target is None:  # pragma: no cover - the foreign key and the unique index forbid it
                    raise ConflictError(f"deployment {name!r}: history revision {back} is missing", deployment=name)
                at = int(target.revision)
            assert target is not None
            row = self._write(conn, cur, dict(target.config), target.previous, "rollback", user)
            return row, int(target.revision)

    def _write(self, conn: Connection, cur: DeploymentRow, config: dict[str, Any], previous: int | None,
               action: str, user: str | None) -> DeploymentRow:
        d = t.deployments.c
        now = now_ms()
        revision = cur.revision + 1
        res = conn.execute(
            t.deployments.update()
            .where(d.name == cur.name, d.revision == cur.revision)  # compare-and-set: never skip a revision
            .values(revision=revision, config=config, updated_at=now)
        )
        if res.rowcount != 1:  # pragma: no cover - the row lock makes this unreachable
            raise ConflictError(f"deployment {cur.name!r} changed concurrently; retry", deployment=cur.name)
        self._record(conn, cur.name, revision, previous, config, action, user, now)
        return DeploymentRow(cur.name, revision, config, cur.created_at, now)

    def _record(self, conn: Connection, name: str, revision: int, previous: int | None, config: dict[str, Any],
                action: str, user: str | None, now: int) -> None:
        conn.execute(
            t.deployment_history.insert().values(
                deployment=name, revision=revision, previous=previous, config=config, action=action,
                user=user, changed_at=now,
            )
        )

    def delete(self, name: str) -> int:
        """Delete ``name`` and its history; returns its last revision."""
        with self.store.write() as conn:
            cur = self._current(conn, name, for_update=True)
            h = t.deployment_history.c
            # explicit rather than relying on ON DELETE CASCADE, which SQLite applies only with foreign_keys=ON
            conn.execute(t.deployment_history.delete().where(h.deployment == name))
            conn.execute(t.deployments.delete().where(t.deployments.c.name == name))
            return cur.revision
