"""Helpers shared by the feature-store tests (importable, unlike conftest.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.config import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"
_ROOT_CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"


def service_unavailable(request: pytest.FixtureRequest, service: str, problem: str) -> None:
    """The suite's ``service_unavailable`` (tests/conftest.py): skip, or fail under LOOPML_REQUIRE_SERVICES=1."""
    for plugin in request.config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == _ROOT_CONFTEST:
            plugin.service_unavailable(service, problem)
    raise AssertionError("tests/conftest.py is not loaded")


def redis_url(request: pytest.FixtureRequest) -> str:
    """The test Redis server's URL (skips or fails the test when it is unreachable)."""
    try:
        import redis
    except ImportError as e:
        service_unavailable(request, "Redis", f"the redis client is not installed ({e})")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as e:
        service_unavailable(request, f"Redis at {REDIS_URL}", str(e))
    return REDIS_URL



def random_features(rng: np.random.Generator, *, entities: int, rows: int, start: str = "2024-01-01",
                    days: int = 60, key: str = "driver_id", string_keys: bool = False) -> pd.DataFrame:
    """Feature rows with unique (entity, timestamp) pairs, in random order."""
    base = pd.Timestamp(start)
    ids = rng.integers(0, entities, rows)
    seconds = rng.choice(days * 86_400, size=rows, replace=False)  # distinct times: no ties
    frame = pd.DataFrame({
        key: [f"d{i}" for i in ids] if string_keys else ids.astype("int64"),
        "event_timestamp": base + pd.to_timedelta(seconds, unit="s"),
        "x": rng.normal(size=rows),
        "n": rng.integers(0, 1000, rows).astype("int64"),
        "flag": rng.random(rows) < 0.5,
        "label_text": [f"t{v}" for v in rng.integers(0, 5, rows)],
    })
    return frame


def with_settings(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
