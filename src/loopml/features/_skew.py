"""Training/serving skew: online values against point-in-time offline values for a sample of entities."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopml.features._keys import key_encoder
from loopml.features._materialize import us_to_iso
from loopml.features._offline import ViewJoin, point_in_time_join, ts_us_expr
from loopml.features._source import Source, quote, wrap_duckdb
from loopml.features.models import DTYPES

if TYPE_CHECKING:
    import duckdb

    from loopml.features.online import OnlineStore

__all__ = ["compare_online_offline", "same_value"]

MAX_DETAILS = 100


def same_value(a: Any, b: Any, tolerance: float) -> bool:
    """Equal values; floats within ``tolerance`` (relative); null and NaN equal each other (JSON has no NaN)."""
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=tolerance, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return bool(a == b)


def compare_online_offline(*, con: duckdb.DuckDBPyConnection, online: OnlineStore, source: Source,
                           spec: dict[str, Any], version: int, at_us: int, sample: int,
                           tolerance: float) -> dict[str, Any]:
    """Sample up to ``sample`` entities with rows at or before ``at_us``, join them offline as of
    ``at_us``, read them online, and list where the two disagree (see ``FeatureStore.check_skew``)."""
    import duckdb

    name = spec["name"]
    keys: list[str] = spec["join_keys"]
    ts = ts_us_expr(spec["timestamp"], spec["timestamp_type"])
    key_cols = ", ".join(quote(k) for k in keys)
    try:
        sampled = con.sql(
            f"SELECT * FROM (SELECT DISTINCT {key_cols} FROM {source.relation} WHERE {ts} <= {at_us} AND "
            f"{' AND '.join(quote(k) + ' IS NOT NULL' for k in keys)}) "
            f"USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE (7)"
        ).to_arrow_table()
    except duckdb.Error as e:
        raise wrap_duckdb(e, f"sampling entities of view {name!r}") from None
    feats = [f["name"] for f in spec["features"]]
    dtypes = {f["name"]: f["dtype"] for f in spec["features"]}
    offline_cols: dict[str, list[Any]] = {f: [] for f in feats}
    if sampled.num_rows:
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=at_us)
        entities = sampled.append_column("__loopml_at", pa.array([at] * sampled.num_rows, pa.timestamp("us", "UTC")))
        join = ViewJoin(source, tuple(keys), (spec["timestamp"], spec["timestamp_type"]),
                        tuple((f, f"__loopml_f{j}", DTYPES[dtypes[f]]) for j, f in enumerate(feats)),
                        spec.get("ttl_us"))
        offline = point_in_time_join(con, entities, "__loopml_at", [join])
        offline_cols = {f: offline.column(f"__loopml_f{j}").to_pylist() for j, f in enumerate(feats)}
    encode = key_encoder(name, keys, spec.get("key_types", {}))
    key_values = [sampled.column(k).to_pylist() for k in keys]
    entity_keys = [{k: key_values[i][r] for i, k in enumerate(keys)} for r in range(sampled.num_rows)]
    encoded = [encode([e[k] for k in keys]) for e in entity_keys]
    found = iter(online.read_rows(name, [k for k in encoded if k is not None]) if encoded else [])
    online_rows = [None if k is None else next(found) for k in encoded]
    mismatches: list[dict[str, Any]] = []
    mismatched = missing = bad_entities = 0
    for r, entity in enumerate(entity_keys):
        stored = online_rows[r]
        off = {f: offline_cols[f][r] for f in feats}
        if stored is None and any(not same_value(v, None, tolerance) for v in off.values()):
            missing += 1
        wrong = False
        for f in feats:
            on_value = None if stored is None else stored.get(f)
            if not same_value(off[f], on_value, tolerance):
                mismatched += 1
                wrong = True
                if len(mismatches) < MAX_DETAILS:
                    mismatches.append({"entity": entity, "feature": f, "offline": off[f], "online": on_value})
        bad_entities += wrong
    return {
        "view": name, "version": version, "at": us_to_iso(at_us), "store": online.identity,
        "entities": len(entity_keys), "features": len(feats), "compared": len(entity_keys) * len(feats),
        "mismatched": mismatched, "mismatched_entities": bad_entities, "missing_online": missing,
        "mismatches": mismatches,
    }
