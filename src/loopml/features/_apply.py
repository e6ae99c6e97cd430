"""Checking definitions and turning them into stored specs.

Every problem of one ``apply`` is collected, so the error lists them all.
Sources are checked through their schema only (parquet footers, a query's
plan): the timestamp column must be a date/time, join keys and features
must exist, and each feature's declared type must fit its column.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import sysconfig
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import LoopmlError
from loopml.features._offline import is_temporal
from loopml.features._source import describe, resolve_source
from loopml.features.models import DTYPES, NAME, Entity, FeatureView, Field, OnDemandFeature, spec_digest

if TYPE_CHECKING:
    import duckdb

    from loopml.storage.base import Backend

__all__ = ["Planned", "plan_apply"]

_INTS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
         "UHUGEINT")
_FITS: dict[str, tuple[str, ...]] = {
    "float": ("DOUBLE", "FLOAT", "REAL", "DECIMAL", *_INTS),
    "int": _INTS,
    "string": ("VARCHAR", "ENUM"),
    "bool": ("BOOLEAN",),
}
KINDS = {Entity: "entity", FeatureView: "view", OnDemandFeature: "on_demand"}


def fits(dtype: str, duck_type: str) -> bool:
    """True when a column of ``duck_type`` can be read as feature type ``dtype``."""
    t = duck_type.upper()
    return any(t == ok or t.startswith(ok + "(") for ok in _FITS.get(dtype, ()))


@dataclass
class Planned:
    """What ``apply`` will store: (kind, name, digest, spec) per object, plus on-demand function bytes."""

    items: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)  # artifact key -> pickled function
    functions: dict[str, Any] = field(default_factory=dict)  # fn sha256 -> the function object
    problems: list[str] = field(default_factory=list)


def _check_name(what: str, name: Any, problems: list[str]) -> bool:
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(
            f"{what} name {name!r} is invalid: use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
        return False
    return True


def _is_user_module(module: Any) -> bool:
    path = getattr(module, "__file__", None)
    if not path:
        return bool(module.__name__ == "__main__")
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return not any(str(path).startswith(r) for r in roots if r)


def _pickle_fn(fn: Any) -> bytes:
    """The function, pickled by value when it lives in the user's code (so serving processes need not import it)."""
    import cloudpickle

    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    by_value = module is not None and module.__name__ != "__main__" and _is_user_module(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return bytes(cloudpickle.dumps(fn))
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


def _fn_source(fn: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None


def _entity_spec(e: Entity, problems: list[str]) -> dict[str, Any] | None:
    ok = _check_name("entity", e.name, problems)
    keys = e.join_keys
    if not keys:
        problems.append(f"entity {e.name!r} has no join keys; name the column(s) that identify one {e.name}, "
                        f"e.g. Entity({e.name!r}, join_keys=('{e.name}_id',))")
        ok = False
    elif not all(isinstance(k, str) and k for k in keys):
        problems.append(f"entity {e.name!r}: join keys must be non-empty column names, got {list(keys)!r}")
        ok = False
    elif len(set(keys)) != len(keys):
        problems.append(f"entity {e.name!r} lists a join key twice: {list(keys)!r}")
        ok = False
    if not ok:
        return None
    return {"name": e.name, "join_keys": list(keys), "description": e.description or ""}


def _view_spec(v: FeatureView, entities: dict[str, dict[str, Any]], backend: Backend, project_dir: Path,
               con: duckdb.DuckDBPyConnection, problems: list[str]) -> dict[str, Any] | None:
    before = len(problems)
    where = f"view {v.name!r}"
    _check_name("feature view", v.name, problems)
    join_keys: list[str] = []
    if not v.entities:
        problems.append(f"{where} names no entities; pass entities=('driver',) with the entities it describes")
    for ename in v.entities:
        ent = entities.get(ename) if isinstance(ename, str) else None
        if ent is None:
            known = ", ".join(sorted(entities)) or "none"
            problems.append(f"{where} uses unknown entity {ename!r}; apply the Entity first or with the view (known: {known})")
            continue
        join_keys += [k for k in ent["join_keys"] if k not in join_keys]
    if not isinstance(v.timestamp, str) or not v.timestamp:
        problems.append(f"{where} needs timestamp=, the source's event-time column")
    ttl_us: int | None = None
    if v.ttl is not None:
        if not isinstance(v.ttl, timedelta):
            problems.append(f"{where}: ttl must be a datetime.timedelta or None, got {type(v.ttl).__name__}")
        elif v.ttl <= timedelta(0):
            problems.append(f"{where}: ttl must be positive, got {v.ttl}; use None for values that never expire")
        else:
            ttl_us = v.ttl // timedelta(microseconds=1)
    if not v.features:
        problems.append(f"{where} declares no features")
    seen: set[str] = set()
    for f in v.features:
        if not isinstance(f, Field):
            problems.append(f"{where}: features must be Field(name, dtype) objects, got {f!r}")
            continue
        if not isinstance(f.name, str) or not f.name or f.name.startswith("__"):
            problems.append(f"{where}: feature name {f.name!r} is invalid (non-empty, not starting with '__')")
        elif f.name in seen:
            problems.append(f"{where} declares feature {f.name!r} twice")
        elif f.name in join_keys or f.name == v.timestamp:
            problems.append(f"{where}: {f.name!r} is a join key or the timestamp column, not a feature")
        seen.add(f.name)
        if f.dtype not in DTYPES:
            problems.append(f"{where}: feature {f.name!r} has dtype {f.dtype!r}; use one of {', '.join(DTYPES)}")
    if len(problems) > before:
        return None
    try:
        source = resolve_source(v.source, backend, project_dir)
        schema = describe(con, source)
    except LoopmlError as e:
        problems.append(f"{where}: {e.message}")
        return None
    cols = ", ".join(f"{c} {t}" for c, t in list(schema.items())[:12]) + (" ..." if len(schema) > 12 else "")
    ts_type = schema.get(v.timestamp)
    if ts_type is None:
        problems.append(f"{where}: the source {v.source!r} has no timestamp column {v.timestamp!r} (columns: {cols})")
    elif not is_temporal(ts_type):
        problems.append(f"{where}: timestamp column {v.timestamp!r} is {ts_type}, not a date or timestamp")
    missing_keys = [k for k in join_keys if k not in schema]
    if missing_keys:
        problems.append(f"{where}: the source {v.source!r} has no join key column(s) {missing_keys} (columns: {cols})")
    for f in v.features:
        t = schema.get(f.name)
        if t is None:
            problems.append(f"{where}: the source {v.source!r} has no column {f.name!r} for feature {f.name!r} (columns: {cols})")
        elif not fits(f.dtype, t):
            problems.append(f"{where}: feature {f.name!r} is declared {f.dtype!r} but the source column is {t}")
    if len(problems) > before:
        return None
    return {
        "name": v.name, "entities": list(v.entities), "join_keys": join_keys,
        "key_types": {k: schema[k] for k in join_keys}, "source": v.source.strip(), "timestamp": v.timestamp,
        "timestamp_type": ts_type, "features": [{"name": f.name, "dtype": f.dtype} for f in v.features],
        "ttl_us": ttl_us, "description": v.description or "",
    }


def _on_demand_spec(o: OnDemandFeature, views: dict[str, dict[str, Any]], planned: Planned) -> dict[str, Any] | None:
    problems = planned.problems
    before = len(problems)
    where = f"on-demand feature {o.name!r}"
    _check_name("on-demand feature", o.name, problems)
    if not callable(o.fn):
        problems.append(f"{where}: fn must be a function of a DataFrame, got {type(o.fn).__name__}")
    if o.dtype not in DTYPES:
        problems.append(f"{where} has dtype {o.dtype!r}; use one of {', '.join(DTYPES)}")
    if not o.inputs:
        problems.append(f"{where} has no inputs; list 'view:feature' references or request fields")
    names: set[str] = set()
    for ref in o.inputs:
        if not isinstance(ref, str) or not ref:
            problems.append(f"{where}: input {ref!r} must be 'view:feature' or a request field name")
            continue
        view, sep, feat = ref.partition(":")
        short = feat if sep else ref
        if short in names:
            problems.append(f"{where}: two inputs are called {short!r}; the function could not tell them apart")
        names.add(short)
        if sep:
            spec = views.get(view)
            if spec is None:
                problems.append(f"{where}: input {ref!r} names unknown view {view!r}")
            elif feat not in {f["name"] for f in spec["features"]}:
                problems.append(f"{where}: input {ref!r}: view {view!r} has no feature {feat!r}")
    if len(problems) > before:
        return None
    data = _pickle_fn(o.fn)
    sha = hashlib.sha256(data).hexdigest()
    key = f"features/on_demand/{sha}.pkl"
    planned.blobs[key] = data
    planned.functions[sha] = o.fn
    return {
        "name": o.name, "inputs": list(o.inputs), "dtype": o.dtype,
        "fn": {"name": getattr(o.fn, "__qualname__", type(o.fn).__name__), "source": _fn_source(o.fn),
               "blob": key, "sha256": sha},
    }


def plan_apply(objects: Sequence[Any], stored: dict[tuple[str, str], dict[str, Any]], backend: Backend,
               project_dir: Path, con: duckdb.DuckDBPyConnection) -> Planned:
    """Validate ``objects`` against each other and the ``stored`` latest specs; build what to store."""
    planned = Planned()
    problems = planned.problems
    by_kind: dict[str, dict[str, Any]] = {"entity": {}, "view": {}, "on_demand": {}}
    for obj in objects:
        kind = KINDS.get(type(obj))
        if kind is None:
            problems.append(f"cannot apply {type(obj).__name__} {obj!r}: expected Entity, FeatureView or OnDemandFeature")
            continue
        other = by_kind[kind].get(obj.name)
        if other is not None and other != obj:
            problems.append(f"two different {kind.replace('_', '-')} definitions are called {obj.name!r}")
            continue
        by_kind[kind][obj.name] = obj
    entities = {n: r["spec"] for (k, n), r in stored.items() if k == "entity"}
    for e in by_kind["entity"].values():
        spec = _entity_spec(e, problems)
        if spec is not None:
            entities[e.name] = spec
            planned.items.append(("entity", e.name, spec_digest(spec), spec))
    views = {n: r["spec"] for (k, n), r in stored.items() if k == "view"}
    for v in by_kind["view"].values():
        spec = _view_spec(v, entities, backend, project_dir, con, problems)
        if spec is not None:
            views[v.name] = spec
            planned.items.append(("view", v.name, spec_digest(spec), spec))
    for o in by_kind["on_demand"].values():
        spec = _on_demand_spec(o, views, planned)
        if spec is not None:
            fn = spec["fn"]
            code = fn["source"] if fn["source"] is not None else fn["sha256"]
            body = {"name": spec["name"], "inputs": spec["inputs"], "dtype": spec["dtype"], "code": code}
            planned.items.append(("on_demand", o.name, spec_digest(body), spec))
    return planned
