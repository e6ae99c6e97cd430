"""Small shared helpers: ids, time and JSON-safe values."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

__all__ = ["format_ms", "new_id", "now_ms"]


def now_ms() -> int:
    """Milliseconds since the epoch (UTC)."""
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """A new random 32-hex-digit id."""
    return uuid.uuid4().hex


def format_ms(ms: int | None) -> str:
    """``2026-11-23 16:24:34`` (UTC) for a millisecond timestamp, ``-`` for None."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
