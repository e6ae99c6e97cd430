"""Fixtures for the feature store: data writers, a store per online backend (SQLite, real Redis)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from features_helpers import REDIS_URL, redis_url

from loopml.config import Settings


def _reset() -> None:
    from loopml import data, features, registry, storage

    features.reset()
    registry.reset()
    data.reset()
    storage.reset_backends()


def _drop_redis_keys(settings: Settings) -> None:
    import redis

    from loopml.features.online import project_prefix

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=project_prefix(settings) + "*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture(params=["sqlite", "redis"])
def online_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """An embedded project whose online store is SQLite, then Redis."""
    if request.param == "redis":
        s = Settings.for_dir(tmp_path, features_online_store=redis_url(request))
    else:
        s = Settings.for_dir(tmp_path)
    yield s
    _reset()
    if request.param == "redis":
        _drop_redis_keys(s)


@pytest.fixture
def fs_settings(tmp_path: Path) -> Iterator[Settings]:
    """An embedded project (SQLite metadata and online store)."""
    s = Settings.for_dir(tmp_path)
    yield s
    _reset()


@pytest.fixture
def write_parquet() -> Callable[..., Path]:
    """Write a DataFrame (or Arrow table) to a parquet file, creating folders."""

    def write(path: Path, frame: pd.DataFrame | pa.Table, **kwargs: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, path, **kwargs)
        return path

    return write
