#!/usr/bin/env python
"""loopml's data validation and profiling vs pandera, Great Expectations, pandas and plain numpy.

Usage (from the repository root)::

    .venv/bin/python bench/data_vs_peers.py --quick          # 200,000 rows, under a minute
    .venv/bin/python bench/data_vs_peers.py --json bench/results/data.json

How it works: this script (run with the loopml venv's interpreter) makes sure the
peer venvs exist (``bench/.venvs/pandera`` with pandera + pandas, and
``bench/.venvs/gx`` with Great Expectations 1.x; GX is skipped, with the reason
printed, if it does not install), writes one table of N rows x 25 columns (20
float64, 5 dictionary-encoded string columns of ~10 categories; numpy, fixed seed)
to a parquet file, plus a "dirty" copy, then re-invokes itself once per side, one
after the other so that they never compete for the CPU:

* ``--side loopml``  (this interpreter): ``loopml.data.validation.validate`` on a pyarrow
  Table with a hand-built :class:`~loopml.data.schema.Schema`, and
  ``loopml.data.profile.profile_table``;
* ``--side numpy``   (this interpreter, numpy only): the physical limit, the same checks
  and statistics written directly with numpy on numpy arrays;
* ``--side pandera`` (the pandera venv): ``DataFrameSchema.validate(df, lazy=True)`` and,
  as the profiling reference, ``DataFrame.describe()``;
* ``--side gx``      (the GX venv): an expectation suite run on a pandas batch.

Every side reads the same parquet file into its natural in-memory form before any
timing (reading is not timed), runs each measurement once untimed (warm-up), then
times it ``reps`` times and keeps the median. Afterwards, untimed: the clean data
must give 0 failures on every side, and the dirty copy (100 out-of-range values in
5 numeric columns, 10 unseen categories in the 5 categorical columns) must give
exactly the injected failures on every side; profiles are compared with the numpy
reference. A mismatch prints ``CHECK FAILED`` and makes the exit status 1.

The last line printed is always ``SPEEDUP min=<ratio> (<measurement>)``: the smallest
peer-time / loopml-time ratio over pandera validation, GX validation (if installed)
and pandas ``describe()`` vs loopml's profile. loopml / numpy ratios are shown as
"x the physical limit" (informational).

The side code uses only the standard library, numpy, pyarrow and the library under
test, because the peer venvs have neither rich nor loopml.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import (  # bench/ is on sys.path when a script runs
    PROGRESS_PREFIX,
    ensure_peer_venv,
    fmt_time,
    machine_load,
    print_failure,
    run_child,
    venv_python,
)

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
SEED = 20240601

SIZES: dict[str, dict[str, int]] = {
    "full": {"rows": 1_000_000, "reps": 7, "gx_reps": 5},
    "quick": {"rows": 200_000, "reps": 3, "gx_reps": 2},
}
N_NUMERIC = 20
N_CATEGORICAL = 5
#: the quantiles every profiling side computes (numpy: np.percentile; pandas: describe(percentiles=...))
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# the dirty copy: DIRTY_NUMERIC columns get DIRTY_PER_NUMERIC out-of-range values each (100 in all), every
# categorical column gets DIRTY_PER_CATEGORICAL rows holding a category of its own that the schema does not allow
DIRTY_NUMERIC = ("f1", "f4", "f7", "f10", "f13")
DIRTY_PER_NUMERIC = 20
DIRTY_PER_CATEGORICAL = 2
# ... and missing values in columns of their own: NaN in a float column, nulls in a categorical one
DIRTY_NAN = ("f16", 10)
DIRTY_NULL = ("c4", 5)

#: peer venvs: what to install, and a probe that prints the version if the venv works
PEERS: dict[str, dict[str, Any]] = {
    "pandera": {
        "requirements": ["pandera", "pandas", "pyarrow", "numpy"],
        "probe": "import pandera, pandas, pyarrow, numpy; print(pandera.__version__)",
        "required": True,
    },
    "gx": {
        "requirements": ["great_expectations", "pyarrow"],
        "probe": "import great_expectations as gx, pandas, pyarrow; print(gx.__version__)",
        "required": False,
        "major": "1",
    },
}

#: failure kinds every side reports in: column -> {kind: rows}
FAIL_KINDS = ("range", "null", "dtype", "category", "missing", "other")


# =============================================================================
# The side process: one library's half, results as JSON. No rich, no loopml outside the loopml side.
# =============================================================================


class Reporter:
    """Progress lines on stdout for the parent."""

    def __init__(self, plan: list[tuple[str, float]]) -> None:
        self.weights = dict(plan)
        self.total = sum(self.weights.values())
        self.done = 0.0

    def _emit(self, desc: str, frac: float) -> None:
        print(PROGRESS_PREFIX + json.dumps({"desc": desc, "frac": min(frac, 1.0)}), flush=True)

    @contextmanager
    def step(self, key: str, desc: str) -> Iterator[Callable[[float], None]]:
        base = self.done
        w = self.weights[key]
        self._emit(desc, base / self.total)

        def sub(f: float) -> None:
            self._emit(desc, (base + w * f) / self.total)

        yield sub
        self.done = base + w
        self._emit(desc, self.done / self.total)


def _add(out: dict[str, dict[str, int]], column: str, kind: str, rows: int) -> None:
    col = out.setdefault(column, {})
    col[kind] = col.get(kind, 0) + int(rows)


class LoopmlSide:
    name = "loopml"
    has_validation = True
    has_profile = True

    def setup(self) -> None:
        import pyarrow.parquet as pq

        import loopml

        self.pq = pq
        self.version = loopml.__version__
        self.unavailable: dict[str, str] = {}
        try:
            from loopml.data.schema import ColumnSchema, Schema
            from loopml.data.validation import validate

            self.Schema, self.ColumnSchema, self.validate_fn = Schema, ColumnSchema, validate
        except ImportError as e:
            self.has_validation = False
            self.unavailable["validate"] = f"{type(e).__name__}: {e}"
        try:
            from loopml.data.profile import profile_table

            self.profile_table = profile_table
        except ImportError as e:
            self.has_profile = False
            self.unavailable["profile"] = f"{type(e).__name__}: {e}"
        if not (self.has_validation or self.has_profile):
            raise ImportError("; ".join(self.unavailable.values()))

    def load(self, path: Path) -> Any:
        return self.pq.read_table(path)

    def prepare(self, spec: dict[str, Any], data: Any) -> None:
        if not self.has_validation:
            return
        cols = {}
        for c in spec["numeric"]:
            cols[c["name"]] = self.ColumnSchema(name=c["name"], type="double", kind="numeric", nullable=False,
                                                min=c["min"], max=c["max"])
        for c in spec["categorical"]:
            typ = str(data.schema.field(c["name"]).type)  # dictionary<values=string, indices=int32, ordered=0>
            cols[c["name"]] = self.ColumnSchema(name=c["name"], type=typ, kind="categorical", nullable=False,
                                                categories=tuple(c["categories"]))
        self.schema = self.Schema(columns=cols)

    def validate(self, data: Any) -> Any:
        return self.validate_fn(data, self.schema)

    def failures(self, raw: Any) -> dict[str, dict[str, int]]:
        kinds = {"out_of_range": "range", "null_rate": "null", "type_mismatch": "dtype",
                 "unseen_category": "category", "missing_column": "missing"}
        out: dict[str, dict[str, int]] = {}
        for a in raw:
            if a.severity != "error":
                continue
            _add(out, a.column or "<table>", kinds.get(a.kind, "other"), a.rows if a.rows else 1)
        return out

    def profile(self, data: Any) -> Any:
        return self.profile_table(data)

    def summarize(self, raw: Any, data: Any, spec: dict[str, Any]) -> dict[str, Any]:
        numeric, categorical = {}, {}
        for c in spec["numeric"]:
            p = raw.columns[c["name"]]
            numeric[c["name"]] = {"count": p.count, "nulls": p.nulls, "mean": p.mean, "std": p.std, "min": p.min,
                                  "max": p.max, "quantiles": {k: float(v) for k, v in p.quantiles.items()}}
        for c in spec["categorical"]:
            p = raw.columns[c["name"]]
            categorical[c["name"]] = {"count": p.count, "nulls": p.nulls, "top": [[v, int(n)] for v, n in p.top]}
        computed = sorted({k for p in raw.columns.values() for k, v in vars(p).items() if v not in (None, [], {})})
        return {"numeric": numeric, "categorical": categorical, "sample_size": raw.sample_size,
                "correlations": len(raw.correlations), "fields": computed}


class NumpySide:
    """The physical limit: the same checks and statistics, written directly with numpy."""

    name = "numpy"
    has_validation = True
    has_profile = True

    def setup(self) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.np, self.pa, self.pq = np, pa, pq
        self.version = np.__version__

    def load(self, path: Path) -> Any:
        """numpy arrays: float64 columns as-is, categorical columns as (codes, categories) (-1 = null)."""
        table = self.pq.read_table(path)
        out: dict[str, Any] = {}
        for name in table.column_names:
            col = table.column(name)
            if self.pa.types.is_dictionary(col.type):
                arr = col.unify_dictionaries().combine_chunks() if col.num_chunks > 1 else col.chunk(0)
                codes = arr.indices.fill_null(-1).to_numpy()
                out[name] = (codes, arr.dictionary.to_numpy(zero_copy_only=False))
            else:
                out[name] = col.to_numpy()  # nulls would be NaN
        return out

    def prepare(self, spec: dict[str, Any], data: Any) -> None:
        np = self.np
        self.numeric = [(c["name"], float(c["min"]), float(c["max"])) for c in spec["numeric"]]
        self.categorical = [(c["name"], np.array(c["categories"], dtype=object)) for c in spec["categorical"]]

    def validate(self, data: Any) -> list[tuple[str, str, int]]:
        """Cheap checks first; failing rows are only counted for a check that failed."""
        np = self.np
        bad: list[tuple[str, str, int]] = []
        for name, lo, hi in self.numeric:
            a = data[name]
            if a.dtype != np.float64:
                bad.append((name, "dtype", 1))
                continue
            nan = np.isnan(a)
            if nan.any():
                bad.append((name, "null", int(nan.sum())))
                lo_seen, hi_seen = np.nanmin(a), np.nanmax(a)
            else:
                lo_seen, hi_seen = a.min(), a.max()
            if lo_seen < lo or hi_seen > hi:
                bad.append((name, "range", int(np.count_nonzero((a < lo) | (a > hi)))))
        for name, allowed in self.categorical:
            codes, cats = data[name]
            if codes.dtype.kind not in "iu" or cats.dtype != object:
                bad.append((name, "dtype", 1))
                continue
            if (codes < 0).any():
                bad.append((name, "null", int(np.count_nonzero(codes < 0))))
            ok_codes = np.flatnonzero(np.isin(cats, allowed))
            ok = np.isin(codes, ok_codes) | (codes < 0)
            if not ok.all():
                bad.append((name, "category", int(np.count_nonzero(~ok))))
        return bad

    def failures(self, raw: Any) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for column, kind, rows in raw:
            _add(out, column, kind, rows)
        return out

    def profile(self, data: Any) -> dict[str, Any]:
        np = self.np
        qs = [q * 100 for q in QUANTILES]
        out: dict[str, Any] = {}
        for name, _, _ in self.numeric:
            a = data[name]
            nan = np.isnan(a)
            nulls = int(nan.sum())
            v = a[~nan] if nulls else a
            out[name] = {"count": int(v.size), "nulls": nulls, "mean": float(v.mean()), "std": float(v.std(ddof=1)),
                         "min": float(v.min()), "max": float(v.max()), "quantiles": np.percentile(v, qs)}
        for name, _ in self.categorical:
            codes, cats = data[name]
            valid = codes >= 0
            nulls = int(codes.size - np.count_nonzero(valid))
            counts = np.bincount(codes[valid] if nulls else codes, minlength=len(cats))
            out[name] = {"count": int(codes.size) - nulls, "nulls": nulls, "counts": counts}
        return out

    def summarize(self, raw: Any, data: Any, spec: dict[str, Any]) -> dict[str, Any]:
        np = self.np
        numeric, categorical = {}, {}
        for name, _, _ in self.numeric:
            r = raw[name]
            a = data[name]
            a = a[~np.isnan(a)]
            # for checking sample-based quantiles: the exact values 1 percentile point either side
            lo = np.percentile(a, [max(q - 0.01, 0) * 100 for q in QUANTILES])
            hi = np.percentile(a, [min(q + 0.01, 1) * 100 for q in QUANTILES])
            numeric[name] = {**{k: r[k] for k in ("count", "nulls", "mean", "std", "min", "max")},
                             "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, r["quantiles"], strict=True)},
                             "quantile_band": {str(q): [float(x), float(y)]
                                               for q, x, y in zip(QUANTILES, lo, hi, strict=True)}}
        for name, _ in self.categorical:
            r = raw[name]
            cats = data[name][1]
            order = np.argsort(-r["counts"], kind="stable")
            categorical[name] = {"count": r["count"], "nulls": r["nulls"],
                                 "top": [[str(cats[i]), int(r["counts"][i])] for i in order]}
        return {"numeric": numeric, "categorical": categorical}


class PanderaSide:
    """pandera validation on a pandas DataFrame; pandas ``describe()`` as the profiling reference."""

    name = "pandera"
    has_validation = True
    has_profile = True

    def setup(self) -> None:
        import pandas as pd
        import pandera
        import pandera.pandas as pa_

        self.pd, self.pa_ = pd, pa_
        self.version = pandera.__version__
        self.pandas_version = pd.__version__

    def load(self, path: Path) -> Any:
        return self.pd.read_parquet(path)  # float64 columns, category columns

    def prepare(self, spec: dict[str, Any], data: Any) -> None:
        pa_ = self.pa_
        cols = {c["name"]: pa_.Column("float64", pa_.Check.in_range(c["min"], c["max"]), nullable=False)
                for c in spec["numeric"]}
        cols.update({c["name"]: pa_.Column("category", pa_.Check.isin(c["categories"]), nullable=False)
                     for c in spec["categorical"]})
        self.schema = pa_.DataFrameSchema(cols, strict=True)

    def validate(self, data: Any) -> Any:
        try:
            self.schema.validate(data, lazy=True)  # lazy: collect every failure, as the other sides do
        except self.pa_.errors.SchemaErrors as e:
            return e.failure_cases
        return None

    def failures(self, raw: Any) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        if raw is None:
            return out
        for (column, check), n in raw.groupby(["column", "check"], dropna=False).size().items():
            check = str(check)
            kind = ("range" if check.startswith("in_range") else "category" if check.startswith("isin")
                    else "null" if "nullable" in check else "dtype" if check.startswith("dtype")
                    else "missing" if "column_in_dataframe" in check else "other")
            _add(out, str(column), kind, n)
        return out

    def profile(self, data: Any) -> Any:
        return data.describe(percentiles=list(QUANTILES), include="all")

    def summarize(self, raw: Any, data: Any, spec: dict[str, Any]) -> dict[str, Any]:
        numeric, categorical = {}, {}
        for c in spec["numeric"]:
            s = raw[c["name"]]
            numeric[c["name"]] = {"count": int(s["count"]), "mean": float(s["mean"]), "std": float(s["std"]),
                                  "min": float(s["min"]), "max": float(s["max"]),
                                  "quantiles": {str(q): float(s[f"{q * 100:g}%"]) for q in QUANTILES}}
        for c in spec["categorical"]:
            s = raw[c["name"]]
            categorical[c["name"]] = {"count": int(s["count"]), "top": [[str(s["top"]), int(s["freq"])]]}
        return {"numeric": numeric, "categorical": categorical, "pandas": self.pandas_version}


class GxSide:
    """Great Expectations 1.x: an expectation suite on a pandas batch (ephemeral context)."""

    name = "gx"
    has_validation = True
    has_profile = False  # GX 1.x has no data profiler

    def setup(self) -> None:
        os.environ["GX_ANALYTICS_ENABLED"] = "false"
        import great_expectations as gx
        import great_expectations.expectations as gxe
        import pandas as pd
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx, self.gxe, self.pd = gx, gxe, pd
        self.version = gx.__version__
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.batch_def = (self.context.data_sources.add_pandas("bench").add_dataframe_asset("table")
                          .add_batch_definition_whole_dataframe("whole"))

    def load(self, path: Path) -> Any:
        df = self.pd.read_parquet(path)
        return self.batch_def.get_batch(batch_parameters={"dataframe": df})

    def prepare(self, spec: dict[str, Any], data: Any) -> None:
        gxe = self.gxe
        suite = self.gx.ExpectationSuite(name="bench")
        for c in spec["numeric"]:
            suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column=c["name"], type_="float64"))
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=c["name"]))
            suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=c["name"], min_value=c["min"],
                                                                    max_value=c["max"]))
        for c in spec["categorical"]:
            suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column=c["name"], type_="CategoricalDtypeType"))
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=c["name"]))
            suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=c["name"], value_set=c["categories"]))
        self.suite = self.context.suites.add(suite)

    def validate(self, data: Any) -> Any:
        return data.validate(self.suite, result_format="BASIC")

    def failures(self, raw: Any) -> dict[str, dict[str, int]]:
        kinds = {"expect_column_values_to_be_between": "range", "expect_column_values_to_not_be_null": "null",
                 "expect_column_values_to_be_of_type": "dtype", "expect_column_values_to_be_in_set": "category"}
        out: dict[str, dict[str, int]] = {}
        for r in raw.results:
            if r.success:
                continue
            cfg = r.expectation_config
            kind = kinds.get(cfg.type, "other")
            n = r.result.get("unexpected_count")  # None for of_type (no rows counted)
            if r.exception_info and r.exception_info.get("raised_exception"):
                kind, n = "other", 1
            _add(out, str(cfg.kwargs.get("column")), kind, n if n is not None else 1)
        return out


SIDES: dict[str, type] = {"loopml": LoopmlSide, "numpy": NumpySide, "pandera": PanderaSide, "gx": GxSide}


def _timed(fn: Callable[[], Any], reps: int, sub: Callable[[float], None]) -> tuple[list[float], Any]:
    """One untimed warm-up call, then ``reps`` timed calls (a gc collection before each)."""
    result = fn()
    sub(1 / (reps + 1))
    times = []
    for r in range(reps):
        del result
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        sub((r + 2) / (reps + 1))
    return times, result


def run_side(side_name: str, workdir: Path, sizes: dict[str, int]) -> dict[str, Any]:
    spec = json.loads((workdir / "spec.json").read_text())
    side: Any = SIDES[side_name]()
    reps = sizes["gx_reps"] if side_name == "gx" else sizes["reps"]
    rep = Reporter([("setup", 1), ("load", 1), ("validate", 4), ("dirty", 2), ("profile", 4)])
    out: dict[str, Any] = {"side": side_name, "python": sys.version.split()[0], "executable": sys.executable,
                           "reps": reps}
    with rep.step("setup", "importing"):
        try:
            side.setup()
        except ImportError as e:
            out.update(available=False, reason=f"{type(e).__name__}: {e}")
            return out
    unavailable: dict[str, str] = dict(getattr(side, "unavailable", {}))
    errors: dict[str, str] = {}
    out.update(available=True, version=side.version, unavailable=unavailable, errors=errors)
    with rep.step("load", "reading the parquet file (untimed)"):
        t0 = time.perf_counter()
        data = side.load(workdir / "clean.parquet")
        out["load_seconds"] = time.perf_counter() - t0

    def failed(what: str, e: Exception) -> None:
        traceback.print_exc()
        errors[what] = unavailable[what] = f"error: {type(e).__name__}: {e}"

    if side.has_validation:
        try:
            side.prepare(spec, data)
            with rep.step("validate", f"validate x{reps + 1}") as sub:
                times, raw = _timed(lambda: side.validate(data), reps, sub)
                out["validate"] = {"seconds": statistics.median(times), "all": times,
                                   "failures": side.failures(raw)}
            with rep.step("dirty", "validate the dirty copy (untimed)"):
                dirty = side.load(workdir / "dirty.parquet")
                t0 = time.perf_counter()
                raw = side.validate(dirty)
                out["dirty"] = {"seconds": time.perf_counter() - t0, "failures": side.failures(raw)}
                del dirty, raw
                gc.collect()
        except Exception as e:
            out.pop("validate", None)
            failed("validate", e)
    if side.has_profile:
        try:
            with rep.step("profile", f"profile x{reps + 1}") as sub:
                times, raw = _timed(lambda: side.profile(data), reps, sub)
                out["profile"] = {"seconds": statistics.median(times), "all": times,
                                  "summary": side.summarize(raw, data, spec)}
        except Exception as e:
            failed("profile", e)
    return out


def side_main(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    sizes = json.loads((workdir / "sizes.json").read_text())
    try:
        result = run_side(args.side, workdir, sizes)
    except Exception as e:
        traceback.print_exc()
        result = {"side": args.side, "available": False, "crashed": True, "reason": f"{type(e).__name__}: {e}"}
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    return 0


# =============================================================================
# The parent process: peer venvs, the data, the sides, the report. Uses rich.
# =============================================================================


def side_env() -> dict[str, str]:
    """The environment of a side: no LOOPML_* settings or PYTHONPATH leaking in, no GX analytics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.pop("PYTHONPATH", None)
    env["GX_ANALYTICS_ENABLED"] = "false"
    env["DO_NOT_TRACK"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ensure_venv(console: Any, name: str, venv: Path) -> tuple[str | None, str]:
    """Create the peer venv if it cannot import its library; return (version or None, why not)."""
    return ensure_peer_venv(console, name, PEERS[name], venv, side_env())


def write_data(workdir: Path, rows: int) -> dict[str, Any]:
    """The clean table, its dirty copy and the checks (spec.json); returns the spec plus what is expected."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    arrays: dict[str, Any] = {}
    numeric = []
    for i in range(N_NUMERIC):
        shape = ("normal", "uniform", "lognormal", "exponential")[i % 4]
        if shape == "normal":
            mu, sigma = 10.0 * i, 1.0 + i % 5
            a, lo, hi = rng.normal(mu, sigma, rows), mu - 10 * sigma, mu + 10 * sigma
        elif shape == "uniform":
            lo, hi = -float(i), 100.0 + i
            a = rng.uniform(lo, hi, rows)
        elif shape == "lognormal":
            a, lo, hi = rng.lognormal(0.0, 1.0, rows), 0.0, 1e4
        else:
            scale = 1.0 + i
            a, lo, hi = rng.exponential(scale, rows), 0.0, 100 * scale
        arrays[f"f{i}"] = pa.array(a)
        numeric.append({"name": f"f{i}", "min": lo, "max": hi, "shape": shape})
    categorical = []
    for j in range(N_CATEGORICAL):
        k = 8 + (2 * j) % 5  # 8, 10, 12, 9, 11 categories
        cats = [f"c{j}_{v:02d}" for v in range(k)]
        p = 1.0 / np.arange(1, k + 1)
        codes = rng.choice(k, size=rows, p=p / p.sum()).astype(np.int32)
        arrays[f"c{j}"] = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(cats))
        categorical.append({"name": f"c{j}", "categories": cats})
    clean = pa.table(arrays)
    pq.write_table(clean, workdir / "clean.parquet")

    expected: dict[str, dict[str, int]] = {}
    dirty = dict(arrays)
    for c in numeric:
        if c["name"] not in DIRTY_NUMERIC:
            continue
        a = arrays[c["name"]].to_numpy().copy()
        idx = rng.choice(rows, DIRTY_PER_NUMERIC, replace=False)
        span = c["max"] - c["min"]
        half = DIRTY_PER_NUMERIC // 2
        a[idx[:half]] = c["max"] + span * rng.uniform(0.01, 1.0, half)
        a[idx[half:]] = c["min"] - span * rng.uniform(0.01, 1.0, DIRTY_PER_NUMERIC - half)
        dirty[c["name"]] = pa.array(a)
        expected[c["name"]] = {"range": DIRTY_PER_NUMERIC}
    for c in categorical:
        arr = arrays[c["name"]]
        codes = arr.indices.to_numpy().copy()
        unseen = [f"{c['name']}_unseen_{u}" for u in range(DIRTY_PER_CATEGORICAL)]
        n_null = DIRTY_NULL[1] if c["name"] == DIRTY_NULL[0] else 0
        idx = rng.choice(rows, DIRTY_PER_CATEGORICAL + n_null, replace=False)
        codes[idx[:DIRTY_PER_CATEGORICAL]] = len(c["categories"]) + np.arange(DIRTY_PER_CATEGORICAL, dtype=np.int32)
        mask = np.zeros(rows, dtype=bool)
        mask[idx[DIRTY_PER_CATEGORICAL:]] = True
        dirty[c["name"]] = pa.DictionaryArray.from_arrays(pa.array(codes, mask=mask if n_null else None),
                                                          pa.array(c["categories"] + unseen))
        expected[c["name"]] = {"category": DIRTY_PER_CATEGORICAL, **({"null": n_null} if n_null else {})}
    a = arrays[DIRTY_NAN[0]].to_numpy().copy()
    a[rng.choice(rows, DIRTY_NAN[1], replace=False)] = np.nan
    dirty[DIRTY_NAN[0]] = pa.array(a)  # NaN, not null: what pandas and numpy have for a missing float
    expected[DIRTY_NAN[0]] = {"null": DIRTY_NAN[1]}
    pq.write_table(pa.table(dirty), workdir / "dirty.parquet")
    spec = {"rows": rows, "numeric": numeric, "categorical": categorical}
    (workdir / "spec.json").write_text(json.dumps(spec, indent=2))
    return {**spec, "expected_dirty": expected, "bytes": (workdir / "clean.parquet").stat().st_size}


def run_side_process(side: str, python: str, workdir: Path, progress: Any, task: Any, console: Any) -> dict[str, Any]:
    out = workdir / f"{side}.json"
    log = workdir / f"{side}.log"
    cmd = [python, str(Path(__file__).resolve()), "--side", side, "--out", str(out), "--workdir", str(workdir)]
    rc, wall = run_child(cmd, cwd=workdir, out=out, log=log, env=side_env(), label=f"{side:8}", progress=progress,
                        task=task)
    if rc != 0 or not out.exists():
        print_failure(console, f"the {side} side", rc, log)
        return {"side": side, "available": False, "crashed": True, "reason": f"exit {rc}, see {log}"}
    result = json.loads(out.read_text())
    result["wall_seconds"] = wall
    result["stderr_log"] = str(log)
    if result.get("crashed"):
        console.print(f"[bold red]the {side} side crashed: {result.get('reason')}; see {log}[/]")
    return result


def _close(a: Any, b: Any, rel: float, abs_: float = 1e-9) -> bool:
    if a is None or b is None:
        return False
    return abs(float(a) - float(b)) <= max(rel * max(abs(float(a)), abs(float(b))), abs_)


def profile_checks(name: str, got: dict[str, Any], ref: dict[str, Any]) -> list[tuple[str, str]]:
    """Differences between a side's profile summary and the numpy reference: (what, detail)."""
    bad: list[tuple[str, str]] = []
    for col, r in ref["numeric"].items():
        g = got["numeric"].get(col)
        if g is None:
            bad.append((f"{name} profile: {col}", "column missing from the profile"))
            continue
        for k in ("count", "nulls"):
            if k in g and g[k] != r[k]:
                bad.append((f"{name} profile: {col}.{k}", f"{g[k]} != numpy {r[k]}"))
        for k, rel in (("mean", 1e-7), ("std", 1e-4), ("min", 1e-12), ("max", 1e-12)):
            if not _close(g.get(k), r[k], rel, abs_=1e-9 * max(1.0, abs(r["std"]))):
                bad.append((f"{name} profile: {col}.{k}", f"{g.get(k)} != numpy {r[k]}"))
        compared = 0
        for q, band in r["quantile_band"].items():
            v = g["quantiles"].get(q, g["quantiles"].get(str(float(q))))
            if v is None:
                continue  # a quantile this side does not compute
            compared += 1
            if not (band[0] - 1e-9 <= v <= band[1] + 1e-9):
                bad.append((f"{name} profile: {col} quantile {q}",
                            f"{v} outside numpy's [{band[0]}, {band[1]}] (q ± 0.01)"))
        if not compared:
            bad.append((f"{name} profile: {col} quantiles", f"none of {sorted(g['quantiles'])} is one of "
                        f"{sorted(r['quantile_band'])}: nothing to compare"))
    for col, r in ref["categorical"].items():
        g = got["categorical"].get(col)
        if g is None:
            bad.append((f"{name} profile: {col}", "column missing from the profile"))
            continue
        if g["count"] != r["count"]:
            bad.append((f"{name} profile: {col}.count", f"{g['count']} != numpy {r['count']}"))
        counts = dict((v, n) for v, n in r["top"])
        if not g["top"]:
            bad.append((f"{name} profile: {col}.top", "no value counts"))
        for v, n in g["top"]:
            if counts.get(v) != n:
                bad.append((f"{name} profile: {col} count of {v!r}", f"{n} != numpy {counts.get(v)}"))
        if g["top"] and g["top"][0][1] != r["top"][0][1]:
            bad.append((f"{name} profile: {col} most frequent", f"{g['top'][0]} != numpy {r['top'][0]}"))
    return bad


def parent_main(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table
    except ImportError:
        print("rich is missing: run this with the loopml venv, e.g. `.venv/bin/python bench/data_vs_peers.py`",
              file=sys.stderr)
        return 2
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=160)
    probe = subprocess.run([sys.executable, "-c", "import loopml, numpy, pyarrow"], capture_output=True, text=True,
                           env=side_env())
    if probe.returncode != 0:
        console.print(f"[red]this interpreter ({sys.executable}) cannot import loopml, numpy and pyarrow; "
                      "run it with .venv/bin/python[/]")
        return 2
    mode = "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    if args.rows:
        sizes["rows"] = args.rows
    if args.reps:
        sizes["reps"] = sizes["gx_reps"] = args.reps
    venvs = Path(args.venvs).absolute()

    pythons: dict[str, str] = {"numpy": sys.executable, "loopml": sys.executable}
    versions: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for peer in ("pandera", "gx"):
        if peer == "gx" and args.no_gx:
            skipped[peer] = "--no-gx"
            continue
        found, why = ensure_venv(console, peer, venvs / peer)
        if found is None:
            skipped[peer] = why
            style = "bold red" if PEERS[peer]["required"] else "yellow"
            console.print(f"[{style}]{peer}: skipped: {why}[/]")
            continue
        pythons[peer] = str(venv_python(venvs / peer))
        versions[peer] = found

    rows_n = sizes["rows"]
    workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-data-"))
    (workdir / "sizes.json").write_text(json.dumps(sizes))
    t0 = time.perf_counter()
    spec = write_data(workdir, rows_n)
    console.print(f"[bold]loopml data validation and profiling vs peers[/] ({mode}: {rows_n:,} rows x "
                  f"{N_NUMERIC} float64 + {N_CATEGORICAL} categorical columns, parquet "
                  f"{spec['bytes'] / 2**20:,.0f} MiB written in {time.perf_counter() - t0:.1f}s; "
                  f"median of {sizes['reps']} after a warm-up, GX {sizes['gx_reps']})")
    load_before = machine_load()
    if load_before["busy"]:
        console.print(f"[yellow]warning: the machine is busy (load average {load_before['loadavg_1m']:.1f} on "
                      f"{load_before['cpus']} CPUs); timings will be noisy[/]")

    results: dict[str, dict[str, Any]] = {}
    order = [s for s in ("numpy", "loopml", "pandera", "gx") if s in pythons]
    with Progress(SpinnerColumn(), TextColumn("{task.description}", style="bold"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console) as progress:
        tasks = {s: progress.add_task(f"{s:8} waiting", total=1000, start=False) for s in order}
        for side in order:
            progress.start_task(tasks[side])
            results[side] = run_side_process(side, pythons[side], workdir, progress, tasks[side], console)
    load_after = machine_load()

    # ---- checks ----
    failed: list[tuple[str, str]] = []
    for side, res in results.items():
        if not res.get("available"):
            failed.append((f"{side}: did not run", res.get("reason", "?")))
            continue
        for what, why in res.get("errors", {}).items():
            failed.append((f"{side}: {what} raised", why))
        if "validate" in res:
            if res["validate"]["failures"]:
                failed.append((f"{side}: clean data must pass", f"reported {res['validate']['failures']}"))
            got = res["dirty"]["failures"]
            if got != spec["expected_dirty"]:
                missed = {c: k for c, k in spec["expected_dirty"].items() if got.get(c) != k}
                extra = {c: k for c, k in got.items() if c not in spec["expected_dirty"]}
                failed.append((f"{side}: dirty data must fail exactly as injected",
                               f"wrong or missed: {json.dumps({c: [missed[c], got.get(c)] for c in missed})} "
                               f"(expected, got); unexpected: {json.dumps(extra)}"))
    ref = results.get("numpy", {}).get("profile", {}).get("summary")
    if ref is not None:
        for side in ("loopml", "pandera"):
            summary = results.get(side, {}).get("profile", {}).get("summary")
            if summary is not None:
                failed.extend(profile_checks("pandas describe" if side == "pandera" else side, summary, ref))

    # ---- table ----
    lm = results.get("loopml", {})
    lm_ok = bool(lm.get("available"))

    def t(side: str, what: str) -> float | None:
        return results.get(side, {}).get(what, {}).get("seconds")

    peer_rows: list[dict[str, Any]] = []  # the comparisons in SPEEDUP
    table = Table(title=f"loopml {lm.get('version', '?')} data checks vs peers — {mode}, {rows_n:,} rows x "
                        f"{N_NUMERIC + N_CATEGORICAL} columns (lower time is better)", title_justify="left")
    for col, kw in (("measurement", {}), ("tool", {}), ("median", {"justify": "right"}),
                    ("ratio", {"justify": "right"}), ("target", {"justify": "center"}), ("notes", {"style": "dim"})):
        table.add_column(col, **kw)

    def add(label: str, tool: str, secs: float | None, ratio: float | None, kind: str, target: float | None,
            note: str) -> None:
        if ratio is None:
            ratio_s, target_s = "n/a", (f"{'≥' if kind == 'peer' else '≤'}{target:g}x" if target else "")
        elif kind == "peer":  # peer time / loopml time: higher is better for loopml
            style = "green" if ratio >= (target or 1.0) else ("yellow" if ratio >= 1 else "red")
            ratio_s = f"[{style}]{ratio:,.2f}x faster[/]" if ratio >= 1 else f"[{style}]{1 / ratio:,.2f}x slower[/]"
            target_s = (f"≥{target:g}x " + ("[green]✓[/]" if ratio >= target else "[red]✗[/]")) if target else ""
        else:  # loopml time / numpy time: lower is better
            style = "green" if target and ratio <= target else "yellow"
            ratio_s = f"[{style}]loopml = {ratio:,.2f}x the limit[/]"
            target_s = (f"≤{target:g}x " + ("[green]✓[/]" if ratio <= target else "[red]✗[/]")) if target else ""
        table.add_row(label, tool, fmt_time(secs), ratio_s, target_s, note)

    def row(label: str, what: str, side: str, tool: str, kind: str, target: float | None, note: str) -> None:
        if side not in results and side in skipped:
            add(label, tool, None, None, kind, target, f"skipped: {skipped[side]}")
            return
        res = results.get(side, {})
        if not res.get("available"):
            add(label, tool, None, None, kind, target, f"n/a: {res.get('reason', '?')}")
            return
        secs, lsecs = t(side, what), t("loopml", what)
        if secs is None and what in res.get("unavailable", {}):
            note = f"n/a: {res['unavailable'][what]}"
        ratio = None
        if secs is not None and lsecs:
            ratio = secs / lsecs if kind == "peer" else lsecs / secs
        if kind == "peer" and ratio is not None:
            peer_rows.append({"label": f"{label}: {tool}", "ratio": ratio})
        add(label, tool, secs, ratio, kind, target, note)

    v = "validate"
    def lm_note(what: str) -> str:
        if not lm_ok:
            return f"n/a: {lm.get('reason', '?')}"
        return f"n/a: {lm['unavailable'][what]}" if what in lm.get("unavailable", {}) else ""

    add(v, "loopml", t("loopml", v), None, "", None,
        lm_note(v) or "validate(table, schema): 20 x (type, not null, min/max) + 5 x (type, not null, categories)")
    row(v, v, "numpy", "numpy (physical limit)", "limit", 1.5,
        "dtype ==, np.isnan().any(), min()/max() vs bounds; np.isin on codes; rows counted only on failure")
    row(v, v, "pandera", f"pandera {versions.get('pandera', '')}", "peer", 4.0,
        "DataFrameSchema(strict=True).validate(df, lazy=True): in_range, isin, nullable=False, dtype")
    row(v, v, "gx", f"Great Expectations {versions.get('gx', '')}", "peer", None,
        "suite of 75 expectations (of_type, not_null, between / in_set) on a pandas batch, result_format=BASIC")
    p = "profile"
    pdv = results.get("pandera", {}).get("profile", {}).get("summary", {}).get("pandas", "")
    lm_prof = lm.get("profile", {}).get("summary", {})
    add(p, "loopml", t("loopml", p), None, "", None,
        lm_note(p) or (f"profile_table(table); computes {', '.join(lm_prof.get('fields', []))}"
                    + (f"; sample_size={lm_prof.get('sample_size')}" if lm_prof.get("sample_size") else "")
                    + (f"; correlations of {lm_prof.get('correlations')} columns" if lm_prof.get("correlations")
                       else "")))
    row(p, p, "numpy", "numpy (physical limit)", "limit", 3.0,
        f"count, nulls, mean, std, min, max, np.percentile({len(QUANTILES)} q) per numeric; np.bincount per "
        "categorical")
    row(p, p, "pandera", f"pandas {pdv} describe()", "peer", None,
        f"df.describe(percentiles=<{len(QUANTILES)} q>, include='all'): count, mean, std, min, max, quantiles; "
        "count, unique, top, freq")
    console.print(table)
    console.print("[dim]untimed: reading the parquet file into each side's in-memory form: "
                  + ", ".join(f"{s} {fmt_time(r.get('load_seconds'))}" for s, r in results.items() if r.get("available"))
                  + "; dirty-copy validation: "
                  + ", ".join(f"{s} {fmt_time(r['dirty']['seconds'])}" for s, r in results.items() if "dirty" in r)
                  + "[/]")

    for what, detail in failed:
        console.print(f"[bold white on red] CHECK FAILED [/] [red]{what}: {detail}[/]")
    if failed:
        for side, res in results.items():
            if res.get("stderr_log"):
                console.print(f"[red]   stderr of the {side} side: {res['stderr_log']}[/]")
    else:
        console.print(f"[green]checks passed: clean data passes on every side; the dirty copy fails on every side "
                      f"with exactly what was injected ({len(DIRTY_NUMERIC) * DIRTY_PER_NUMERIC} out-of-range values, "
                      f"{N_CATEGORICAL * DIRTY_PER_CATEGORICAL} rows of unseen categories, {DIRTY_NAN[1]} NaN, "
                      f"{DIRTY_NULL[1]} nulls); profiles agree with numpy[/]")
    for what, why in lm.get("unavailable", {}).items():
        console.print(f"[yellow]note: loopml {what} is n/a ({why}); it is left out of SPEEDUP[/]")
    for what in ("validate", "profile"):
        n_t, l_t = t("numpy", what), t("loopml", what)
        if n_t and l_t:
            console.print(f"loopml {what}: {l_t / n_t:.2f}x the physical limit (numpy {fmt_time(n_t)}, "
                          f"loopml {fmt_time(l_t)}; target ≤{1.5 if what == 'validate' else 3.0:g}x)")

    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "mode": mode, "sizes": sizes, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"platform": sys.platform, "load_before": load_before, "load_after": load_after},
            "spec": spec, "skipped": skipped, "failed_checks": [{"what": w, "detail": d} for w, d in failed],
            "peer_ratios": peer_rows, "sides": results,
        }, indent=2, default=str))
        console.print(f"[dim]results saved to {path}[/]")
    if args.keep:
        console.print(f"[dim]kept {workdir} (data, spec, per-side JSON and stderr logs)[/]")
    elif failed:  # keep the logs for the failure, drop the data
        for f in workdir.glob("*.parquet"):
            f.unlink()
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    sys.stdout.flush()
    if not lm_ok or not peer_rows:
        why = lm.get("reason") or "; ".join(lm.get("unavailable", {}).values()) or "no peer measured"
        print(f"SPEEDUP min=n/a ({why})", flush=True)
        return 2
    worst = min(peer_rows, key=lambda r: r["ratio"])
    print(f"SPEEDUP min={worst['ratio']:.2f} ({worst['label']})", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark loopml's data validation and profiling against peers.")
    p.add_argument("--quick", action="store_true", help="200,000 rows and fewer repetitions (under a minute)")
    p.add_argument("--rows", type=int, help="number of rows (default: 1,000,000; 200,000 with --quick)")
    p.add_argument("--reps", type=int, help="timed repetitions per measurement (median; after one warm-up)")
    p.add_argument("--no-gx", action="store_true", help="leave Great Expectations out")
    p.add_argument("--json", metavar="PATH", help="save all results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (data, per-side JSON, logs)")
    p.add_argument("--venvs", metavar="DIR", default=str(VENVS),
                   help="where the peer venvs are (created if missing; default: bench/.venvs)")
    p.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        if not args.out or not args.workdir:
            p.error("--side needs --out and --workdir")
        return side_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
