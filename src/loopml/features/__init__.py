"""Features: entities, feature views and on-demand features declared in Python; an offline
store with point-in-time-correct training sets (DuckDB); an online store for serving
(SQLite by default, Redis for teams); incremental materialization; skew checks.

Owns the ``feature_definitions`` and ``feature_materializations`` records, the
``features/`` area of the artifact store (pickled on-demand functions) and the
online store.

Example::

    from datetime import timedelta
    from loopml.features import Entity, FeatureView, Field, get_feature_store

    driver = Entity("driver", join_keys=("driver_id",))
    stats = FeatureView("driver_stats", entities=("driver",), source="data/driver_stats/*.parquet",
                        timestamp="event_timestamp", ttl=timedelta(days=30),
                        features=(Field("trips_today", "int"), Field("rating", "float")))
    fs = get_feature_store()
    fs.apply([driver, stats])
    train = fs.get_training_set(entity_df, ["driver_stats:*"])     # Arrow, point-in-time correct
    fs.materialize()
    fs.get_online_features([{"driver_id": 7}], ["driver_stats:rating"])   # {"rating": [4.9]}
"""

from __future__ import annotations

import threading

from loopml.config import Settings, load_settings
from loopml.features.discovery import load_definitions
from loopml.features.models import DTYPES, Entity, FeatureView, Field, OnDemandFeature
from loopml.features.online import OnlineStore, RedisOnlineStore, SqliteOnlineStore, open_online_store
from loopml.features.service import FeatureStore

__all__ = [
    "DTYPES",
    "Entity",
    "FeatureStore",
    "FeatureView",
    "Field",
    "OnDemandFeature",
    "OnlineStore",
    "RedisOnlineStore",
    "SqliteOnlineStore",
    "get_feature_store",
    "load_definitions",
    "open_online_store",
    "reset",
]

_lock = threading.Lock()
_used: set[str] = set()


def get_feature_store(settings: Settings | None = None) -> FeatureStore:
    """The process-wide :class:`FeatureStore` for ``settings`` (default: the project's), cached.

    One store per project and online store, so its cached definitions, DuckDB
    database and online-store connections are shared by every caller.
    """
    from loopml.storage import get_service

    settings = settings or load_settings()
    # the online store is part of the identity: one project may be served from SQLite and Redis
    name = f"features|{settings.features_online_store}"
    with _lock:
        _used.add(name)
    resolved = settings
    return get_service(name, lambda backend: FeatureStore(backend, settings=resolved), settings)


def reset() -> None:
    """Forget (and close) cached feature stores (tests, or after changing settings)."""
    from loopml.storage import reset_services

    with _lock:
        names = list(_used)
        _used.clear()
    for name in names:
        reset_services(name)
