"""SQL implementation of the registry repository, shared by SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from loopml.core import now_ms
from loopml.errors import (
    AliasNotFoundError,
    AlreadyExistsError,
    ConflictError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
    StoreError,
)
from loopml.registry.models import AliasChange, ModelVersion, RegisteredModel
from loopml.registry.signature import Signature
from loopml.storage import _schema as t
from loopml.storage.base import MetadataStore

__all__ = ["SqlRegistryRepository"]

_VERSION_RETRIES = 5


class SqlRegistryRepository:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    # -- models ----------------------------------------------------------------

    def _model_row(self, conn: Connection, name: str, *, for_update: bool = False) -> Any:
        q = sa.select(t.registered_models).where(t.registered_models.c.name == name)
        row = conn.execute(q.with_for_update() if for_update else q).first()
        if row is None:
            raise ModelNotFoundError(
                f"model {name!r} is not registered; see `loopml models list`, or register it with loopml.models.register",
                name=name,
            )
        return row

    def create_model(self, name: str, description: str | None, tags: dict[str, str], *, exist_ok: bool) -> None:
        now = now_ms()
        try:
            with self.store.write() as conn:
                ins = self.store.insert(t.registered_models).values(name=name, description=description, created_at=now, updated_at=now)
                # RETURNING, not rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING
                res = conn.execute(ins.on_conflict_do_nothing(index_elements=["name"]).returning(t.registered_models.c.name))
                if res.first() is None and not exist_ok:
                    raise AlreadyExistsError(f"model {name!r} is already registered", name=name)
                if tags:
                    self._set_tags(conn, t.model_tags, {"name": name}, tags)
        except IntegrityError:
            if not exist_ok:
                raise AlreadyExistsError(f"model {name!r} is already registered", name=name) from None

    def _set_tags(self, conn: Connection, table: sa.Table, keys: dict[str, Any], tags: dict[str, str]) -> None:
        ins = self.store.insert(table)
        index = [*keys, "key"]
        conn.execute(
            ins.on_conflict_do_update(index_elements=index, set_={"value": ins.excluded.value}),
            [{**keys, "key": k, "value": v} for k, v in tags.items()],
        )

    def update_model(self, name: str, *, description: str | None = None, tags: dict[str, str] | None = None) -> None:
        with self.store.write() as conn:
            self._model_row(conn, name)
            values: dict[str, Any] = {"updated_at": now_ms()}
            if description is not None:
                values["description"] = description
            conn.execute(t.registered_models.update().where(t.registered_models.c.name == name).values(**values))
            if tags:
                self._set_tags(conn, t.model_tags, {"name": name}, tags)

    def get_model(self, name: str) -> RegisteredModel:
        with self.store.read() as conn:
            row = self._model_row(conn, name)
            return self._models(conn, [row])[0]

    def list_models(self) -> list[RegisteredModel]:
        with self.store.read() as conn:
            rows = conn.execute(sa.select(t.registered_models).order_by(t.registered_models.c.name)).all()
            return self._models(conn, rows)

    def _models(self, conn: Connection, rows: Sequence[Any]) -> list[RegisteredModel]:
        names = [r.name for r in rows]
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        for g in conn.execute(sa.select(t.model_tags).where(t.model_tags.c.name.in_(names))):
            tags[g.name][g.key] = g.value
        aliases: dict[str, dict[str, int]] = defaultdict(dict)
        for a in conn.execute(sa.select(t.model_aliases).where(t.model_aliases.c.name.in_(names)).order_by(t.model_aliases.c.alias)):
            aliases[a.name][a.alias] = a.version
        mv = t.model_versions.c
        latest = dict(conn.execute(sa.select(mv.name, sa.func.max(mv.version)).where(mv.name.in_(names)).group_by(mv.name)).all())
        return [
            RegisteredModel(r.name, r.description, tags.get(r.name, {}), r.created_at, r.updated_at,
                            latest.get(r.name), aliases.get(r.name, {}))
            for r in rows
        ]

    # -- versions --------------------------------------------------------------

    def create_version(self, row: dict[str, Any], tags: dict[str, str]) -> int:
        """Insert a version with the next number; retried when a concurrent writer took it."""
        mv = t.model_versions.c
        for attempt in range(_VERSION_RETRIES):
            try:
                with self.store.write() as conn:
                    # lock the model's row: concurrent registrations of one model queue here
                    # (SQLite's write transactions are serialised already)
                    self._model_row(conn, row["name"], for_update=True)
                    current = conn.execute(sa.select(sa.func.max(mv.version)).where(mv.name == row["name"])).scalar()
                    version = (current or 0) + 1
                    conn.execute(t.model_versions.insert(), {**row, "version": version})
                    if tags:
                        self._set_tags(conn, t.model_version_tags, {"name": row["name"], "version": version}, tags)
                    conn.execute(
                        t.registered_models.update().where(t.registered_models.c.name == row["name"]).values(updated_at=row["created_at"])
                    )
                return version
            except (IntegrityError, StoreError) as e:
                if attempt == _VERSION_RETRIES - 1 or "unique" not in str(e).lower() and "duplicate" not in str(e).lower():
                    raise
        raise AssertionError("unreachable")

    def _versions(self, conn: Connection, rows: Sequence[Any]) -> list[ModelVersion]:
        if not rows:
            return []
        name = rows[0].name
        keys = [r.version for r in rows]
        vt = t.model_version_tags.c
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        for g in conn.execute(sa.select(t.model_version_tags).where(vt.name == name, vt.version.in_(keys))):
            tags[g.version][g.key] = g.value
        aliases: dict[int, list[str]] = defaultdict(list)
        for a in conn.execute(sa.select(t.model_aliases).where(t.model_aliases.c.name == name).order_by(t.model_aliases.c.alias)):
            aliases[a.version].append(a.alias)
        return [
            ModelVersion(
                name=r.name, version=r.version, flavor=r.flavor, artifact_key=r.artifact_key, sha256=r.sha256,
                size=r.size, run_id=r.run_id, signature=Signature.from_dict(r.signature) if r.signature else None,
                requirements=r.requirements or {}, datasets=r.datasets or [], description=r.description,
                created_at=r.created_at, created_by=r.created_by, tags=tags.get(r.version, {}),
                aliases=aliases.get(r.version, []),
            )
            for r in rows
        ]

    def get_version(self, name: str, version: int | None) -> ModelVersion:
        """Version ``version`` of ``name``; None means the latest."""
        mv = t.model_versions.c
        with self.store.read() as conn:
            self._model_row(conn, name)
            q = sa.select(t.model_versions).where(mv.name == name)
            q = q.where(mv.version == version) if version is not None else q.order_by(mv.version.desc()).limit(1)
            row = conn.execute(q).first()
            if row is None:
                what = f"version {version}" if version is not None else "any version"
                raise ModelVersionNotFoundError(
                    f"model {name!r} has no {what}; see `loopml models show {name}`", name=name, version=version
                )
            return self._versions(conn, [row])[0]

    def list_versions(self, name: str) -> list[ModelVersion]:
        mv = t.model_versions.c
        with self.store.read() as conn:
            self._model_row(conn, name)
            rows = conn.execute(sa.select(t.model_versions).where(mv.name == name).order_by(mv.version)).all()
            return self._versions(conn, rows)

    def update_version(self, name: str, version: int, *, description: str | None, tags: dict[str, str] | None) -> None:
        mv = t.model_versions.c
        with self.store.write() as conn:
            exists = conn.execute(sa.select(mv.version).where(mv.name == name, mv.version == version)).first()
            if exists is None:
                raise ModelVersionNotFoundError(f"model {name!r} has no version {version}", name=name, version=version)
            if description is not None:
                conn.execute(t.model_versions.update().where(mv.name == name, mv.version == version).values(description=description))
            if tags:
                self._set_tags(conn, t.model_version_tags, {"name": name, "version": version}, tags)

    # -- aliases -----------------------------------------------------------------

    def resolve_alias(self, name: str, alias: str) -> int:
        a = t.model_aliases.c
        with self.store.read() as conn:
            version = conn.execute(sa.select(a.version).where(a.name == name, a.alias == alias)).scalar()
            if version is None:
                self._model_row(conn, name)
                known = list(conn.execute(sa.select(a.alias).where(a.name == name)).scalars())
                raise AliasNotFoundError(
                    f"model {name!r} has no alias {alias!r}; its aliases are: {', '.join(known) or 'none'}",
                    name=name, alias=alias,
                )
        return int(version)

    def move_alias(self, name: str, alias: str, version: int | None, *, action: str, user: str | None,
                   rollback: bool = False) -> tuple[int | None, int | None]:
        """Point ``alias`` at ``version`` (None removes it), recording the move. Returns (old, new).

        With ``rollback``, the target is the version the alias had before its current assignment,
        and the new history entry links further back, so repeated rollbacks keep going back.
        """
        a, h, mv = t.model_aliases.c, t.alias_history.c, t.model_versions.c
        with self.store.write() as conn:
            self._model_row(conn, name, for_update=True)
            cur = conn.execute(sa.select(a.version, a.history_id).where(a.name == name, a.alias == alias)).first()
            old_version = cur.version if cur is not None else None
            previous_id = cur.history_id if cur is not None else None
            if rollback:
                if cur is None:
                    raise AliasNotFoundError(f"model {name!r} has no alias {alias!r} to roll back", name=name, alias=alias)
                this = conn.execute(sa.select(h.previous_id).where(h.id == cur.history_id)).first()
                before = None
                if this is not None and this.previous_id is not None:
                    before = conn.execute(sa.select(h.version, h.previous_id).where(h.id == this.previous_id)).first()
                if before is None or before.version is None:
                    raise ConflictError(
                        f"alias {alias!r} of model {name!r} has no earlier version to roll back to "
                        f"(it points at version {old_version}); set it explicitly with `loopml models alias`",
                        name=name, alias=alias,
                    )
                version = before.version
                previous_id = before.previous_id
            if version is not None:
                found = conn.execute(sa.select(mv.version).where(mv.name == name, mv.version == version)).first()
                if found is None:
                    raise ModelVersionNotFoundError(
                        f"cannot point alias {alias!r} at version {version}: model {name!r} has no such version",
                        name=name, version=version,
                    )
            elif cur is None:
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}", name=name, alias=alias)
            inserted = conn.execute(
                t.alias_history.insert().values(
                    name=name, alias=alias, version=version, previous_id=previous_id, action=action,
                    changed_at=now_ms(), changed_by=user,
                )
            ).inserted_primary_key
            assert inserted is not None
            hist_id = inserted[0]
            if version is None:
                conn.execute(t.model_aliases.delete().where(a.name == name, a.alias == alias))
            else:
                ins = self.store.insert(t.model_aliases)
                conn.execute(
                    ins.on_conflict_do_update(
                        index_elements=["name", "alias"],
                        set_={"version": ins.excluded.version, "history_id": ins.excluded.history_id},
                    ),
                    {"name": name, "alias": alias, "version": version, "history_id": hist_id},
                )
        return old_version, version

    def alias_history(self, name: str, alias: str | None) -> list[AliasChange]:
        h = t.alias_history.c
        with self.store.read() as conn:
            self._model_row(conn, name)
            q = sa.select(t.alias_history).where(h.name == name)
            if alias is not None:
                q = q.where(h.alias == alias)
            rows = conn.execute(q.order_by(h.id)).all()
        out = []
        last: dict[str, int | None] = {}
        for r in rows:
            out.append(AliasChange(r.id, r.name, r.alias, r.version, last.get(r.alias), r.action, r.changed_at, r.changed_by))
            last[r.alias] = r.version
        return out
