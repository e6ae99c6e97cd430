"""Helpers shared by the benchmark scripts (run as ``python bench/<script>.py``)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["fmt_time", "machine_load"]


def machine_load() -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    try:
        one = os.getloadavg()[0]
    except (OSError, AttributeError):
        return {"cpus": cpus, "loadavg_1m": None, "busy": False}
    return {"cpus": cpus, "loadavg_1m": one, "busy": one > 0.5 * cpus}


def fmt_time(s: float | None) -> str:
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"
