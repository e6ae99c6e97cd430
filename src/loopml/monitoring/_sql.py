"""SQL of the monitoring records: evaluation runs, metric series, alerts (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from loopml.errors import NotFoundError
from loopml.monitoring.alerts import Alert
from loopml.monitoring.evaluate import WindowResult
from loopml.storage import _schema as t
from loopml.storage.base import MetadataStore

__all__ = ["SqlMonitorRepository"]


def _alert(row: Any) -> Alert:
    m = row._mapping
    return Alert(id=m["id"], rule=m["rule"], deployment=m["deployment"], state=m["state"], opened_at=m["opened_at"],
                 last_fired_at=m["last_fired_at"], resolved_at=m["resolved_at"], value=m["value"],
                 message=m["message"], details=m["details"] or {})


class SqlMonitorRepository:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    # -- evaluations -----------------------------------------------------------------

    def record(self, result: WindowResult, created_at: int) -> int:
        """Store one evaluation and its metric points in one transaction; returns the run id."""
        with self.store.write() as conn:
            res = conn.execute(t.monitor_runs.insert().values(
                deployment=result.deployment, window_start=result.window_start, window_end=result.window_end,
                status=result.status, summary=result.summary, created_at=created_at,
            ).returning(t.monitor_runs.c.id))
            run_id = int(res.scalar_one())
            rows = [{"run_id": run_id, "deployment": result.deployment, "metric": p.metric, "column": p.column,
                     "value": p.value, "flag": p.flag, "window_end": result.window_end} for p in result.points]
            if rows:
                conn.execute(t.monitor_metrics.insert(), rows)
        return run_id

    def runs(self, deployment: str, limit: int = 50) -> list[dict[str, Any]]:
        r = t.monitor_runs.c
        with self.store.read() as conn:
            rows = conn.execute(sa.select(t.monitor_runs).where(r.deployment == deployment)
                                .order_by(r.window_end.desc(), r.id.desc()).limit(limit)).all()
        return [dict(x._mapping) for x in rows]

    def get_run(self, run_id: int) -> dict[str, Any]:
        with self.store.read() as conn:
            row = conn.execute(sa.select(t.monitor_runs).where(t.monitor_runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"monitoring run {run_id} does not exist")
        return dict(row._mapping)

    def series(self, deployment: str, metric: str, column: str | None = None, *, since: int | None = None,
               limit: int = 10_000) -> list[dict[str, Any]]:
        """``[{window_end, value, flag, column}]`` oldest first; ``column=None`` gives the table-level series,
        ``column="*"`` every column's."""
        m = t.monitor_metrics.c
        q = sa.select(m.window_end, m.value, m.flag, m.column).where(m.deployment == deployment, m.metric == metric)
        if column == "*":
            pass
        elif column is None:
            q = q.where(m.column.is_(None))
        else:
            q = q.where(m.column == column)
        if since is not None:
            q = q.where(m.window_end >= since)
        with self.store.read() as conn:
            rows = conn.execute(q.order_by(m.window_end.desc(), m.id.desc()).limit(limit)).all()
        return [dict(x._mapping) for x in reversed(rows)]

    def last_values(self, deployment: str, metric: str, column: str | None, n: int) -> list[float]:
        """The metric's last ``n`` non-null values, newest first."""
        m = t.monitor_metrics.c
        q = sa.select(m.value).where(m.deployment == deployment, m.metric == metric, m.value.is_not(None))
        q = q.where(m.column.is_(None) if column is None else m.column == column)
        with self.store.read() as conn:
            return [float(v) for v in conn.execute(q.order_by(m.window_end.desc(), m.id.desc()).limit(n)).scalars()]

    def deployments(self) -> list[str]:
        with self.store.read() as conn:
            return list(conn.execute(sa.select(t.monitor_runs.c.deployment).distinct()).scalars())

    # -- alerts --------------------------------------------------------------------------

    def open_alert(self, rule: str, deployment: str) -> Alert | None:
        a = t.alerts.c
        with self.store.read() as conn:
            row = conn.execute(sa.select(t.alerts).where(a.rule == rule, a.deployment == deployment,
                                                         a.state == "firing")).first()
        return None if row is None else _alert(row)

    def open(self, rule: str, deployment: str, now: int, value: float | None, message: str,
             details: dict[str, Any]) -> int:
        """Open an alert; if another monitor opened the same one meanwhile, return that one."""
        try:
            with self.store.write() as conn:
                res = conn.execute(t.alerts.insert().values(
                    rule=rule, deployment=deployment, state="firing", opened_at=now, last_fired_at=now,
                    resolved_at=None, value=value, message=message, details=details,
                ).returning(t.alerts.c.id))
                return int(res.scalar_one())
        except IntegrityError:
            existing = self.open_alert(rule, deployment)
            assert existing is not None
            return existing.id

    def refire(self, alert_id: int, now: int, value: float | None, message: str, details: dict[str, Any]) -> None:
        with self.store.write() as conn:
            conn.execute(t.alerts.update().where(t.alerts.c.id == alert_id)
                         .values(last_fired_at=now, value=value, message=message, details=details))

    def touch(self, alert_id: int, value: float | None) -> None:
        with self.store.write() as conn:
            conn.execute(t.alerts.update().where(t.alerts.c.id == alert_id).values(value=value))

    def resolve(self, alert_id: int, now: int) -> None:
        with self.store.write() as conn:
            conn.execute(t.alerts.update().where(t.alerts.c.id == alert_id, t.alerts.c.state == "firing")
                         .values(state="resolved", resolved_at=now))

    def get_alert(self, alert_id: int) -> Alert:
        with self.store.read() as conn:
            row = conn.execute(sa.select(t.alerts).where(t.alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFoundError(f"alert {alert_id} does not exist")
        return _alert(row)

    def alerts(self, deployment: str | None = None, *, state: str | None = None, limit: int = 200) -> list[Alert]:
        a = t.alerts.c
        q = sa.select(t.alerts)
        if deployment is not None:
            q = q.where(a.deployment == deployment)
        if state is not None:
            q = q.where(a.state == state)
        with self.store.read() as conn:
            return [_alert(r) for r in conn.execute(q.order_by(a.opened_at.desc(), a.id.desc()).limit(limit))]
