"""Materialization: the latest value per entity, as of ``end``, into the online store — incrementally.

The rule (also in ``docs/features.md``):

* Per view and online store, the metadata database keeps a *watermark*:
  the newest event time processed. A run reads only source rows with an
  event time after the watermark and at or before ``end``, takes the latest
  per entity, and writes an entity only when its row changed (a newer event
  time, or new values at the same time).
* Late-arriving rows — rows with an event time at or before the watermark
  that were not there last time — are found by source:

  - parquet files: each file's size and mtime are recorded; a **new file is
    read in full** (every row up to ``end``), so late rows that arrive in new
    files are merged (an older late row never overwrites a newer stored one);
    a changed or removed file makes the run a full rebuild.
  - dataset versions and ``sql:`` sources: the number of rows at or before
    the watermark is recorded; when it changes, the run is a full rebuild.

* A full rebuild (first run, changed definition, online store wiped or
  swapped, ``end`` earlier than last time, or the cases above) recomputes
  every entity as of ``end`` and still writes only the rows that differ.
* TTL: a value older than ``end - ttl`` is not written; an entity whose
  newest value expires by ``end`` is deleted from the online store.

Entities that vanish from a source entirely keep their last online row.
Two materializations of one view should not run at the same time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.core import new_id
from loopml.features._keys import key_encoder
from loopml.features._offline import ts_us_expr
from loopml.features._source import FILE_COL, SEQ_COL, Source, quote, resolve_source, sql_str, wrap_duckdb
from loopml.features.models import spec_digest

if TYPE_CHECKING:
    import duckdb

    from loopml.features._sql import SqlFeatureRepository
    from loopml.features.online import OnlineStore
    from loopml.storage.base import Backend

__all__ = ["STATE_VIEW", "materialize_view", "mat_digest"]

#: the online store's own record of what was materialized (one row per view)
STATE_VIEW = "__loopml_state__"
_SHIFT = "CAST('18446744073709551616' AS HUGEINT)"
_WRITE_CHUNK = 10_000

Progress = Callable[[str, int, int], None]


def mat_digest(spec: dict[str, Any]) -> str:
    """What the online rows of a view depend on (its definition minus free text)."""
    return spec_digest(spec, exclude=("description",))


def us_to_iso(us: int | None) -> str | None:
    if us is None:
        return None
    from datetime import UTC, datetime, timedelta

    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat()


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities as None, as they come back from the online store's JSON."""
    for k, v in row.items():
        if type(v) is float and (v != v or v in (math.inf, -math.inf)):
            row[k] = None
    return row


def _scalar(con: duckdb.DuckDBPyConnection, query: str, doing: str) -> Any:
    import duckdb

    try:
        found = con.sql(query).fetchall()
    except duckdb.Error as e:
        raise wrap_duckdb(e, doing) from None
    return found[0][0] if found else None


def materialize_view(
    *,
    con: duckdb.DuckDBPyConnection,
    repo: SqlFeatureRepository,
    online: OnlineStore,
    backend: Backend,
    project_dir: Path,
    row: dict[str, Any],
    end_us: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Materialize one view (``row``: its stored definition) as of ``end_us``; returns its counts."""
    import duckdb

    started = time.perf_counter()
    spec: dict[str, Any] = row["spec"]
    name, version = spec["name"], int(row["version"])
    keys: list[str] = list(spec["join_keys"])
    ttl_us: int | None = spec.get("ttl_us")
    digest = mat_digest(spec)
    source: Source = resolve_source(spec["source"], backend, project_dir)
    ts = ts_us_expr(spec["timestamp"], spec["timestamp_type"])
    prev = repo.get_state(name, online.identity)
    marker = online.read_rows(STATE_VIEW, [name])[0]
    prev_state: dict[str, Any] = prev["state"] if prev else {}
    watermark: int | None = prev["watermark_us"] if prev else None

    reason: str | None = None
    if prev is None:
        reason = "first materialization to this online store"
    elif marker is None or marker.get("token") != prev_state.get("token"):
        reason = "the online store does not hold the last materialization (wiped or replaced)"
    elif prev_state.get("digest") != digest:
        reason = f"the view's definition changed (v{prev['view_version']} -> v{version})"
    elif end_us < prev["end_us"]:
        reason = f"end is before the last materialization's end ({us_to_iso(prev['end_us'])})"
    elif prev_state.get("source", {}).get("kind") != source.kind:
        reason = "the view's source changed kind"

    new_files: list[int] = []
    rows_at_watermark: int | None = None
    if reason is None:
        before = prev_state["source"]
        if source.kind == "parquet":
            old: dict[str, list[int]] = before.get("files", {})
            now: dict[str, list[int]] = source.fingerprint["files"]
            changed = [f for f, fp in old.items() if now.get(f) != fp]
            if changed:
                reason = f"{len(changed)} source file(s) changed or were removed (e.g. {changed[0]})"
            else:
                new_files = [i for i, f in enumerate(source.files) if f not in old]
        elif watermark is not None and (source.kind == "sql" or before.get("fingerprint") != source.fingerprint):
            rows_at_watermark = int(_scalar(
                con, f"SELECT count(*) FROM {source.relation} WHERE {ts} <= {watermark}", f"counting rows of view {name!r}"
            ) or 0)
            if rows_at_watermark != before.get("rows_at_watermark"):
                reason = (f"the source has {rows_at_watermark} rows at or before the watermark, "
                          f"{before.get('rows_at_watermark')} last time (late-arriving or removed data)")
        else:
            rows_at_watermark = before.get("rows_at_watermark")
    full = reason is not None

    # candidates: rows to merge (after the watermark, or in new files) up to end
    cands = [f"{ts} <= {end_us}"]
    if not full and watermark is not None:
        newer = [f"{ts} > {watermark}"]
        if new_files:
            newer.append(f"{FILE_COL} IN ({', '.join(map(str, new_files))})")
        cands.append(f"({' OR '.join(newer)})")
    cand = " AND ".join(cands)
    # stale: entities that may be stored but have no valid value as of end — those whose value expires
    # between the last end and this one, or (a rebuild) those with rows only after end. One scan finds both.
    stale: str | None = None
    if not full and prev is not None and ttl_us is not None and end_us > prev["end_us"]:
        stale = f"{ts} >= {prev['end_us'] - ttl_us} AND {ts} < {end_us - ttl_us}"
    elif full and marker is not None:
        stale = f"{ts} > {end_us}"
    struct = ", ".join([f"'__ts': {ts}"] + [
        f"{sql_str(f['name'])}: CAST({quote(f['name'])} AS {_duck(f['dtype'])})" for f in spec["features"]
    ])
    key_cols = ", ".join(quote(k) for k in keys)
    not_null = " AND ".join(f"{quote(k)} IS NOT NULL" for k in keys)
    order = f"CAST({ts} AS HUGEINT) * {_SHIFT} + {SEQ_COL}"
    if stale is None:
        query = (f"SELECT {key_cols}, arg_max({{{struct}}}, {order}) AS r, count(*) AS n, false AS stale "
                 f"FROM {source.relation} WHERE {not_null} AND {cand} GROUP BY {key_cols}")
    else:
        query = (f"SELECT {key_cols}, arg_max({{{struct}}}, {order}) FILTER (WHERE {cand}) AS r, "
                 f"count(*) FILTER (WHERE {cand}) AS n, bool_or({stale}) AS stale "
                 f"FROM {source.relation} WHERE {not_null} AND (({cand}) OR ({stale})) GROUP BY {key_cols}")
    try:
        latest = con.sql(query).to_arrow_table()
    except duckdb.Error as e:
        raise wrap_duckdb(e, f"reading view {name!r} from {source.text!r}") from None

    import pyarrow.compute as pc

    scanned = int(pc.sum(latest.column("n")).as_py() or 0)
    encode = key_encoder(name, keys, spec.get("key_types", {}))
    key_values = [latest.column(k).to_pylist() for k in keys]
    rows: list[dict[str, Any] | None] = latest.column("r").to_pylist()
    stale_flags: list[bool | None] = latest.column("stale").to_pylist()
    cutoff = end_us - ttl_us if ttl_us is not None else None
    valid: dict[str, dict[str, Any]] = {}
    expired: set[str] = set()
    newest = watermark if not full else None
    for i, r in enumerate(rows):
        k = encode([kv[i] for kv in key_values])
        if k is None:
            continue
        if r is None or (cutoff is not None and r["__ts"] < cutoff):
            if r is not None or stale_flags[i]:
                expired.add(k)
        else:
            valid[k] = _clean(r)
        if r is not None and (newest is None or r["__ts"] > newest):
            newest = r["__ts"]

    write_keys: list[str] = []
    write_rows: list[dict[str, Any] | None] = []
    unchanged = deleted = 0
    if marker is None:
        # nothing to trust in the online store for this view: start clean
        online.drop(name)
        write_keys = list(valid)
        write_rows = list(valid.values())
    else:
        check = list(valid) + [k for k in expired if k not in valid]
        stored: list[dict[str, Any] | None] = []
        for i in range(0, len(check), _WRITE_CHUNK * 5):
            stored.extend(online.read_rows(name, check[i:i + _WRITE_CHUNK * 5]))
        for k, s in zip(check, stored, strict=True):
            c = valid.get(k)
            if c is not None:
                if s is None or (c != s and (full or c["__ts"] >= s["__ts"])):
                    write_keys.append(k)
                    write_rows.append(c)
                else:
                    unchanged += 1
            elif s is not None and (full or (cutoff is not None and s["__ts"] < cutoff)):
                write_keys.append(k)
                write_rows.append(None)
                deleted += 1
    total = len(write_keys)
    if progress is not None:
        progress(name, 0, total)
    for i in range(0, total, _WRITE_CHUNK):
        online.write_rows(name, write_keys[i:i + _WRITE_CHUNK], write_rows[i:i + _WRITE_CHUNK])
        if progress is not None:
            progress(name, min(i + _WRITE_CHUNK, total), total)

    if source.kind != "parquet":
        rows_at_watermark = scanned + (0 if full or rows_at_watermark is None else rows_at_watermark)
    token = new_id()
    online.write_rows(STATE_VIEW, [name], [{"token": token, "version": version, "end_us": end_us,
                                             "watermark_us": newest}])
    source_state: dict[str, Any] = {"kind": source.kind, "fingerprint": source.fingerprint if source.kind != "parquet" else None,
                                    "files": source.fingerprint.get("files", {}), "rows_at_watermark": rows_at_watermark}
    result = {
        "view": name, "version": version, "mode": "full" if full else "incremental", "reason": reason,
        "rows_scanned": scanned, "entities": len(valid), "written": total - deleted, "deleted": deleted,
        "unchanged": unchanged, "new_files": len(new_files),
        "watermark": us_to_iso(newest), "end": us_to_iso(end_us),
        "seconds": round(time.perf_counter() - started, 4),
    }
    repo.save_state(name, online.identity, view_version=version, watermark_us=newest, end_us=end_us,
                    state={"token": token, "digest": digest, "source": source_state, "last": result})
    return result


def _duck(dtype: str) -> str:
    from loopml.features.models import DTYPES

    return DTYPES[dtype]
