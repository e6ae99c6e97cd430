"""SQL implementation of the feature repository, shared by SQLite and PostgreSQL.

Owns the ``feature_definitions`` (versioned specs) and ``feature_materializations``
(per view and online store: watermark and source fingerprint) records.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from loopml.core import now_ms
from loopml.errors import StoreError
from loopml.storage import _schema as t
from loopml.storage.base import MetadataStore

__all__ = ["SqlFeatureRepository"]

_VERSION_RETRIES = 5


class SqlFeatureRepository:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    # -- definitions -------------------------------------------------------------

    def save(self, items: list[tuple[str, str, str, dict[str, Any]]], user: str | None) -> list[tuple[int, bool]]:
        """Store each ``(kind, name, digest, spec)`` as a new version unless the latest has the same digest.

        All in one transaction. Returns ``(version, created)`` per item, in order.
        """
        d = t.feature_definitions.c
        for attempt in range(_VERSION_RETRIES):
            out: list[tuple[int, bool]] = []
            try:
                with self.store.write() as conn:
                    now = now_ms()
                    for kind, name, digest, spec in items:
                        latest = conn.execute(
                            sa.select(d.version, d.digest).where(d.kind == kind, d.name == name)
                            .order_by(d.version.desc()).limit(1)
                        ).first()
                        if latest is not None and latest.digest == digest:
                            out.append((int(latest.version), False))
                            continue
                        version = 1 if latest is None else int(latest.version) + 1
                        conn.execute(t.feature_definitions.insert().values(
                            kind=kind, name=name, version=version, digest=digest, spec=spec,
                            created_at=now, created_by=user,
                        ))
                        out.append((version, True))
                return out
            except StoreError as e:
                text = str(e).lower()
                # a concurrent apply took the version number: recount
                if attempt == _VERSION_RETRIES - 1 or ("unique" not in text and "duplicate" not in text):
                    raise
        raise AssertionError("unreachable")

    def latest(self) -> list[dict[str, Any]]:
        """The latest version of every definition, ordered by kind and name."""
        d = t.feature_definitions.c
        newest = (
            sa.select(d.kind, d.name, sa.func.max(d.version).label("version"), sa.func.count().label("versions"))
            .group_by(d.kind, d.name).subquery()
        )
        q = (
            sa.select(t.feature_definitions, newest.c.versions)
            .join(newest, sa.and_(d.kind == newest.c.kind, d.name == newest.c.name, d.version == newest.c.version))
            .order_by(d.kind, d.name)
        )
        with self.store.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def get(self, kind: str, name: str, version: int | None = None) -> dict[str, Any] | None:
        """One version (default: the latest) of a definition, or None."""
        d = t.feature_definitions.c
        q = sa.select(t.feature_definitions).where(d.kind == kind, d.name == name)
        q = q.where(d.version == version) if version is not None else q.order_by(d.version.desc()).limit(1)
        with self.store.read() as conn:
            row = conn.execute(q).first()
        return None if row is None else dict(row._mapping)

    def versions(self, kind: str, name: str) -> list[dict[str, Any]]:
        d = t.feature_definitions.c
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(t.feature_definitions).where(d.kind == kind, d.name == name).order_by(d.version)
            ).all()
        return [dict(r._mapping) for r in rows]

    # -- materialization state ------------------------------------------------------

    def get_state(self, view: str, store: str) -> dict[str, Any] | None:
        m = t.feature_materializations.c
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(t.feature_materializations).where(m.view == view, m.store == store)
            ).first()
        return None if row is None else dict(row._mapping)

    def states(self, store: str | None = None) -> list[dict[str, Any]]:
        m = t.feature_materializations.c
        q = sa.select(t.feature_materializations).order_by(m.view, m.store)
        if store is not None:
            q = q.where(m.store == store)
        with self.store.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def save_state(self, view: str, store: str, *, view_version: int, watermark_us: int | None, end_us: int,
                   state: dict[str, Any]) -> None:
        ins = self.store.insert(t.feature_materializations)
        values = {"view": view, "store": store, "view_version": view_version, "watermark_us": watermark_us,
                  "end_us": end_us, "state": state, "updated_at": now_ms()}
        with self.store.write() as conn:
            conn.execute(ins.values(**values).on_conflict_do_update(
                index_elements=["view", "store"],
                set_={k: getattr(ins.excluded, k) for k in ("view_version", "watermark_us", "end_us", "state", "updated_at")},
            ))
