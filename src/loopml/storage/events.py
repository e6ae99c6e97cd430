"""The event stream: facts one part records so that others can react to them.

New dataset versions, alerts raised by monitoring and deployment changes are
appended here; the pipeline scheduler reads them to fire triggers. Events are
append-only and ordered by id, so a reader keeps the last id it handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from loopml.core import now_ms
from loopml.storage import _schema as t
from loopml.storage.base import MetadataStore

__all__ = ["DATASET_VERSION_CREATED", "Event", "emit", "last_event_id", "read_events"]

DATASET_VERSION_CREATED = "dataset.version_created"


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    subject: str | None
    payload: dict[str, Any]
    created_at: int


def emit(store: MetadataStore, kind: str, *, subject: str | None = None, payload: dict[str, Any] | None = None) -> int:
    """Append an event; returns its id."""
    with store.write() as conn:
        res = conn.execute(
            t.events.insert().values(kind=kind, subject=subject, payload=payload or {}, created_at=now_ms())
        )
        key = res.inserted_primary_key
        assert key is not None
        return int(key[0])


def read_events(store: MetadataStore, *, kind: str | None = None, subject: str | None = None, after_id: int = 0,
                limit: int = 1000) -> list[Event]:
    """Events after ``after_id``, oldest first, optionally of one kind and subject."""
    e = t.events.c
    q = sa.select(t.events).where(e.id > after_id)
    if kind is not None:
        q = q.where(e.kind == kind)
    if subject is not None:
        q = q.where(e.subject == subject)
    with store.read() as conn:
        rows = conn.execute(q.order_by(e.id).limit(limit)).all()
    return [Event(r.id, r.kind, r.subject, r.payload or {}, r.created_at) for r in rows]


def last_event_id(store: MetadataStore) -> int:
    """The newest event id (0 when there is none)."""
    with store.read() as conn:
        return int(conn.execute(sa.select(sa.func.max(t.events.c.id))).scalar() or 0)
