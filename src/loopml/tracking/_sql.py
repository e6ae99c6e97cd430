"""SQL implementation of the tracking repository, shared by SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from loopml.core import now_ms
from loopml.errors import (
    ExperimentNotFoundError,
    FilterSyntaxError,
    InvalidInputError,
    ParamConflictError,
    RunNotFoundError,
    StoreError,
)
from loopml.storage import _schema as t
from loopml.storage.base import MetadataStore
from loopml.tracking._filter import And, Compare, Node, Not, Or, OrderKey
from loopml.tracking.models import ArtifactInfo, DatasetRef, Experiment, Metric, Run, RunStatus

__all__ = ["MetricRow", "SqlTrackingRepository"]

# (run_id, key, value, special, step, timestamp)
MetricRow = tuple[str, str, float | None, str | None, int, int]

_SPECIAL = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
_STATUSES = {s.value: s for s in RunStatus}


def _json_column(value: Any) -> Any:
    """A JSON column read on the driver: text on SQLite, already decoded on PostgreSQL."""
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str | bytes) else value


def _metric_value(value: float | None, special: str | None) -> float:
    if special is not None:
        return _SPECIAL[special]
    return float(value) if value is not None else float("nan")


def _decode_param(value: str, kind: str) -> Any:
    return _decode_json_param(value) if kind == "json" else value


_JSON_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}


def _decode_json_param(text: str) -> Any:
    """``json.loads`` with fast paths for the common scalars (ints, floats, true/false/null)."""
    if text in _JSON_CONSTANTS:
        return _JSON_CONSTANTS[text]
    first = text[:1]
    if first.isdigit() or first == "-":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                pass
    return json.loads(text)


def _like_to_glob(pattern: str) -> str:
    """A SQLite GLOB pattern matching what ``LIKE pattern`` matches on PostgreSQL (``\\`` escapes)."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            ch = next(chars, "\\")
        elif ch in "%_":
            out.append("*" if ch == "%" else "?")
            continue
        out.append(f"[{ch}]" if ch in "*?[" else ch)
    return "".join(out)


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise InvalidInputError(
            f"page token {token!r} is not one loopml issued; pass the next_page_token of the previous page"
        ) from None


class SqlTrackingRepository:
    """Runs, params, tags, metrics, artifacts and dataset references in SQL."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    # -- experiments -----------------------------------------------------------

    def get_experiment(self, name: str) -> Experiment | None:
        with self.store.read() as conn:
            row = conn.execute(sa.select(t.experiments).where(t.experiments.c.name == name)).first()
        return None if row is None else Experiment(row.id, row.name, row.description, row.created_at)

    def get_or_create_experiment(self, name: str) -> Experiment:
        found = self.get_experiment(name)
        if found is not None:
            return found
        try:
            with self.store.write() as conn:
                ins = self.store.insert(t.experiments).values(name=name, created_at=now_ms())
                conn.execute(ins.on_conflict_do_nothing(index_elements=["name"]))
        except IntegrityError:
            pass
        found = self.get_experiment(name)
        assert found is not None
        return found

    def list_experiments(self) -> list[Experiment]:
        with self.store.read() as conn:
            rows = conn.execute(sa.select(t.experiments).order_by(t.experiments.c.id)).all()
        return [Experiment(r.id, r.name, r.description, r.created_at) for r in rows]

    # -- runs ------------------------------------------------------------------

    def create_run(self, row: dict[str, Any], params: Sequence[tuple[str, str, str]], tags: Sequence[tuple[str, str]]) -> None:
        with self.store.write() as conn:
            conn.execute(t.runs.insert(), row)
            if params:
                conn.execute(t.params.insert(), [{"run_id": row["id"], "key": k, "value": v, "kind": kd} for k, v, kd in params])
            if tags:
                conn.execute(t.tags.insert(), [{"run_id": row["id"], "key": k, "value": v} for k, v in tags])

    def run_status(self, run_id: str) -> RunStatus:
        with self.store.read() as conn:
            status = conn.execute(sa.select(t.runs.c.status).where(t.runs.c.id == run_id)).scalar()
        if status is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist; list runs with `loopml runs list`", run_id=run_id)
        return RunStatus(status)

    def set_status(self, run_id: str, status: RunStatus, end_time: int | None) -> None:
        with self.store.write() as conn:
            res = conn.execute(
                t.runs.update().where(t.runs.c.id == run_id).values(status=status.value, end_time=end_time)
            )
        if res.rowcount == 0:
            raise RunNotFoundError(f"run {run_id!r} does not exist", run_id=run_id)

    def log_params(self, run_id: str, items: Sequence[tuple[str, str, str]]) -> None:
        """Insert params; re-logging a key with the same value is a no-op, another value a conflict.

        A concurrent writer inserting the same key first makes our insert fail on the
        primary key; the second attempt then sees its value and decides as above.
        """
        for attempt in (1, 2):
            try:
                self._insert_params(run_id, items)
                return
            except StoreError as e:
                if attempt == 2 or not isinstance(e.__cause__, IntegrityError):
                    raise

    def _insert_params(self, run_id: str, items: Sequence[tuple[str, str, str]]) -> None:
        st = self.store
        with st.write() as conn:
            keys_sql, keys_param = st.any_of("key", [k for k, _, _ in items])
            existing = {
                key: (value, kind)
                for key, value, kind in st.query(
                    conn, "SELECT key, value, kind FROM params WHERE run_id = ? AND " + keys_sql, (run_id, *keys_param)
                )
            }
            new = []
            for key, value, kind in items:
                old = existing.get(key)
                if old is None:
                    new.append((run_id, key, value, kind))
                elif old != (value, kind):
                    raise ParamConflictError(
                        f"param {key!r} of run {run_id} is already {_decode_param(*old)!r}; params are immutable, "
                        f"so it cannot become {_decode_param(value, kind)!r} (log a new param or start a new run)",
                        run_id=run_id, key=key,
                    )
            st.execute_many(conn, "INSERT INTO params (run_id, key, value, kind) VALUES (?, ?, ?, ?)", new)

    def set_tags(self, run_id: str, items: Sequence[tuple[str, str]]) -> None:
        with self.store.write() as conn:
            ins = self.store.insert(t.tags)
            conn.execute(
                ins.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": ins.excluded.value}),
                [{"run_id": run_id, "key": k, "value": v} for k, v in items],
            )

    def delete_tag(self, run_id: str, key: str) -> None:
        with self.store.write() as conn:
            conn.execute(t.tags.delete().where(t.tags.c.run_id == run_id, t.tags.c.key == key))

    _INSERT_METRICS = "INSERT INTO metrics (run_id, key, value, special, step, timestamp) VALUES (?, ?, ?, ?, ?, ?)"
    # the latest value is the one with the highest step, then the latest time
    _UPSERT_LATEST = (
        "INSERT INTO latest_metrics (run_id, key, value, special, step, timestamp) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, special = excluded.special, "
        "step = excluded.step, timestamp = excluded.timestamp "
        "WHERE excluded.step > latest_metrics.step "
        "OR (excluded.step = latest_metrics.step AND excluded.timestamp >= latest_metrics.timestamp)"
    )

    def write_metrics(self, rows: Sequence[MetricRow]) -> None:
        """Append metric points and move each series' latest value (highest step, then time)."""
        if not rows:
            return
        with self.store.write() as conn:
            self._write_metrics(conn, rows)

    def _write_metrics(self, conn: Connection, rows: Sequence[MetricRow]) -> None:
        if not rows:
            return
        latest: dict[tuple[str, str], MetricRow] = {}
        for r in rows:
            k = (r[0], r[1])
            cur = latest.get(k)
            if cur is None or (r[4], r[5]) >= (cur[4], cur[5]):
                latest[k] = r
        self.store.execute_many(conn, self._INSERT_METRICS, rows)
        self.store.execute_many(conn, self._UPSERT_LATEST, list(latest.values()))

    def finish_run(self, run_id: str, status: RunStatus, end_time: int, rows: Sequence[MetricRow]) -> None:
        """Write ``rows`` and mark the run ended, in one transaction."""
        with self.store.write() as conn:
            self._write_metrics(conn, rows)
            res = conn.exec_driver_sql(
                self.store.sql("UPDATE runs SET status = ?, end_time = ? WHERE id = ?"), (status.value, end_time, run_id)
            )
        if res.rowcount == 0:
            raise RunNotFoundError(f"run {run_id!r} does not exist", run_id=run_id)

    def metric_history(self, run_id: str, key: str | None = None) -> list[Metric]:
        m = t.metrics.c
        q = sa.select(m.key, m.value, m.special, m.step, m.timestamp).where(m.run_id == run_id)
        if key is not None:
            q = q.where(m.key == key)
        with self.store.read() as conn:
            rows = conn.execute(q.order_by(m.key, m.step, m.timestamp, m.id)).all()
        return [Metric(r.key, _metric_value(r.value, r.special), r.step, r.timestamp) for r in rows]

    def add_artifact(self, run_id: str, path: str, sha256: str, size: int) -> None:
        with self.store.write() as conn:
            ins = self.store.insert(t.run_artifacts)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["run_id", "path"],
                    set_={"sha256": ins.excluded.sha256, "size": ins.excluded.size, "created_at": ins.excluded.created_at},
                ),
                {"run_id": run_id, "path": path, "sha256": sha256, "size": size, "created_at": now_ms()},
            )

    def add_dataset(self, run_id: str, ref: DatasetRef) -> None:
        d = t.run_datasets.c
        with self.store.write() as conn:
            # the unique constraint treats NULL contexts as distinct, so look first
            seen = conn.execute(
                sa.select(d.id).where(
                    d.run_id == run_id, d.name == ref.name, d.digest == ref.digest,
                    d.context.is_not_distinct_from(ref.context),
                )
            ).first()
            if seen is not None:
                return
            ins = self.store.insert(t.run_datasets)
            conn.execute(
                ins.on_conflict_do_nothing(index_elements=["run_id", "name", "digest", "context"]),
                {"run_id": run_id, "name": ref.name, "path": ref.path, "digest": ref.digest, "context": ref.context,
                 "num_rows": ref.num_rows, "schema": ref.schema, "created_at": now_ms()},
            )

    # -- reading -----------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        with self.store.read() as conn:
            found = self._load(conn, [run_id], full=True)
        if not found:
            raise RunNotFoundError(f"run {run_id!r} does not exist; list runs with `loopml runs list`", run_id=run_id)
        return found[0]

    def _load(self, conn: Connection, ids: list[str], *, full: bool) -> list[Run]:
        """Runs by id, in the order given, with params, tags and latest metrics.

        Bulk-fetches one query per table; ``full`` adds system info, datasets
        and artifacts (search results leave them out to stay fast).
        """
        if not ids:
            return []
        st = self.store
        ids_sql, ids_param = st.any_of("{col}", ids)
        system = ", r.system" if full else ""
        rows = st.query(
            conn,
            "SELECT r.id, r.experiment_id, e.name, r.name, r.status, r.start_time, r.end_time, r.parent_run_id, "
            f"r.user, r.host, r.git_commit, r.git_dirty{system} FROM runs r JOIN experiments e ON r.experiment_id = e.id "
            "WHERE " + ids_sql.format(col="r.id"),
            ids_param,
        )
        params: dict[str, dict[str, Any]] = defaultdict(dict)
        for run_id, key, value, kind in st.query(
            conn, "SELECT run_id, key, value, kind FROM params WHERE " + ids_sql.format(col="run_id"), ids_param
        ):
            params[run_id][key] = value if kind == "str" else _decode_json_param(value)
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        for run_id, key, value in st.query(
            conn, "SELECT run_id, key, value FROM tags WHERE " + ids_sql.format(col="run_id"), ids_param
        ):
            tags[run_id][key] = value
        metrics: dict[str, dict[str, Metric]] = defaultdict(dict)
        for run_id, key, value, special, step, ts in st.query(
            conn,
            "SELECT run_id, key, value, special, step, timestamp FROM latest_metrics WHERE " + ids_sql.format(col="run_id"),
            ids_param,
        ):
            metrics[run_id][key] = Metric(key, value if special is None else _SPECIAL[special], step, ts)
        datasets: dict[str, list[DatasetRef]] = defaultdict(list)
        artifacts: dict[str, list[ArtifactInfo]] = defaultdict(list)
        if full:
            d = t.run_datasets.c
            for ds in conn.execute(sa.select(t.run_datasets).where(d.run_id.in_(ids)).order_by(d.id)):
                datasets[ds.run_id].append(DatasetRef(ds.name, ds.digest, ds.path, ds.context, ds.num_rows, ds.schema))
            a = t.run_artifacts.c
            for ar in conn.execute(sa.select(t.run_artifacts).where(a.run_id.in_(ids)).order_by(a.path)):
                artifacts[ar.run_id].append(ArtifactInfo(ar.path, ar.sha256, ar.size, ar.created_at))
        empty: dict[str, Any] = {}
        by_id = {}
        for row in rows:
            rid = row[0]
            by_id[rid] = Run(
                rid, row[1], row[2], row[3], _STATUSES[row[4]], row[5], row[6], row[7], row[8], row[9], row[10],
                None if row[11] is None else bool(row[11]), _json_column(row[12]) if full else empty, params.get(rid, {}), tags.get(rid, {}),
                metrics.get(rid, {}), datasets.get(rid, []), artifacts.get(rid, []),
            )
        return [by_id[i] for i in ids if i in by_id]

    def get_artifact(self, run_id: str, path: str) -> ArtifactInfo | None:
        a = t.run_artifacts.c
        with self.store.read() as conn:
            row = conn.execute(sa.select(t.run_artifacts).where(a.run_id == run_id, a.path == path)).first()
        return None if row is None else ArtifactInfo(row.path, row.sha256, row.size, row.created_at)

    # -- search --------------------------------------------------------------------

    def _condition(self, node: Node) -> Any:
        if isinstance(node, And):
            return sa.and_(*(self._condition(n) for n in node.items))
        if isinstance(node, Or):
            return sa.or_(*(self._condition(n) for n in node.items))
        if isinstance(node, Not):
            return sa.not_(self._condition(node.item))
        return self._compare(node)

    def _op(self, col: Any, op: str, value: Any) -> Any:
        if op == "like" and self.store.dialect == "sqlite":
            # SQLite's LIKE ignores ASCII case, PostgreSQL's does not; GLOB keeps
            # ``like`` case-sensitive on both (``ilike`` is the insensitive one)
            return col.op("GLOB")(_like_to_glob(value))
        match op:
            case "=":
                return col == value
            case "!=":
                return col != value
            case "<":
                return col < value
            case "<=":
                return col <= value
            case ">":
                return col > value
            case ">=":
                return col >= value
            case "like":
                return col.like(value)
            case "ilike":
                return col.ilike(value)
            case "in":
                return col.in_(value)
            case "notin":
                return col.not_in(value)
        raise FilterSyntaxError(f"unsupported operator {op!r}")

    def _compare(self, c: Compare) -> Any:
        runs_id = t.runs.c.id
        if c.entity == "attr":
            col = t.runs.c[c.key]
            value = c.value
            if c.key == "status":
                value = tuple(v.lower() for v in value) if isinstance(value, tuple) else str(value).lower()
            if c.op == "isnull":
                return col.is_(None)
            if c.op == "notnull":
                return col.is_not(None)
            return self._op(col, c.op, value)
        table = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}[c.entity]
        base = sa.select(sa.literal(1)).where(table.c.run_id == runs_id, table.c.key == c.key)
        if c.op == "isnull":
            return ~sa.exists(base)
        if c.op == "notnull":
            return sa.exists(base)
        return sa.exists(base.where(self._op(table.c.value, c.op, c.value)))

    def search(
        self,
        experiment_ids: Iterable[int] | None,
        node: Node | None,
        order: list[OrderKey],
        offset: int,
        limit: int,
    ) -> tuple[list[Run], int]:
        r = t.runs
        q = sa.select(r.c.id)
        conds = []
        if experiment_ids is not None:
            conds.append(r.c.experiment_id.in_(list(experiment_ids)))
        if node is not None:
            conds.append(self._condition(node))
        if conds:
            q = q.where(*conds)
        count_q = sa.select(sa.func.count()).select_from(q.subquery())
        order_cols = []
        for i, key in enumerate(order):
            if key.entity == "attr":
                col = r.c[key.key]
            else:
                table = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}[key.entity]
                alias = table.alias(f"o{i}")
                q = q.outerjoin(alias, sa.and_(alias.c.run_id == r.c.id, alias.c.key == key.key))
                col = alias.c.value
            order_cols.append((col.desc() if key.descending else col.asc()).nulls_last())
        order_cols += [r.c.start_time.desc(), r.c.id.asc()]
        q = q.order_by(*order_cols).offset(offset).limit(limit)
        with self.store.read() as conn:
            ids = list(conn.execute(q).scalars().all())
            total = conn.execute(count_q).scalar_one() if (offset or len(ids) >= limit) else offset + len(ids)
            runs = self._load(conn, ids, full=False)
        return runs, int(total)

    def experiment_ids(self, names: Iterable[str]) -> list[int]:
        names = list(names)
        with self.store.read() as conn:
            rows = conn.execute(sa.select(t.experiments.c.id, t.experiments.c.name).where(t.experiments.c.name.in_(names))).all()
        found = {row.name: row.id for row in rows}
        missing = [n for n in names if n not in found]
        if missing:
            raise ExperimentNotFoundError(
                f"experiment(s) {', '.join(map(repr, missing))} do not exist; "
                "list them with `loopml runs list` or create one with start_run(experiment=...)",
                names=missing,
            )
        return [found[n] for n in names]
