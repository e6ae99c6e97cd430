"""Triggers and the scheduler: pipelines that start themselves.

A trigger starts a pipeline on a cron schedule (``cron``), when a dataset
gets a new version (``dataset``), or when an event of a kind is appended to
the event stream (``event``, e.g. ``alert.raised`` from monitoring).

The scheduler's state lives in the metadata store, so it survives restarts:

* each trigger keeps a cursor (the last scheduled time, dataset version or
  event id it handled);
* each firing is a row keyed by (trigger, what fired) with a unique
  constraint, inserted together with the cursor move — two schedulers
  running at once cannot fire the same thing twice, and a restart neither
  repeats nor skips a firing;
* a firing whose run did not start (the scheduler died in between) is
  started by the next round;
* a lease row lets one scheduler at a time do the work; the others wait
  for the lease to expire.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from loopml.config import Settings
from loopml.core import new_id, now_ms
from loopml.errors import AlreadyExistsError, ConflictError, InvalidInputError, LoopmlError, NotFoundError, StoreError
from loopml.storage import _schema as t
from loopml.storage import get_service
from loopml.storage.base import Backend
from loopml.storage.events import DATASET_VERSION_CREATED, last_event_id, read_events

logger = logging.getLogger(__name__)

__all__ = ["Firing", "Scheduler", "Trigger", "TriggerService", "get_triggers"]

KINDS = ("cron", "dataset", "event")
LEASE = "scheduler"
NOT_STARTED = "not-started"  # run_id of a firing whose pipeline refused to start (logged)


@dataclass(frozen=True)
class Trigger:
    id: int
    name: str
    pipeline: str
    kind: str
    spec: str
    params: dict[str, Any]
    enabled: bool
    cursor: str | None
    created_at: int


@dataclass(frozen=True)
class Firing:
    trigger: str
    fire_key: str
    run_id: str | None
    status: str | None


def _check_cron(spec: str) -> None:
    from croniter import croniter

    if not croniter.is_valid(spec):
        raise InvalidInputError(
            f"cron expression {spec!r} is invalid; use five fields: minute hour day-of-month month day-of-week, "
            "e.g. '0 6 * * 1' (Mondays at 06:00 UTC)",
            spec=spec,
        )


def _firing_run_id(label: str) -> str:
    """The pipeline run id of a firing: derived from it, so a run starts at most once per firing."""
    return hashlib.sha256(label.encode()).hexdigest()[:32]


def _row(r: Any) -> Trigger:
    return Trigger(r.id, r.name, r.pipeline, r.kind, r.spec, r.params or {}, bool(r.enabled), r.cursor, r.created_at)


class TriggerService:
    """Saving and listing triggers, over one :class:`~loopml.storage.Backend`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.store = backend.metadata

    def add(self, name: str, pipeline: str, kind: str, spec: str, params: dict[str, Any] | None = None) -> Trigger:
        """Save a trigger; it fires for what happens from now on.

        Raises:
            InvalidInputError: an unknown kind or an invalid cron expression.
            AlreadyExistsError: a trigger of this name exists.
        """
        if kind not in KINDS:
            raise InvalidInputError(f"trigger kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
        if not name or not pipeline or not spec:
            raise InvalidInputError("a trigger needs a name, a pipeline and a spec")
        if kind == "cron":
            _check_cron(spec)
            cursor: str | None = str(now_ms())
        elif kind == "dataset":
            cursor = str(self._latest_dataset_version(spec))
        else:
            cursor = str(last_event_id(self.store))
        with self.store.write() as conn:
            exists = conn.execute(sa.select(t.triggers.c.id).where(t.triggers.c.name == name)).first()
            if exists is not None:
                raise AlreadyExistsError(f"a trigger called {name!r} exists; remove it first or pick another name")
            conn.execute(t.triggers.insert().values(
                name=name, pipeline=pipeline, kind=kind, spec=spec, params=params or {}, enabled=True,
                cursor=cursor, created_at=now_ms(),
            ))
        return self.get(name)

    def _latest_dataset_version(self, dataset: str) -> int:
        v = t.dataset_versions.c
        with self.store.read() as conn:
            return int(conn.execute(sa.select(sa.func.max(v.version)).where(v.name == dataset)).scalar() or 0)

    def get(self, name: str) -> Trigger:
        with self.store.read() as conn:
            r = conn.execute(sa.select(t.triggers).where(t.triggers.c.name == name)).first()
        if r is None:
            raise NotFoundError(f"no trigger called {name!r}; see `loopml trigger list`", name=name)
        return _row(r)

    def list_all(self) -> list[Trigger]:
        with self.store.read() as conn:
            return [_row(r) for r in conn.execute(sa.select(t.triggers).order_by(t.triggers.c.name))]

    def remove(self, name: str) -> None:
        self.get(name)
        with self.store.write() as conn:
            conn.execute(t.triggers.delete().where(t.triggers.c.name == name))

    def set_enabled(self, name: str, enabled: bool) -> None:
        self.get(name)
        with self.store.write() as conn:
            conn.execute(t.triggers.update().where(t.triggers.c.name == name).values(enabled=enabled))

    def firings(self, name: str) -> list[Firing]:
        trig = self.get(name)
        f, r = t.trigger_firings.c, t.pipeline_runs.c
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(f.fire_key, f.run_id, r.status)
                .select_from(t.trigger_firings.outerjoin(t.pipeline_runs, r.id == f.run_id))
                .where(f.trigger_id == trig.id).order_by(f.id)
            ).all()
        return [Firing(name, x.fire_key, x.run_id, x.status) for x in rows]

    def next_fire_time(self, trig: Trigger) -> int | None:
        """For a cron trigger, the next scheduled time (ms) after its cursor."""
        if trig.kind != "cron":
            return None
        from croniter import croniter

        base = datetime.fromtimestamp(int(trig.cursor or now_ms()) / 1000, tz=UTC)
        return int(croniter(trig.spec, base).get_next(datetime).timestamp() * 1000)


def get_triggers(settings: Settings | None = None) -> TriggerService:
    return get_service("triggers", TriggerService, settings)


class Scheduler:
    """Evaluates triggers from the store and starts the pipelines they name.

    Args:
        settings: the project.
        pipelines: name -> Pipeline (default: discovered from ``loopml.toml``).
        holder: this scheduler's identity in the lease (default: host and pid).
        lease_seconds: how long a lease lasts without renewal.
        clock: milliseconds now (tests pass a fake clock).
    """

    def __init__(self, settings: Settings, *, pipelines: dict[str, Any] | None = None, holder: str | None = None,
                 lease_seconds: float = 30.0, clock: Callable[[], int] = now_ms) -> None:
        self.settings = settings
        self.triggers = get_triggers(settings)
        self.store = self.triggers.store
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{new_id()[:6]}"
        self.lease_ms = int(lease_seconds * 1000)
        self.clock = clock
        self._pipelines = pipelines

    def _acquire_lease(self) -> bool:
        now = self.clock()
        lease = t.leases.c
        try:
            with self.store.write() as conn:
                row = conn.execute(sa.select(t.leases).where(lease.name == LEASE).with_for_update()).first()
                if row is not None and row.holder != self.holder and row.expires_at > now:
                    return False
                if row is None:
                    conn.execute(t.leases.insert().values(name=LEASE, holder=self.holder, expires_at=now + self.lease_ms))
                else:
                    conn.execute(t.leases.update().where(lease.name == LEASE)
                                 .values(holder=self.holder, expires_at=now + self.lease_ms))
            return True
        except StoreError:
            return False  # another scheduler created the lease row at the same moment

    def release(self) -> None:
        with self.store.write() as conn:
            conn.execute(t.leases.delete().where(t.leases.c.name == LEASE, t.leases.c.holder == self.holder))

    def _due(self, trig: Trigger) -> list[tuple[str, str, dict[str, Any]]]:
        """(fire_key, new cursor, extra params) for each firing due now, oldest first."""
        due: list[tuple[str, str, dict[str, Any]]] = []
        if trig.kind == "cron":
            from croniter import croniter

            base = datetime.fromtimestamp(int(trig.cursor or self.clock()) / 1000, tz=UTC)
            it = croniter(trig.spec, base)
            now = self.clock()
            for _ in range(1000):
                nxt = int(it.get_next(datetime).timestamp() * 1000)
                if nxt > now:
                    break
                due.append((f"cron:{nxt}", str(nxt), {}))
            if len(due) > 1:  # a scheduler that was down fires a missed schedule once, not once per slot
                due = due[-1:]
        elif trig.kind == "dataset":
            after = int(trig.cursor or 0)
            events = read_events(self.store, kind=DATASET_VERSION_CREATED, subject=trig.spec)
            for ev in events:
                v = int(ev.payload.get("version", 0))
                if v > after:
                    due.append((f"dataset:{v}", str(v), {"dataset_uri": ev.payload.get("uri")}))
                    after = v
        else:
            for ev in read_events(self.store, kind=trig.spec, after_id=int(trig.cursor or 0)):
                due.append((f"event:{ev.id}", str(ev.id), {"event_id": ev.id, "event_subject": ev.subject}))
        return due

    def _claim(self, trig: Trigger, fire_key: str, cursor: str) -> bool:
        """Record the firing and move the cursor in one transaction; False if it was already recorded."""
        try:
            with self.store.write() as conn:
                conn.execute(t.trigger_firings.insert().values(trigger_id=trig.id, fire_key=fire_key, run_id=None,
                                                              fired_at=self.clock()))
                conn.execute(t.triggers.update().where(t.triggers.c.id == trig.id).values(cursor=cursor))
            return True
        except StoreError as e:
            text = str(e).lower()
            if "unique" in text or "duplicate" in text:
                return False
            raise

    def _pipeline(self, name: str) -> Any:
        if self._pipelines is None:
            from loopml.pipelines.discovery import discover

            self._pipelines = discover(self.settings)
        pipe = self._pipelines.get(name)
        if pipe is None:
            raise NotFoundError(f"trigger names pipeline {name!r}, which is not defined in the project")
        return pipe

    def _start(self, trig: Trigger, fire_key: str, extra: dict[str, Any]) -> str | None:
        label = f"trigger:{trig.name}:{fire_key}"
        try:
            pipe = self._pipeline(trig.pipeline)
        except NotFoundError as e:
            logger.error("%s", e)
            return None
        params = dict(trig.params)
        known = set(pipe.params) | {i for s in pipe.steps.values() for i in s.inputs}
        params.update({k: v for k, v in extra.items() if k in known})
        try:
            run_id = str(pipe.run(settings=self.settings, trigger=label, run_id=_firing_run_id(label), **params).id)
        except ConflictError:
            return None  # another scheduler started this firing's run
        except LoopmlError as e:  # e.g. a trigger parameter the pipeline does not know
            logger.error("trigger %s could not start pipeline %s: %s", trig.name, trig.pipeline, e)
            run_id = NOT_STARTED
        f = t.trigger_firings.c
        with self.store.write() as conn:
            conn.execute(t.trigger_firings.update().where(f.trigger_id == trig.id, f.fire_key == fire_key)
                         .values(run_id=run_id))
        return None if run_id == NOT_STARTED else run_id

    def _unstarted(self) -> list[tuple[Trigger, str]]:
        """Firings recorded but never started (the scheduler stopped in between)."""
        f, r = t.trigger_firings.c, t.pipeline_runs.c
        with self.store.read() as conn:
            rows = conn.execute(sa.select(f.trigger_id, f.fire_key).where(f.run_id.is_(None))).all()
            out = []
            for trig_id, key in rows:
                row = conn.execute(sa.select(t.triggers).where(t.triggers.c.id == trig_id)).first()
                if row is None:
                    continue
                trig = _row(row)
                started = conn.execute(
                    sa.select(r.id).where(r.id == _firing_run_id(f"trigger:{trig.name}:{key}"))
                ).first()
                if started is None:
                    out.append((trig, key))
        return out

    def run_once(self) -> list[Firing]:
        """One round: take the lease, fire what is due, start what a previous round left unstarted."""
        if not self._acquire_lease():
            return []
        fired: list[Firing] = []
        for trig, key in self._unstarted():
            run_id = self._start(trig, key, {})
            if run_id is not None:
                fired.append(Firing(trig.name, key, run_id, None))
        for trig in self.triggers.list_all():
            if not trig.enabled:
                continue
            for key, cursor, extra in self._due(trig):
                if self._claim(trig, key, cursor):
                    run_id = self._start(trig, key, extra)
                    if run_id is not None:
                        fired.append(Firing(trig.name, key, run_id, None))
        return fired

    def run_forever(self, interval: float = 5.0, *, on_round: Callable[[list[Firing]], None] | None = None) -> None:
        """Evaluate triggers every ``interval`` seconds until interrupted."""
        try:
            while True:
                fired = self.run_once()
                if on_round is not None:
                    on_round(fired)
                time.sleep(interval)
        finally:
            self.release()
