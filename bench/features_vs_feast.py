#!/usr/bin/env python
"""loopml's feature store vs Feast 0.6x (file and DuckDB offline stores) and bare DuckDB / SQLite (the limit).

Usage (from the repository root)::

    .venv/bin/python bench/features_vs_feast.py --quick       # 100,000 feature rows, under a minute once the venv exists
    .venv/bin/python bench/features_vs_feast.py               # 1,000,000 feature rows, 100,000 entity rows
    .venv/bin/python bench/features_vs_feast.py --json bench/results/features.json

How it works: this script (run with the loopml venv's interpreter) makes sure the Feast venv
exists (``bench/.venvs/feast`` with ``feast[duckdb]``), writes a feature view of 10 float64
features (N entities x 100 timestamps over 200 days; numpy, fixed seed) to a parquet file and an
entity frame (entity id + event timestamp, with rows before the entity's first feature row,
after its TTL, exactly on the TTL boundary, exactly on a feature timestamp, and duplicate
pairs) to another, computes the expected answer with ``pandas.merge_asof(direction="backward",
by="driver_id", tolerance=30 days)``, then re-invokes itself once per side, one process after
the other so that they never compete for the CPU:

* ``--side limit``        (this interpreter): DuckDB's ``ASOF LEFT JOIN`` over the parquet file with the
  TTL as a ``CASE`` on the matched timestamp; materialisation = ``arg_max`` per entity into a SQLite
  table with the entity id as its primary key; online = one ``SELECT ... WHERE driver_id = ?`` / ``IN (...)``;
* ``--side loopml``       (this interpreter): ``loopml.features`` (``get_training_set``, ``materialize``,
  ``get_online_features``), SQLite online store (its default);
* ``--side feast-duckdb`` and ``--side feast-file`` (the Feast venv): a Feast repo in a temporary
  folder (``feature_store.yaml`` + ``FeatureStore(repo_path=...).apply([...])``) with the DuckDB or the
  file (Dask) offline store and a SQLite online store: ``get_historical_features(...).to_df()``,
  ``materialize(start, end)``, ``get_online_features(...).to_dict()``.

Each side imports its library, applies the definitions, reads the entity frame (untimed), runs one
point-in-time join on the first 1,000 entity rows (untimed warm-up), times ``reps`` joins of the whole
frame (median), writes the last result to parquet (untimed; the parent compares it with the
reference), times one materialisation, then times single-entity and 100-entity online lookups one
call at a time (after a few untimed ones) and reports p50 / p99.

The last line printed is always ``SPEEDUP min=<x> (<which>)``: the smallest Feast-time / loopml-time
ratio over the point-in-time join (vs Feast's faster store), the online p99 for 1 entity and the
online p99 for 100 entities (vs Feast's lower p99), or ``SPEEDUP min=n/a (loopml features not
available)`` while ``loopml.features`` does not exist (the other sides still run).

Side code uses only the standard library, numpy, pandas, pyarrow and the library under test,
because the Feast venv has neither loopml nor this script's parent dependencies.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (  # bench/ is on sys.path when a script runs
    PROGRESS_PREFIX,
    ensure_peer_venv,
    fmt_time,
    machine_load,
    make_console,
    print_failure,
    run_child,
    venv_python,
)

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
SEED = 20240923
DAY = 86_400
TTL_DAYS = 30
SPAN_DAYS = 200
TIMESTAMPS = 100  # feature rows per entity
FEATURES = [f"f{i}" for i in range(10)]
REFS = [f"stats:{f}" for f in FEATURES]
BATCH = 100  # entities per multi-entity online lookup
WARMUP_ROWS = 1_000  # entity rows of the untimed warm-up join
WARMUP_SINGLE, WARMUP_BATCH = 20, 3  # untimed online lookups before the timed ones

#: sizes and repetitions: entities x TIMESTAMPS feature rows; entity rows; timed joins per side; online lookups
MODES: dict[str, dict[str, int]] = {
    "full": {"entities": 10_000, "entity_rows": 100_000, "reps": 5, "feast_reps": 3, "feast_file_reps": 2,
             "lookups": 2_000, "batches": 300},
    "quick": {"entities": 1_000, "entity_rows": 10_000, "reps": 3, "feast_reps": 2, "feast_file_reps": 1,
              "lookups": 300, "batches": 50},
}
#: the special entity rows, as shares of the entity frame (the rest fall between the entity's first
#: feature row and the end of the data); duplicates are copies of other rows (same entity and timestamp)
SHARES: dict[str, float] = {"before_first": 0.05, "ttl_expired": 0.01, "ttl_boundary": 0.005, "exact": 0.01,
                            "duplicate": 0.01}
KIND_LABELS = {"normal": "between the first feature row and the end", "before_first": "before the entity's first "
               "feature row (expect nulls)", "ttl_expired": f"more than {TTL_DAYS} days after its last feature row "
               "(expect nulls)", "ttl_boundary": f"exactly {TTL_DAYS} days after its last feature row (expect values)",
               "exact": "exactly on one of its feature timestamps", "duplicate": "copies of other rows (same entity "
               "and timestamp)"}

#: targets for loopml (printed as met / not met; they do not change the exit status)
TARGET_VS_FEAST_DUCKDB = 5.0  # point-in-time join at least this many times faster than Feast's DuckDB store
TARGET_VS_LIMIT = 2.0  # point-in-time join at most this multiple of the bare DuckDB ASOF join
TARGET_ONLINE_1 = 3.0  # online p99 for 1 entity at least this many times lower than Feast's
TARGET_ONLINE_100 = 6.0  # online p99 for 100 entities at least this many times lower than Feast's

PEER = {
    "requirements": ["feast[duckdb]>=0.60,<1", "pandas", "pyarrow"],
    "probe": "import feast, duckdb, ibis, pandas, pyarrow; print(feast.__version__)",
    "major": "0",
}
FEAST_STORES = {"feast-duckdb": "duckdb", "feast-file": "file"}
SIDE_NAMES = ["limit", "loopml", *FEAST_STORES]
LABELS = {"limit": "DuckDB ASOF / SQLite (limit)", "loopml": "loopml", "feast-duckdb": "Feast, DuckDB store",
          "feast-file": "Feast, file store"}


# =============================================================================
# The side process: one tool's half, results as JSON. No rich, no loopml outside the loopml side.
# =============================================================================


def progress(desc: str, frac: float) -> None:
    print(PROGRESS_PREFIX + json.dumps({"desc": desc, "frac": min(frac, 1.0)}), flush=True)


def pick(result: dict[str, Any], feature: str) -> Any:
    """A feature's list in an online answer, whatever the tool calls its key."""
    for key in (feature, f"stats:{feature}", f"stats__{feature}"):
        if key in result:
            return result[key]
    raise KeyError(f"{feature} is not in the online answer (keys: {sorted(result)[:15]})")


def rows_of(result: dict[str, Any], n: int) -> list[list[float | None]]:
    """An online answer (feature -> list over the requested entities) as one list of 10 values per entity."""
    cols = [list(pick(result, f)) for f in FEATURES]
    if any(len(c) != n for c in cols):
        raise ValueError(f"an online answer has {[len(c) for c in cols]} values per feature for {n} entities")
    return [[None if c[i] is None else float(c[i]) for c in cols] for i in range(n)]


class LimitSide:
    """The physical limit: DuckDB's ASOF LEFT JOIN over the parquet file; a SQLite table keyed by entity id."""

    tool = "DuckDB / SQLite"

    def setup(self, plan: dict[str, Any], workdir: Path) -> None:
        import sqlite3

        import duckdb
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa, self.pq, self.sqlite3 = pa, pq, sqlite3
        self.version = f"duckdb {duckdb.__version__}, sqlite {sqlite3.sqlite_version}"
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")  # interval arithmetic on TIMESTAMPTZ follows the session zone
        self.path = plan["features_path"].replace("'", "''")
        self.db_path = workdir / "limit-online.db"
        cols = ", ".join(f"CASE WHEN f.event_timestamp >= e.event_timestamp - INTERVAL {TTL_DAYS} DAY THEN f.{c} END "
                         f"AS {c}" for c in FEATURES)
        self.pit_sql = (f"SELECT e.row_id, e.driver_id, e.event_timestamp, {cols} FROM entity_df e "
                        f"ASOF LEFT JOIN read_parquet('{self.path}') f "
                        "ON e.driver_id = f.driver_id AND e.event_timestamp >= f.event_timestamp ORDER BY e.row_id")

    def apply(self) -> None:
        pass

    def load_entities(self, path: Path) -> Any:
        return self.pq.read_table(path)  # driver_id, event_timestamp, row_id

    def head(self, entities: Any, n: int) -> Any:
        return entities.slice(0, n)

    def pit(self, entities: Any) -> Any:
        self.con.register("entity_df", entities)
        try:
            return self.con.sql(self.pit_sql).to_arrow_table()
        finally:
            self.con.unregister("entity_df")

    def to_arrow(self, result: Any) -> Any:
        return result

    def extra(self, reps: int) -> dict[str, Any]:
        """Informational: how long reading the feature file alone takes (all columns into Arrow)."""
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            self.con.sql(f"SELECT * FROM read_parquet('{self.path}')").to_arrow_table()
            times.append(time.perf_counter() - t0)
        return {"read_features_seconds": statistics.median(times)}

    def materialize(self) -> None:
        latest = ", ".join(f"arg_max({c}, event_timestamp)" for c in FEATURES)
        rows = self.con.sql(f"SELECT driver_id, {latest} FROM read_parquet('{self.path}') GROUP BY driver_id").fetchall()
        self.db_path.unlink(missing_ok=True)
        db = self.sqlite3.connect(self.db_path, check_same_thread=False)
        db.execute(f"CREATE TABLE stats (driver_id INTEGER PRIMARY KEY, {', '.join(f'{c} REAL' for c in FEATURES)})")
        with db:
            db.executemany(f"INSERT INTO stats VALUES (?, {', '.join('?' for _ in FEATURES)})", rows)
        self.db = db
        self.one_sql = f"SELECT {', '.join(FEATURES)} FROM stats WHERE driver_id = ?"
        self.many_sql: dict[int, str] = {}

    def online(self, entity_rows: list[dict[str, int]]) -> dict[str, list[Any]]:
        if len(entity_rows) == 1:
            row = self.db.execute(self.one_sql, (entity_rows[0]["driver_id"],)).fetchone()
            return {c: [None if row is None else row[i]] for i, c in enumerate(FEATURES)}
        n = len(entity_rows)
        sql = self.many_sql.get(n)
        if sql is None:
            sql = self.many_sql[n] = (f"SELECT driver_id, {', '.join(FEATURES)} FROM stats "
                                      f"WHERE driver_id IN ({', '.join('?' for _ in range(n))})")
        keys = [r["driver_id"] for r in entity_rows]
        found = {r[0]: r[1:] for r in self.db.execute(sql, keys)}
        missing = (None,) * len(FEATURES)
        got = [found.get(k, missing) for k in keys]
        return {c: [g[i] for g in got] for i, c in enumerate(FEATURES)}


class LoopmlSide:
    tool = "loopml"

    def setup(self, plan: dict[str, Any], workdir: Path) -> None:
        import pandas as pd
        import pyarrow as pa

        import loopml
        from loopml.config import Settings
        from loopml.features import Entity, FeatureView, Field, get_feature_store

        self.pd, self.pa = pd, pa
        self.version = loopml.__version__
        self.plan = plan
        self.Entity, self.FeatureView, self.Field = Entity, FeatureView, Field
        project = workdir / "loopml-project"
        project.mkdir()
        self.store = get_feature_store(Settings.for_dir(project))

    def apply(self) -> None:
        self.store.apply([
            self.Entity("driver", ("driver_id",)),
            self.FeatureView("stats", entities=("driver",), source=self.plan["features_path"],
                             timestamp="event_timestamp", features=tuple(self.Field(f, "float") for f in FEATURES),
                             ttl=timedelta(days=TTL_DAYS)),
        ])

    def load_entities(self, path: Path) -> Any:
        return self.pd.read_parquet(path, columns=["driver_id", "event_timestamp"])

    def head(self, entities: Any, n: int) -> Any:
        return entities.iloc[:n]

    def pit(self, entities: Any) -> Any:
        return self.store.get_training_set(entities, REFS, timestamp="event_timestamp")

    def to_arrow(self, result: Any) -> Any:
        if isinstance(result, self.pa.Table):
            return result
        return self.pa.Table.from_pandas(result, preserve_index=False)

    def materialize(self) -> None:
        self.store.materialize()

    def online(self, entity_rows: list[dict[str, int]]) -> dict[str, list[Any]]:
        return self.store.get_online_features(entity_rows, REFS)


class FeastSide:
    """Feast with one offline store and a SQLite online store, set up the way its docs do: a repo folder with
    ``feature_store.yaml``, definitions applied with ``FeatureStore.apply``."""

    tool = "Feast"

    def __init__(self, offline: str) -> None:
        self.offline = offline

    def setup(self, plan: dict[str, Any], workdir: Path) -> None:
        import feast
        import pandas as pd
        import pyarrow as pa
        from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
        from feast.types import Float64

        self.pd, self.pa = pd, pa
        self.version = f"{feast.__version__} (pandas {pd.__version__})"
        self.plan = plan
        repo = workdir / f"feast-{self.offline}"
        repo.mkdir()
        (repo / "feature_store.yaml").write_text(
            "project: bench\n"
            f"registry: {repo / 'registry.db'}\n"
            "provider: local\n"
            "online_store:\n"
            "  type: sqlite\n"
            f"  path: {repo / 'online.db'}\n"
            "offline_store:\n"
            f"  type: {self.offline}\n"
            "entity_key_serialization_version: 3\n")
        self.store = FeatureStore(repo_path=str(repo))
        driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
        source = FileSource(name="stats_source", path=plan["features_path"], timestamp_field="event_timestamp")
        view = FeatureView(name="stats", entities=[driver], ttl=timedelta(days=TTL_DAYS),
                           schema=[Field(name=f, dtype=Float64) for f in FEATURES], source=source, online=True)
        self.objects = [driver, view]

    def apply(self) -> None:
        self.store.apply(self.objects)

    def load_entities(self, path: Path) -> Any:
        # row_id rides along (Feast keeps extra columns) because Feast returns the rows in its own order
        return self.pd.read_parquet(path)

    def head(self, entities: Any, n: int) -> Any:
        return entities.iloc[:n]

    def pit(self, entities: Any) -> Any:
        return self.store.get_historical_features(entity_df=entities, features=REFS).to_df()

    def to_arrow(self, result: Any) -> Any:
        return self.pa.Table.from_pandas(result, preserve_index=False)

    def materialize(self) -> None:
        start = datetime.fromtimestamp(self.plan["start"] - DAY, tz=UTC)
        self.store.materialize(start_date=start, end_date=datetime.now(UTC))

    def online(self, entity_rows: list[dict[str, int]]) -> dict[str, list[Any]]:
        return self.store.get_online_features(features=REFS, entity_rows=entity_rows).to_dict()


def make_side(name: str) -> Any:
    if name == "limit":
        return LimitSide()
    if name == "loopml":
        return LoopmlSide()
    return FeastSide(FEAST_STORES[name])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile with linear interpolation (numpy's default)."""
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def timed_lookups(side: Any, requests: list[list[dict[str, int]]], label: str, frac0: float,
                  frac1: float) -> dict[str, Any]:
    times: list[float] = []
    answers: list[Any] = []
    clock = time.perf_counter
    every = max(len(requests) // 10, 1)
    for i, req in enumerate(requests):
        if i % every == 0:
            progress(f"{label}: lookup {i + 1:,} of {len(requests):,}", frac0 + (frac1 - frac0) * i / len(requests))
        t0 = clock()
        answer = side.online(req)
        times.append(clock() - t0)
        answers.append(answer)
    values = [rows_of(a, len(req)) for a, req in zip(answers, requests, strict=True)]
    return {"n": len(times), "p50": percentile(times, 50), "p99": percentile(times, 99), "mean": statistics.fmean(times),
            "max": max(times), "values": values}


def run_side(side_name: str, workdir: Path) -> dict[str, Any]:
    plan = json.loads((workdir / "plan.json").read_text())
    reps = plan["reps"][side_name]
    side = make_side(side_name)
    out: dict[str, Any] = {"side": side_name, "reps": reps, "python": sys.version.split()[0],
                           "executable": sys.executable}
    progress("importing", 0.0)
    t0 = time.perf_counter()
    try:
        side.setup(plan, workdir)
    except ImportError as e:
        out.update(available=False, import_error=True, reason=f"{type(e).__name__}: {e}")
        return out
    out.update(available=True, version=side.version, import_seconds=time.perf_counter() - t0)
    progress("apply", 0.03)
    t0 = time.perf_counter()
    side.apply()
    out["apply_seconds"] = time.perf_counter() - t0
    progress("reading the entity frame (untimed)", 0.05)
    t0 = time.perf_counter()
    entities = side.load_entities(Path(plan["entities_path"]))
    out["load_seconds"] = time.perf_counter() - t0
    progress(f"warm-up join on {WARMUP_ROWS:,} entity rows (untimed)", 0.08)
    t0 = time.perf_counter()
    side.pit(side.head(entities, WARMUP_ROWS))
    out["warmup_seconds"] = time.perf_counter() - t0

    runs = []
    result = None
    for r in range(reps):
        progress(f"point-in-time join {r + 1} of {reps}", 0.1 + 0.5 * r / reps)
        del result
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = side.pit(entities)
        wall = time.perf_counter() - t0
        runs.append({"wall": wall, "cpu": time.process_time() - c0})
    out["pit_runs"] = runs
    out["pit_seconds"] = statistics.median(r["wall"] for r in runs)
    out["pit_cpu_seconds"] = statistics.median(r["cpu"] for r in runs)
    if hasattr(side, "extra"):
        out.update(side.extra(reps))
    progress("writing the join's result (untimed)", 0.6)
    import pyarrow.parquet as pq

    table = side.to_arrow(result)
    out["pit_rows"] = table.num_rows
    out["pit_columns"] = [f"{f.name}: {f.type}" for f in table.schema]
    pq.write_table(table, workdir / f"{side_name}-pit.parquet")
    del result, table
    gc.collect()

    progress("materialize", 0.62)
    c0 = time.process_time()
    t0 = time.perf_counter()
    side.materialize()
    out["materialize_seconds"] = time.perf_counter() - t0
    out["materialize_cpu_seconds"] = time.process_time() - c0

    singles = [[{"driver_id": k}] for k in plan["single_ids"]]
    batches = [[{"driver_id": k} for k in b] for b in plan["batch_ids"]]
    progress("online warm-up (untimed)", 0.7)
    for k in plan["warm_single"][:WARMUP_SINGLE]:
        side.online([{"driver_id": k}])
    for b in plan["warm_batch"][:WARMUP_BATCH]:
        side.online([{"driver_id": k} for k in b])
    gc.collect()
    out["online_1"] = timed_lookups(side, singles, "online, 1 entity", 0.72, 0.85)
    out["online_100"] = timed_lookups(side, batches, f"online, {BATCH} entities", 0.85, 0.99)
    progress("done", 1.0)
    return out


def side_main(args: argparse.Namespace) -> int:
    try:
        result = run_side(args.side, Path(args.workdir).resolve())
    except Exception as e:
        traceback.print_exc()
        result = {"side": args.side, "available": False, "crashed": True, "reason": f"{type(e).__name__}: {e}"}
    Path(args.out).write_text(json.dumps(result, default=str))
    return 0


# =============================================================================
# The parent process: the venv, the data, the reference, the sides, the report. Uses rich.
# =============================================================================


def side_env() -> dict[str, str]:
    """The environment of a side: no LOOPML_*/FEAST_* settings or PYTHONPATH leaking in, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "FEAST_"))}
    env.pop("PYTHONPATH", None)
    env["DO_NOT_TRACK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONWARNINGS"] = "ignore"  # ibis warns about deprecated duckdb calls on every query; keep logs short
    return env


def write_data(workdir: Path, entities: int, entity_rows: int) -> dict[str, Any]:
    """The feature view's parquet file and the entity frame's; returns what was made, with each entity row's kind."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([SEED, entities, entity_rows])
    end = (int(time.time()) // DAY - 1) * DAY  # yesterday 00:00 UTC, so the latest rows are days old, not months
    start = end - SPAN_DAYS * DAY
    # TIMESTAMPS distinct seconds per entity: sorted draws plus 0, 1, 2, ... are strictly increasing
    offs = np.sort(rng.integers(0, SPAN_DAYS * DAY - TIMESTAMPS, size=(entities, TIMESTAMPS)), axis=1)
    ts = start + offs + np.arange(TIMESTAMPS)
    ids = np.arange(1, entities + 1, dtype=np.int64)
    feat_ts = ts.ravel()
    order = np.argsort(feat_ts, kind="stable")  # written in time order, as an event log is
    feature_cols = {f: rng.normal(i, 1 + i, size=feat_ts.size)[order] for i, f in enumerate(FEATURES)}
    us = pa.timestamp("us", tz="UTC")
    features = pa.table({"driver_id": np.repeat(ids, TIMESTAMPS)[order],
                         "event_timestamp": pa.array(feat_ts[order] * 1_000_000, type=us), **feature_cols})
    pq.write_table(features, workdir / "features.parquet")

    n_dup = round(entity_rows * SHARES["duplicate"])
    n_base = entity_rows - n_dup
    special = ["before_first", "ttl_expired", "ttl_boundary", "exact"]
    counts = [round(n_base * SHARES[k]) for k in special]
    kinds = ["normal", *special]
    kind = np.repeat(np.arange(len(kinds)), [n_base - sum(counts), *counts])
    ent = rng.integers(0, entities, n_base)
    first, last = ts[ent, 0], ts[ent, -1]
    ets = np.empty(n_base, dtype=np.int64)
    m = kind == 0
    ets[m] = rng.integers(first[m], end + 1)
    m = kind == 1
    ets[m] = first[m] - rng.integers(1, TTL_DAYS * DAY, m.sum())
    m = kind == 2
    ets[m] = last[m] + TTL_DAYS * DAY + rng.integers(1, 20 * DAY, m.sum())
    m = kind == 3
    ets[m] = last[m] + TTL_DAYS * DAY
    m = kind == 4
    ets[m] = ts[ent[m], rng.integers(0, TIMESTAMPS, m.sum())]
    src = rng.choice(n_base, n_dup, replace=False)
    all_ent, all_ts = np.concatenate([ent, ent[src]]), np.concatenate([ets, ets[src]])
    all_kind = np.concatenate([kind, np.full(n_dup, len(kinds))])
    kinds.append("duplicate")
    perm = rng.permutation(entity_rows)
    entity_table = pa.table({"driver_id": ids[all_ent[perm]],
                             "event_timestamp": pa.array(all_ts[perm] * 1_000_000, type=us),
                             "row_id": np.arange(entity_rows, dtype=np.int64)})
    pq.write_table(entity_table, workdir / "entities.parquet")
    row_kind = np.array(kinds)[all_kind[perm]]
    return {"start": start, "end": end, "feature_rows": features.num_rows, "entity_rows": entity_rows,
            "entities": entities, "kinds": dict(Counter(row_kind.tolist())), "row_kind": row_kind,
            "bytes": {p: (workdir / p).stat().st_size for p in ("features.parquet", "entities.parquet")}}


def reference(workdir: Path) -> dict[str, Any]:
    """The expected join (pandas.merge_asof, sorted back to the entity frame's order) and the latest row per entity."""
    import numpy as np
    import pandas as pd

    ent = pd.read_parquet(workdir / "entities.parquet")
    t0 = time.perf_counter()
    feat = pd.read_parquet(workdir / "features.parquet")
    t1 = time.perf_counter()
    joined = pd.merge_asof(ent.sort_values("event_timestamp", kind="stable"),
                           feat.sort_values("event_timestamp", kind="stable"), on="event_timestamp", by="driver_id",
                           direction="backward", tolerance=pd.Timedelta(days=TTL_DAYS)).sort_values("row_id")
    t2 = time.perf_counter()
    assert (joined["row_id"].to_numpy() == np.arange(len(ent))).all()
    values = joined[FEATURES].to_numpy(dtype=np.float64)
    ent_us = ent["event_timestamp"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
    first = feat.groupby("driver_id")["event_timestamp"].min().astype("datetime64[us, UTC]").astype("int64")
    ent_first = ent["driver_id"].map(first).to_numpy()
    latest = feat.sort_values(["driver_id", "event_timestamp"]).groupby("driver_id").tail(1)
    return {"values": values, "seconds": t2 - t0, "join_seconds": t2 - t1, "driver_id": ent["driver_id"].to_numpy(), "ts_us": ent_us,
            "before_first": ent_us < ent_first, "null_row": np.isnan(values).all(axis=1),
            "duplicate": ent.duplicated(["driver_id", "event_timestamp"], keep=False).to_numpy(),
            "latest": {int(k): [float(x) for x in v]
                       for k, v in zip(latest["driver_id"], latest[FEATURES].to_numpy(), strict=True)}}


CATEGORIES = ["before the entity's first feature row", f"past the {TTL_DAYS}-day TTL",
              "in a duplicate entity/timestamp pair", "other"]


def by_category(ref: dict[str, Any], i: Any) -> dict[str, int]:
    """How many of the rows ``i`` fall in each category, in CATEGORIES order."""
    found = Counter(row_category(ref, i).tolist()) if len(i) else Counter()
    return {c: found[c] for c in CATEGORIES if found[c]}


def row_category(ref: dict[str, Any], i: Any) -> Any:
    """Why a row could be special: before the first feature row, past the TTL, a duplicate pair, or none."""
    import numpy as np

    return np.where(ref["before_first"][i], CATEGORIES[0], np.where(ref["null_row"][i], CATEGORIES[1],
                                                                    np.where(ref["duplicate"][i], CATEGORIES[2],
                                                                             CATEGORIES[3])))


def times(x: float, base: float) -> str:
    """``x`` relative to ``base``, as "N x slower" or "N x faster"."""
    r = x / base
    return f"{r:,.1f}x slower" if r >= 1 else f"{1 / r:,.2f}x faster"


def find_column(names: list[str], feature: str) -> str | None:
    return next((c for c in (feature, f"stats__{feature}", f"stats:{feature}") if c in names), None)


def compare_pit(path: Path, ref: dict[str, Any], positional: bool) -> dict[str, Any]:
    """Align a side's join result with the reference (by row_id, else by position) and count the differences."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    n = ref["values"].shape[0]
    cols = {f: find_column(t.column_names, f) for f in FEATURES}
    missing = [f for f, c in cols.items() if c is None]
    if missing:
        return {"error": f"feature columns missing: {missing} (columns: {t.column_names})"}
    float32 = [f for f, c in cols.items() if t.schema.field(c).type == pa.float32()]
    vals = np.column_stack([t.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in cols.values()])
    if "row_id" in t.column_names:
        rid, how = t.column("row_id").to_numpy(zero_copy_only=False).astype(np.int64), "row_id"
    elif positional and t.num_rows == n:
        rid, how = np.arange(n), "position"
    else:
        return {"error": f"{t.num_rows:,} rows for {n:,} entity rows and no row_id column: cannot align", "rows": t.num_rows}
    valid = (rid >= 0) & (rid < n)
    seen = np.bincount(rid[valid], minlength=n)
    dropped = np.flatnonzero(seen == 0)
    extra = int((seen[seen > 1] - 1).sum() + (~valid).sum())
    uniq, idx = np.unique(rid[valid], return_index=True)
    got = np.full((n, len(FEATURES)), np.nan)
    got[uniq] = vals[valid][idx]
    expected = ref["values"].astype(np.float32).astype(np.float64) if float32 else ref["values"]
    present = seen > 0
    e_nan, g_nan = np.isnan(expected), np.isnan(got)
    null_for_value = (g_nan & ~e_nan).any(axis=1) & present
    value_for_null = (~g_nan & e_nan).any(axis=1) & present
    different = (~g_nan & ~e_nan & (got != expected)).any(axis=1) & present
    bad = np.flatnonzero(null_for_value | value_for_null | different)
    # the entity key and timestamp the tool returned for each row must be the entity row's own
    keys_bad = None
    if "driver_id" in t.column_names and "event_timestamp" in t.column_names:
        d = t.column("driver_id").to_numpy(zero_copy_only=False)[valid][idx]
        ts_col = t.column("event_timestamp")
        if pa.types.is_timestamp(ts_col.type):
            ts_col = ts_col.cast(pa.timestamp("us", tz=ts_col.type.tz))
        ts = ts_col.cast(pa.int64()).to_numpy(zero_copy_only=False)[valid][idx]
        keys_bad = int(((d != ref["driver_id"][uniq]) | (ts != ref["ts_us"][uniq])).sum())
    out = {"rows": t.num_rows, "aligned_by": how, "float32": float32, "dropped": len(dropped), "extra": extra,
           "mismatched": len(bad), "null_for_value": int(null_for_value.sum()),
           "value_for_null": int(value_for_null.sum()), "different": int(different.sum()), "keys_bad": keys_bad,
           "dropped_by": by_category(ref, dropped), "mismatched_by": by_category(ref, bad)}
    out["ok"] = out["dropped"] == 0 and out["extra"] == 0 and out["mismatched"] == 0 and not keys_bad
    return out


def compare_online(res: dict[str, Any], plan: dict[str, Any], latest: dict[int, list[float]]) -> dict[str, Any]:
    """Count lookups (and entity values) that differ from each entity's latest feature row."""
    out: dict[str, Any] = {}
    for key, requests in (("online_1", [[k] for k in plan["single_ids"]]), ("online_100", plan["batch_ids"])):
        values = res[key]["values"]
        bad_calls = bad_rows = 0
        example = None
        for req, got in zip(requests, values, strict=True):
            wrong = [(k, g) for k, g in zip(req, got, strict=True) if g != latest[k]]
            if wrong:
                bad_calls += 1
                bad_rows += len(wrong)
                example = example or f"driver_id {wrong[0][0]}: got {wrong[0][1][:3]}..., expected {latest[wrong[0][0]][:3]}..."
        out[key] = {"bad_calls": bad_calls, "bad_rows": bad_rows, "example": example}
    out["ok"] = all(out[k]["bad_calls"] == 0 for k in ("online_1", "online_100"))
    return out


def run_side_process(side: str, python: str, workdir: Path, progress: Any, task: Any, console: Any) -> dict[str, Any]:
    out = workdir / f"{side}.json"
    log = workdir / f"{side}.log"
    cmd = [python, str(Path(__file__).resolve()), "--side", side, "--out", str(out), "--workdir", str(workdir)]
    rc, wall = run_child(cmd, cwd=workdir, out=out, log=log, env=side_env(), label=f"{side:13}", progress=progress,
                         task=task)
    if rc != 0 or not out.exists():
        print_failure(console, f"the {side} side", rc, log)
        return {"side": side, "available": False, "crashed": True, "reason": f"exit {rc}, see {log}"}
    result = json.loads(out.read_text())
    result["process_seconds"] = wall
    result["stderr_log"] = str(log)
    if result.get("crashed"):
        console.print(f"[bold red]the {side} side crashed: {result.get('reason')}; see {log}[/]")
    return result


def loopml_status() -> str | None:
    """None if ``loopml.features`` can be found, else why not."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("loopml.features")
        if spec is None:
            return "loopml.features does not exist"
        if spec.origin is None:  # a folder without __init__.py: being written
            return "loopml.features has no __init__.py yet"
    except ImportError as e:
        return f"{type(e).__name__}: {e}"
    return None


def parent_main(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console  # noqa: F401 - rich must be there: the script prints with it
        from rich.markup import escape
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table
    except ImportError:
        print("rich is missing: run this with the loopml venv, e.g. `.venv/bin/python bench/features_vs_feast.py`",
              file=sys.stderr)
        return 2
    console = make_console()
    probe = subprocess.run([sys.executable, "-c", "import loopml, duckdb, numpy, pandas, pyarrow"],
                           capture_output=True, text=True, env=side_env())
    if probe.returncode != 0:
        console.print(f"[red]this interpreter ({sys.executable}) cannot import loopml, duckdb, numpy, pandas and "
                      "pyarrow; run it with .venv/bin/python[/]")
        return 2
    mode = "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    for key in ("entities", "entity_rows", "lookups", "batches"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.reps is not None:
        cfg["reps"] = cfg["feast_reps"] = cfg["feast_file_reps"] = args.reps
    if cfg["entities"] < BATCH:
        console.print(f"[red]--entities must be at least {BATCH}[/]")
        return 2

    lm_missing = loopml_status()
    pythons: dict[str, str] = {"limit": sys.executable}
    if lm_missing is None:
        pythons["loopml"] = sys.executable
    else:
        console.print(f"[yellow]loopml: not run: {lm_missing}[/]")
    feast_version, skipped = None, ""
    if args.no_feast:
        skipped = "--no-feast"
    else:
        feast_venv = Path(args.venvs).absolute() / "feast"
        feast_version, skipped = ensure_peer_venv(console, "feast", PEER, feast_venv, side_env())
        if feast_version is not None and tuple(int(x) for x in feast_version.split(".")[:2]) < (0, 60):
            skipped = f"{feast_venv} has Feast {feast_version}, not 0.6x: remove the venv to have it recreated"
            feast_version = None
        if feast_version is not None:
            for side in FEAST_STORES:
                pythons[side] = str(venv_python(feast_venv))
    if skipped:
        console.print(f"[bold red]Feast: skipped: {skipped}[/]")

    workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-features-"))
    t0 = time.perf_counter()
    data = write_data(workdir, cfg["entities"], cfg["entity_rows"])
    data["seconds"] = time.perf_counter() - t0
    ref = reference(workdir)
    import numpy as np

    rng = np.random.default_rng([SEED, 7])
    ids = np.arange(1, cfg["entities"] + 1)
    plan = {"features_path": str(workdir / "features.parquet"), "entities_path": str(workdir / "entities.parquet"),
            "start": data["start"], "end": data["end"],
            "reps": {"limit": cfg["reps"], "loopml": cfg["reps"], "feast-duckdb": cfg["feast_reps"],
                     "feast-file": cfg["feast_file_reps"]},
            "single_ids": rng.choice(ids, cfg["lookups"]).tolist(),
            "batch_ids": [rng.choice(ids, BATCH, replace=False).tolist() for _ in range(cfg["batches"])],
            "warm_single": rng.choice(ids, WARMUP_SINGLE).tolist(),
            "warm_batch": [rng.choice(ids, BATCH, replace=False).tolist() for _ in range(WARMUP_BATCH)]}
    (workdir / "plan.json").write_text(json.dumps(plan))

    def day(seconds: int) -> str:
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d")

    console.print(
        f"[bold]loopml feature store vs Feast and bare DuckDB / SQLite[/] ({mode}): a feature view of "
        f"{len(FEATURES)} float64 features, {data['feature_rows']:,} rows ({cfg['entities']:,} entities x {TIMESTAMPS} "
        f"timestamps, {day(data['start'])} to {day(data['end'])}, {TTL_DAYS}-day TTL, "
        f"{data['bytes']['features.parquet'] / 2**20:,.0f} MiB of parquet); an entity frame of {cfg['entity_rows']:,} "
        f"rows; written in {data['seconds']:.1f}s")
    for kind, label in KIND_LABELS.items():
        console.print(f"[dim]  {data['kinds'].get(kind, 0):>7,} entity rows {label}[/]")
    console.print(f"[dim]  reference: pandas.merge_asof(direction='backward', by='driver_id', tolerance={TTL_DAYS} "
                  f"days): {int(ref['null_row'].sum()):,} rows without features "
                  f"({int(ref['before_first'].sum()):,} before the entity's first feature row), "
                  f"{int(ref['duplicate'].sum()):,} rows in duplicate entity/timestamp pairs[/]")
    load_before = machine_load()
    if load_before["busy"]:
        console.print(f"[yellow]warning: the machine is busy (load average {load_before['loadavg_1m']:.1f} on "
                      f"{load_before['cpus']} CPUs); timings will be noisy[/]")

    results: dict[str, dict[str, Any]] = {}
    order = [s for s in SIDE_NAMES if s in pythons]
    with Progress(SpinnerColumn(), TextColumn("{task.description}", style="bold"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console) as prog:
        tasks = {s: prog.add_task(f"{s:13} waiting", total=1000, start=False) for s in order}
        for side in order:
            prog.start_task(tasks[side])
            results[side] = run_side_process(side, pythons[side], workdir, prog, tasks[side], console)
    load_after = machine_load()

    # ---- checks
    lm_res = results.get("loopml", {})
    if lm_missing is None and lm_res.get("import_error"):  # the package is there but not importable yet
        lm_missing = f"not importable: {lm_res.get('reason')}"
        console.print(f"[yellow]loopml: {escape(lm_missing)}[/]")
    failed: list[tuple[str, str]] = []
    for side, res in results.items():
        if not res.get("available"):
            if side == "loopml" and res.get("import_error"):
                continue
            failed.append((f"{LABELS[side]}: did not run", res.get("reason", "?")))
            continue
        res["pit_check"] = compare_pit(workdir / f"{side}-pit.parquet", ref, positional=side == "loopml")
        res["online_check"] = compare_online(res, plan, ref["latest"])
        if side in ("limit", "loopml"):  # the limit wrong means the data or the reference is wrong
            pc, oc = res["pit_check"], res["online_check"]
            if pc.get("error"):
                failed.append((f"{LABELS[side]}: point-in-time join", pc["error"]))
            elif not pc["ok"]:
                failed.append((f"{LABELS[side]}: point-in-time join differs from pandas.merge_asof",
                               f"{pc['dropped']:,} dropped, {pc['extra']:,} extra, {pc['mismatched']:,} mismatched "
                               f"({pc['mismatched_by']}), entity key/timestamp wrong on {pc['keys_bad']} rows"))
            if not oc["ok"]:
                failed.append((f"{LABELS[side]}: online values differ from each entity's latest feature row",
                               f"{oc['online_1']['bad_calls']} single and {oc['online_100']['bad_calls']} "
                               f"{BATCH}-entity lookups; e.g. {oc['online_1']['example'] or oc['online_100']['example']}"))

    def ok(side: str) -> dict[str, Any] | None:
        res = results.get(side)
        return res if res and res.get("available") else None

    lm, lim = ok("loopml"), ok("limit")
    feast_sides = [s for s in FEAST_STORES if ok(s)]
    lm_version = lm["version"] if lm else "n/a"

    # ---- the point-in-time join
    table = Table(title=f"point-in-time join, loopml {lm_version} vs Feast {feast_version or 'n/a'}: "
                        f"{cfg['entity_rows']:,} entity rows against {data['feature_rows']:,} feature rows "
                        f"({TTL_DAYS}-day TTL) — median wall time, lower is better", title_justify="left")
    for col, kw in (("tool", {}), ("wall", {"justify": "right"}), ("CPU", {"justify": "right"}),
                    ("rows back", {"justify": "right"}), ("dropped", {"justify": "right"}),
                    ("wrong values", {"justify": "right"}), ("vs loopml", {"justify": "right"}),
                    ("vs limit", {"justify": "right"}),
                    ("notes", {"style": "dim"})):
        table.add_column(col, **kw)
    for side in SIDE_NAMES:
        res = results.get(side)
        if res is None:
            why = skipped if side in FEAST_STORES else lm_missing
            table.add_row(LABELS[side], "n/a", "", "", "", "", "", "", f"not run: {escape(str(why))}")
            continue
        if not res.get("available"):
            table.add_row(LABELS[side], "n/a", "", "", "", "", "", "", f"n/a: {escape(str(res.get('reason')))}")
            continue
        pc = res["pit_check"]
        ratio = times(res["pit_seconds"], lm["pit_seconds"]) if lm and side != "loopml" else ""
        vs_limit = times(res["pit_seconds"], lim["pit_seconds"]) if lim and side != "limit" else ""
        notes = [f"{res['version']}", f"{res['reps']} run{'s' if res['reps'] > 1 else ''}: "
                 + ", ".join(fmt_time(r["wall"]) for r in res["pit_runs"])]
        if pc.get("error"):
            table.add_row(LABELS[side], fmt_time(res["pit_seconds"]), fmt_time(res["pit_cpu_seconds"]),
                          f"{res['pit_rows']:,}", "?", "?", ratio, vs_limit, escape(pc["error"]))
            continue
        if pc["dropped"]:
            notes.append("dropped: " + ", ".join(f"{v:,} {k}" for k, v in pc["dropped_by"].items()))
        if pc["mismatched"]:
            notes.append(f"wrong: {pc['null_for_value']:,} null for a value, {pc['value_for_null']:,} value for a null, "
                         f"{pc['different']:,} other value (" + ", ".join(f"{v:,} {k}" for k, v in
                                                                        pc["mismatched_by"].items()) + ")")
        if pc["extra"]:
            notes.append(f"{pc['extra']:,} extra rows")
        if pc["keys_bad"]:
            notes.append(f"{pc['keys_bad']:,} rows with another entity's key or timestamp")
        if pc["float32"]:
            notes.append("float32 values (compared as float32)")
        if "read_features_seconds" in res:
            notes.append(f"reading the feature file alone into Arrow: {fmt_time(res['read_features_seconds'])}")
        notes.append(f"aligned by {pc['aligned_by']}")
        colour = "green" if pc["ok"] else "red"
        table.add_row(LABELS[side], fmt_time(res["pit_seconds"]), fmt_time(res["pit_cpu_seconds"]),
                      f"{res['pit_rows']:,}", f"[{colour}]{pc['dropped']:,}[/]", f"[{colour}]{pc['mismatched']:,}[/]",
                      ratio, vs_limit, "; ".join(notes))
    table.add_row("pandas merge_asof (reference)", fmt_time(ref["seconds"]), "", f"{cfg['entity_rows']:,}", "0", "0",
                  times(ref["seconds"], lm["pit_seconds"]) if lm else "",
                  times(ref["seconds"], lim["pit_seconds"]) if lim else "",
                  f"once, in the parent process: read the feature file + merge_asof; the join alone (both sorts by "
                  f"time and the sort back to the entity frame's order) took {fmt_time(ref['join_seconds'])}")
    console.print(table)

    # ---- materialisation and online lookups
    online = Table(title=f"materialisation ({cfg['entities']:,} entities into SQLite) and online lookups "
                         f"({cfg['lookups']:,} of 1 entity, {cfg['batches']:,} of {BATCH} entities, one call at a time)",
                   title_justify="left")
    for col in ("tool", "materialize", "1 entity p50", "1 entity p99", f"{BATCH} entities p50",
                f"{BATCH} entities p99", "values", "notes"):
        online.add_column(col, justify="left" if col in ("tool", "notes", "values") else "right",
                          style="dim" if col == "notes" else None)
    for side in SIDE_NAMES:
        res = ok(side)
        if res is None:
            continue
        o1, o100, oc = res["online_1"], res["online_100"], res["online_check"]
        values = ("[green]all correct[/]" if oc["ok"] else
                  f"[red]{oc['online_1']['bad_calls']:,} + {oc['online_100']['bad_calls']:,} lookups wrong[/]")
        notes = [f"p99 vs loopml: {o1['p99'] / lm['online_1']['p99']:,.1f}x / {o100['p99'] / lm['online_100']['p99']:,.1f}x"
                 if lm and side != "loopml" else "",
                 f"p99 vs raw SQLite: {o1['p99'] / lim['online_1']['p99']:,.1f}x / "
                 f"{o100['p99'] / lim['online_100']['p99']:,.1f}x" if lim and side != "limit" else "",
                 f"mean {fmt_time(o1['mean'])} / {fmt_time(o100['mean'])}, max {fmt_time(o1['max'])} / "
                 f"{fmt_time(o100['max'])}", f"materialize CPU {fmt_time(res['materialize_cpu_seconds'])}"]
        if not oc["ok"]:
            notes.append(escape(str(oc["online_1"]["example"] or oc["online_100"]["example"])))
        online.add_row(LABELS[side], fmt_time(res["materialize_seconds"]), fmt_time(o1["p50"]), fmt_time(o1["p99"]),
                       fmt_time(o100["p50"]), fmt_time(o100["p99"]), values, "; ".join(n for n in notes if n))
    console.print(online)

    once = Table(title="untimed, per process", title_justify="left")
    for col in ("tool", "import", "apply", "read entity frame", f"warm-up join ({WARMUP_ROWS:,} rows)",
                "whole process"):
        once.add_column(col, justify="left" if col == "tool" else "right")
    for side in SIDE_NAMES:
        res = ok(side)
        if res:
            once.add_row(LABELS[side], fmt_time(res["import_seconds"]), fmt_time(res["apply_seconds"]),
                         fmt_time(res["load_seconds"]), fmt_time(res["warmup_seconds"]),
                         fmt_time(res.get("process_seconds")))
    console.print(once)

    # what Feast lost, in words
    for side in feast_sides:
        pc = results[side]["pit_check"]
        if pc.get("error") or pc["ok"]:
            continue
        parts = []
        if pc["dropped"]:
            parts.append(f"silently dropped {pc['dropped']:,} of {cfg['entity_rows']:,} entity rows ("
                         + ", ".join(f"{v:,} {k}" for k, v in pc["dropped_by"].items()) + ")")
        if pc["mismatched"]:
            parts.append(f"returned wrong values on {pc['mismatched']:,} rows")
        console.print(f"[yellow]{LABELS[side]} {' and '.join(parts)}; pandas.merge_asof keeps every row, with nulls "
                      "where no feature row is in the window[/]")

    # ---- ratios, targets, SPEEDUP
    speedups: list[tuple[float, str]] = []
    feast_pit = {s: results[s]["pit_seconds"] for s in feast_sides}
    if lm:
        parts = []
        if feast_pit:
            best = min(feast_pit, key=feast_pit.__getitem__)
            x = feast_pit[best] / lm["pit_seconds"]
            speedups.append((x, f"point-in-time join vs {LABELS[best]}"))
            parts.append(f"join: {LABELS[best]} / loopml = {x:,.1f}x")
        if feast_sides:
            for key, label in (("online_1", "online p99, 1 entity"), ("online_100", f"online p99, {BATCH} entities")):
                best = min(feast_sides, key=lambda s, k=key: results[s][k]["p99"])
                x = results[best][key]["p99"] / lm[key]["p99"]
                speedups.append((x, f"{label} vs {LABELS[best]}"))
                parts.append(f"{label}: Feast / loopml = {x:,.1f}x")
        if lim:
            parts.append(f"join: loopml / bare DuckDB = {lm['pit_seconds'] / lim['pit_seconds']:,.2f}x")
            parts.append(f"online p99: loopml / raw SQLite = {lm['online_1']['p99'] / lim['online_1']['p99']:,.1f}x"
                         f" (1), {lm['online_100']['p99'] / lim['online_100']['p99']:,.1f}x ({BATCH})")
        if parts:
            console.print("[bold]ratios:[/] " + "; ".join(parts))

    targets = Table(title="loopml targets", title_justify="left")
    for col in ("target", "measured", "met"):
        targets.add_column(col)

    def target(name: str, measured: str, met: bool | None) -> None:
        targets.add_row(name, measured, {True: "[green]✓ met[/]", False: "[red]✗ not met[/]",
                                         None: "[yellow]n/a[/]"}[met])

    if lm is None:
        why = lm_missing or results.get("loopml", {}).get("reason", "?")
        target("all", f"loopml not measured: {escape(str(why))}", None)
    else:
        pc = lm["pit_check"]
        target("every entity row kept, in order, equal to pandas.merge_asof",
               escape(pc["error"]) if pc.get("error") else
               f"{pc['rows']:,} rows back, {pc['dropped']:,} dropped, {pc['mismatched']:,} wrong, {pc['extra']:,} extra",
               None if pc.get("error") else pc["ok"])
        fd = ok("feast-duckdb")
        x = fd["pit_seconds"] / lm["pit_seconds"] if fd else None
        target(f"join ≥{TARGET_VS_FEAST_DUCKDB:g}x faster than Feast's DuckDB store",
               f"{x:,.1f}x" if x else "Feast not measured", None if x is None else x >= TARGET_VS_FEAST_DUCKDB)
        x = lm["pit_seconds"] / lim["pit_seconds"] if lim else None
        target(f"join within {TARGET_VS_LIMIT:g}x of the bare DuckDB ASOF join",
               f"{x:,.2f}x" if x else "n/a", None if x is None else x <= TARGET_VS_LIMIT)
        for key, goal, label in (("online_1", TARGET_ONLINE_1, "1 entity"),
                                 ("online_100", TARGET_ONLINE_100, f"{BATCH} entities")):
            if feast_sides:
                best = min(feast_sides, key=lambda s, k=key: results[s][k]["p99"])
                x = results[best][key]["p99"] / lm[key]["p99"]
                target(f"online p99 ≥{goal:g}x lower than Feast's, {label}",
                       f"{x:,.1f}x ({fmt_time(lm[key]['p99'])} vs {fmt_time(results[best][key]['p99'])}, "
                       f"{LABELS[best]} process)", x >= goal)
            else:
                target(f"online p99 ≥{goal:g}x lower than Feast's, {label}", "Feast not measured", None)
    console.print(targets)

    for what, detail in failed:
        console.print(f"[bold white on red] CHECK FAILED [/] [red]{escape(what)}: {escape(detail)}[/]")
    if failed:
        for side, res in results.items():
            if res.get("stderr_log"):
                console.print(f"[red]   stderr of {side}: {res['stderr_log']}[/]")
    if load_before["busy"] or load_after["busy"]:
        console.print(f"[yellow]machine load: {load_before['loadavg_1m']:.1f} before, {load_after['loadavg_1m']:.1f} "
                      f"after (1-minute load average, {load_after['cpus']} CPUs): timings are noisy[/]")

    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        slim = {s: {k: ({kk: vv for kk, vv in v.items() if kk != "values"} if k.startswith("online_") and
                        isinstance(v, dict) and "values" in v else v) for k, v in r.items()}
                for s, r in results.items()}
        path.write_text(json.dumps({
            "mode": mode, "config": cfg, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"platform": sys.platform, "load_before": load_before, "load_after": load_after},
            "data": {k: v for k, v in data.items() if k != "row_kind"} | {"seed": SEED, "ttl_days": TTL_DAYS,
                                                                         "timestamps": TIMESTAMPS},
            "reference_seconds": ref["seconds"], "feast": {"version": feast_version, "skipped": skipped},
            "loopml_missing": lm_missing, "failed_checks": [{"what": w, "detail": d} for w, d in failed],
            "speedups": [{"ratio": x, "what": w} for x, w in speedups], "results": slim,
        }, indent=2, default=str))
        console.print(f"[dim]results saved to {path}[/]")
    if args.keep:
        console.print(f"[dim]kept {workdir} (data, Feast repos, loopml project, per-side JSON and stderr logs)[/]")
    elif failed:  # keep the logs for the failure, drop the data
        for f in workdir.glob("*.parquet"):
            f.unlink()
        console.print(f"[dim]logs kept in {workdir}[/]")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    sys.stdout.flush()
    if lm_missing is not None:
        print("SPEEDUP min=n/a (loopml features not available)", flush=True)
        return 1 if failed else 0
    if lm is None:
        print(f"SPEEDUP min=n/a (loopml failed: {results.get('loopml', {}).get('reason', '?')})", flush=True)
        return 2
    if not speedups:
        print(f"SPEEDUP min=n/a (Feast not measured: {skipped or 'it failed'})", flush=True)
        return 1 if failed else 0
    x, what = min(speedups)
    print(f"SPEEDUP min={x:.2f} ({what})", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark loopml's feature store against Feast and bare DuckDB / SQLite.")
    p.add_argument("--quick", action="store_true",
                   help="1,000 entities (100,000 feature rows), 10,000 entity rows, fewer runs and lookups")
    p.add_argument("--entities", type=int, help=f"entities in the feature view ({TIMESTAMPS} feature rows each)")
    p.add_argument("--entity-rows", type=int, help="rows of the entity frame")
    p.add_argument("--reps", type=int, help="timed point-in-time joins per side (median)")
    p.add_argument("--lookups", type=int, help="timed single-entity online lookups")
    p.add_argument("--batches", type=int, help=f"timed {BATCH}-entity online lookups")
    p.add_argument("--no-feast", action="store_true", help="leave Feast out")
    p.add_argument("--json", metavar="PATH", help="save all results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (data, repos, per-side JSON, logs)")
    p.add_argument("--venvs", metavar="DIR", default=str(VENVS),
                   help="where the Feast venv is (created if missing; default: bench/.venvs)")
    p.add_argument("--side", choices=SIDE_NAMES, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        if not (args.out and args.workdir):
            p.error("--side needs --out and --workdir")
        return side_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
