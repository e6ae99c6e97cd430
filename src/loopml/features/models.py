"""Feature definitions declared in Python: entities, feature views and on-demand features.

Objects are plain frozen dataclasses; nothing is checked or stored until
:meth:`~loopml.features.FeatureStore.apply`, which validates them together
(so one error message can list every problem) and stores each as a numbered
version. A stored definition is a JSON *spec*; :func:`view_from_spec` turns
one back into a :class:`FeatureView`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "DTYPES",
    "Entity",
    "FeatureView",
    "Field",
    "OnDemandFeature",
    "spec_digest",
    "view_from_spec",
]

#: feature types a definition may declare, and the DuckDB type each is read as
DTYPES: dict[str, str] = {"float": "DOUBLE", "int": "BIGINT", "string": "VARCHAR", "bool": "BOOLEAN"}

#: names of entities, views and on-demand features: no ':' or '@' (they separate refs), no leading '_'
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True)
class Entity:
    """Something features describe (a driver, a customer), identified by its join key columns.

    Attributes:
        name: the entity's name, referenced by feature views.
        join_keys: the columns that identify one entity, in sources and entity rows alike.
        description: free text.
    """

    name: str
    join_keys: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "join_keys", _as_tuple(self.join_keys))


@dataclass(frozen=True)
class Field:
    """One feature column of a view: its name in the source and its type.

    ``dtype`` is one of ``"float"``, ``"int"``, ``"string"``, ``"bool"``.
    """

    name: str
    dtype: str


@dataclass(frozen=True)
class FeatureView:
    """Features of one or more entities, read from one source with an event-timestamp column.

    Attributes:
        name: the view's name; features are referenced as ``"name:feature"``.
        entities: names of the entities the view describes (their join keys key the view).
        source: ``"datasets:/name[/N|@alias]"`` (a dataset version), a parquet file, folder or
            glob (relative to the project folder), or ``"sql:SELECT ..."`` (a DuckDB query).
        timestamp: the event-timestamp column of the source.
        features: the feature columns.
        ttl: how long a value stays valid after its event time (None: forever).
        description: free text.
    """

    name: str
    entities: tuple[str, ...]
    source: str
    timestamp: str
    features: tuple[Field, ...]
    ttl: timedelta | None = None
    description: str = ""

    def __post_init__(self) -> None:
        ents = tuple(e.name if isinstance(e, Entity) else e for e in _as_tuple(self.entities))
        object.__setattr__(self, "entities", ents)
        object.__setattr__(self, "features", _as_tuple(self.features))

    def feature(self, name: str) -> Field | None:
        for f in self.features:
            if f.name == name:
                return f
        return None


@dataclass(frozen=True)
class OnDemandFeature:
    """A feature computed from other features (``"view:feature"``) and request fields when it is read.

    ``fn`` receives a DataFrame with one column per input, named by the input's
    feature name (the part after ``view:``) or request field, and returns one
    value per row. It runs after the point-in-time join in training sets and
    after the lookup online, so both paths share one definition.
    """

    name: str
    inputs: tuple[str, ...]
    fn: Callable[[pd.DataFrame], pd.Series | np.ndarray]
    dtype: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", _as_tuple(self.inputs))


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(value)
    return (value,)


def spec_digest(spec: dict[str, Any], *, exclude: Iterable[str] = ()) -> str:
    """sha256 of a spec's canonical JSON, without the keys in ``exclude``."""
    skip = set(exclude)
    body = {k: v for k, v in spec.items() if k not in skip}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def view_from_spec(spec: dict[str, Any]) -> FeatureView:
    """The :class:`FeatureView` a stored view spec describes."""
    ttl_us = spec.get("ttl_us")
    return FeatureView(
        name=spec["name"],
        entities=tuple(spec["entities"]),
        source=spec["source"],
        timestamp=spec["timestamp"],
        features=tuple(Field(f["name"], f["dtype"]) for f in spec["features"]),
        ttl=None if ttl_us is None else timedelta(microseconds=ttl_us),
        description=spec.get("description") or "",
    )
