"""SQL implementation of the dataset repository, shared by SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.core import now_ms
from loopml.data.models import ColumnInfo, DatasetVersion
from loopml.errors import AliasNotFoundError, DatasetNotFoundError, StoreError
from loopml.storage import _schema as t
from loopml.storage.base import MetadataStore

__all__ = ["SqlDatasetRepository"]

_VERSION_RETRIES = 5


class SqlDatasetRepository:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def _dataset_row(self, conn: Connection, name: str, *, for_update: bool = False) -> Any:
        q = sa.select(t.datasets).where(t.datasets.c.name == name)
        row = conn.execute(q.with_for_update() if for_update else q).first()
        if row is None:
            raise DatasetNotFoundError(
                f"dataset {name!r} is not registered; see `loopml data list`, or register it with loopml.data.register",
                name=name,
            )
        return row

    def ensure_dataset(self, name: str) -> None:
        now = now_ms()
        with self.store.write() as conn:
            ins = self.store.insert(t.datasets).values(name=name, description=None, created_at=now, updated_at=now)
            conn.execute(ins.on_conflict_do_nothing(index_elements=["name"]))

    def find_by_hash(self, name: str, sha256: str) -> DatasetVersion | None:
        v = t.dataset_versions.c
        with self.store.read() as conn:
            row = conn.execute(sa.select(t.dataset_versions).where(v.name == name, v.sha256 == sha256)).first()
            return None if row is None else self._versions(conn, [row])[0]

    def create_version(self, row: dict[str, Any], tags: dict[str, str]) -> int:
        """Insert the next version of ``row['name']``; an existing version with the same hash wins."""
        v = t.dataset_versions.c
        for attempt in range(_VERSION_RETRIES):
            try:
                with self.store.write() as conn:
                    self._dataset_row(conn, row["name"], for_update=True)
                    same = conn.execute(
                        sa.select(v.version).where(v.name == row["name"], v.sha256 == row["sha256"])
                    ).scalar()
                    if same is not None:
                        return int(same)
                    current = conn.execute(sa.select(sa.func.max(v.version)).where(v.name == row["name"])).scalar()
                    version = (current or 0) + 1
                    conn.execute(t.dataset_versions.insert(), {**row, "version": version})
                    if tags:
                        conn.execute(
                            t.dataset_version_tags.insert(),
                            [{"name": row["name"], "version": version, "key": k, "value": val} for k, val in tags.items()],
                        )
                    conn.execute(
                        t.datasets.update().where(t.datasets.c.name == row["name"]).values(updated_at=row["created_at"])
                    )
                return version
            except StoreError as e:
                text = str(e).lower()
                if attempt == _VERSION_RETRIES - 1 or ("unique" not in text and "duplicate" not in text):
                    raise
        raise AssertionError("unreachable")

    def _versions(self, conn: Connection, rows: Sequence[Any]) -> list[DatasetVersion]:
        if not rows:
            return []
        name = rows[0].name
        vt = t.dataset_version_tags.c
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        for g in conn.execute(sa.select(t.dataset_version_tags).where(vt.name == name)):
            tags[g.version][g.key] = g.value
        aliases: dict[int, list[str]] = defaultdict(list)
        a = t.dataset_aliases.c
        for al in conn.execute(sa.select(t.dataset_aliases).where(a.name == name).order_by(a.alias)):
            aliases[al.version].append(al.alias)
        return [
            DatasetVersion(
                name=r.name, version=r.version, sha256=r.sha256, artifact_key=r.artifact_key, num_rows=r.num_rows,
                num_bytes=r.num_bytes, columns=[ColumnInfo(c["name"], c["type"]) for c in r.columns], source=r.source,
                description=r.description, created_at=r.created_at, created_by=r.created_by, profile_key=r.profile_key,
                tags=tags.get(r.version, {}), aliases=aliases.get(r.version, []),
            )
            for r in rows
        ]

    def get_version(self, name: str, version: int | None) -> DatasetVersion:
        v = t.dataset_versions.c
        with self.store.read() as conn:
            self._dataset_row(conn, name)
            q = sa.select(t.dataset_versions).where(v.name == name)
            q = q.where(v.version == version) if version is not None else q.order_by(v.version.desc()).limit(1)
            row = conn.execute(q).first()
            if row is None:
                what = f"version {version}" if version is not None else "any version"
                raise DatasetNotFoundError(
                    f"dataset {name!r} has no {what}; see `loopml data show {name}`", name=name, version=version
                )
            return self._versions(conn, [row])[0]

    def list_versions(self, name: str) -> list[DatasetVersion]:
        v = t.dataset_versions.c
        with self.store.read() as conn:
            self._dataset_row(conn, name)
            rows = conn.execute(sa.select(t.dataset_versions).where(v.name == name).order_by(v.version)).all()
            return self._versions(conn, rows)

    def list_datasets(self) -> list[dict[str, Any]]:
        d, v = t.datasets.c, t.dataset_versions.c
        latest = (
            sa.select(v.name, sa.func.max(v.version).label("latest"), sa.func.count().label("versions"))
            .group_by(v.name)
            .subquery()
        )
        q = (
            sa.select(d.name, d.description, d.created_at, d.updated_at, latest.c.latest, latest.c.versions)
            .select_from(t.datasets.outerjoin(latest, latest.c.name == d.name))
            .order_by(d.name)
        )
        with self.store.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def resolve_alias(self, name: str, alias: str) -> int:
        a = t.dataset_aliases.c
        with self.store.read() as conn:
            version = conn.execute(sa.select(a.version).where(a.name == name, a.alias == alias)).scalar()
            if version is None:
                self._dataset_row(conn, name)
                known = list(conn.execute(sa.select(a.alias).where(a.name == name)).scalars())
                raise AliasNotFoundError(
                    f"dataset {name!r} has no alias {alias!r}; its aliases are: {', '.join(known) or 'none'}",
                    name=name, alias=alias,
                )
        return int(version)

    def move_alias(self, name: str, alias: str, version: int | None, user: str | None) -> int | None:
        """Point ``alias`` at ``version`` (None removes it); returns the version it pointed at before."""
        a, v = t.dataset_aliases.c, t.dataset_versions.c
        with self.store.write() as conn:
            self._dataset_row(conn, name, for_update=True)
            old = conn.execute(sa.select(a.version).where(a.name == name, a.alias == alias)).scalar()
            if version is None:
                if old is None:
                    raise AliasNotFoundError(f"dataset {name!r} has no alias {alias!r}", name=name, alias=alias)
                conn.execute(t.dataset_aliases.delete().where(a.name == name, a.alias == alias))
            else:
                found = conn.execute(sa.select(v.version).where(v.name == name, v.version == version)).first()
                if found is None:
                    raise DatasetNotFoundError(
                        f"cannot point alias {alias!r} at version {version}: dataset {name!r} has no such version",
                        name=name, version=version,
                    )
                ins = self.store.insert(t.dataset_aliases)
                conn.execute(
                    ins.on_conflict_do_update(index_elements=["name", "alias"], set_={"version": ins.excluded.version}),
                    {"name": name, "alias": alias, "version": version},
                )
            conn.execute(
                t.dataset_alias_history.insert().values(
                    name=name, alias=alias, version=version, changed_at=now_ms(), changed_by=user
                )
            )
        return None if old is None else int(old)
