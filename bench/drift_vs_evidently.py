#!/usr/bin/env python
"""loopml's data-drift detection vs Evidently 0.7 and a plain numpy/scipy implementation (the limit).

Usage (from the repository root)::

    .venv/bin/python bench/drift_vs_evidently.py --quick        # 100,000 rows, under a minute once the venv exists
    .venv/bin/python bench/drift_vs_evidently.py                # 100,000 and 1,000,000 rows (several minutes)
    .venv/bin/python bench/drift_vs_evidently.py --json bench/results/drift.json

How it works: this script (run with the loopml venv's interpreter) makes sure the
Evidently venv exists (``bench/.venvs/evidently`` with ``evidently>=0.7,<0.8`` and
``pandas<3``), writes, for each size, a reference and a current table of N rows x 25
columns (20 float64 columns of different shapes, 5 dictionary-encoded string columns
of 3 to 30 categories; numpy, fixed seed) to parquet files, with shifts injected into
6 known columns of the current table, then re-invokes itself once per side and size,
one process after the other so that they never compete for the CPU:

* ``--side limit``     (this interpreter, numpy + scipy only): the same statistics written
  directly: two-sample KS with ``np.searchsorted`` on sorted arrays for numeric columns,
  ``scipy.stats.chi2_contingency`` on the 2 x k counts for categorical ones, and
  Benjamini-Hochberg over the 25 p-values;
* ``--side limit-sample`` (above 100,000 rows only): the same, with the KS test against a
  100,000-value sample of the reference, as loopml's default ``DriftConfig.sample_size`` does;
* ``--side loopml``    (this interpreter): ``fit_reference(table, categorical=[...])`` then
  ``detect_drift(ref, current)`` from ``loopml.monitoring.drift`` on pyarrow Tables;
* ``--side evidently`` and ``--side evidently-ks`` (the Evidently venv): ``Report([DataDriftPreset()])``
  with its defaults, and with ``num_method="ks", cat_method="chisquare"``, on pandas frames.

Each side process imports its library, reads the two parquet files into its natural
in-memory form (untimed), runs once on the first 2,000 rows (untimed warm-up, so lazy
imports are not measured), then times ``reps`` full runs and keeps the median wall time.
Memory: before each timed run the process resets its peak resident set size (writing
``5`` to ``/proc/self/clear_refs``) and reads ``VmRSS``; after it, ``VmHWM`` minus that
baseline is the peak memory the run added (the largest over the runs is shown).

The last line printed is always ``SPEEDUP min=<x> (<config> at <N> rows)``: the smallest
Evidently-time / loopml-time ratio over the Evidently configurations and sizes run, or
``SPEEDUP min=n/a (loopml monitoring not available)`` while ``loopml.monitoring.drift``
does not exist (the peers and the limit still run).

Side code uses only the standard library, numpy, scipy, pyarrow and the library under test,
because the Evidently venv has neither rich nor loopml.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
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
SEED = 20240917
WARMUP_ROWS = 2_000
#: the false discovery rate of the limit's Benjamini-Hochberg step
FDR = 0.05

#: sizes (rows in each of the reference and current tables) and timed repetitions per side
MODES: dict[str, dict[int, dict[str, int]]] = {
    "full": {100_000: {"reps": 5, "evidently_reps": 2}, 1_000_000: {"reps": 3, "evidently_reps": 1}},
    "quick": {100_000: {"reps": 3, "evidently_reps": 1}},
}

#: targets for loopml (printed as met / not met; they do not change the exit status)
TARGET_VS_EVIDENTLY = 10.0  # at least this many times faster than every Evidently configuration
TARGET_VS_LIMIT = 2.0  # at most this multiple of the numpy/scipy limit
TARGET_MEMORY_MB = 150.0  # peak added memory at 1,000,000 rows
TARGET_MEMORY_ROWS = 1_000_000
TARGET_UNSHIFTED = 1  # at most this many unshifted columns flagged (and every shifted one caught)

# ---- the data: (name, numpy generator method, keyword arguments); integer-valued columns are stored as float64
NUMERIC: list[tuple[str, str, dict[str, float]]] = [
    ("normal_0", "normal", {"loc": 0.0, "scale": 1.0}),
    ("normal_1", "normal", {"loc": 50.0, "scale": 10.0}),
    ("normal_2", "normal", {"loc": -3.0, "scale": 0.5}),
    ("normal_3", "normal", {"loc": 1000.0, "scale": 200.0}),
    ("normal_4", "normal", {"loc": 0.0, "scale": 5.0}),
    ("lognormal_0", "lognormal", {"mean": 0.0, "sigma": 1.0}),
    ("lognormal_1", "lognormal", {"mean": 2.0, "sigma": 0.5}),
    ("lognormal_2", "lognormal", {"mean": 0.0, "sigma": 1.5}),
    ("lognormal_3", "lognormal", {"mean": 1.0, "sigma": 0.25}),
    ("uniform_0", "uniform", {"low": 0.0, "high": 1.0}),
    ("uniform_1", "uniform", {"low": -100.0, "high": 100.0}),
    ("uniform_2", "uniform", {"low": 10.0, "high": 20.0}),
    ("uniform_3", "uniform", {"low": 0.0, "high": 1000.0}),
    ("exponential_0", "exponential", {"scale": 1.0}),
    ("exponential_1", "exponential", {"scale": 10.0}),
    ("exponential_2", "exponential", {"scale": 0.1}),
    ("int_poisson_0", "poisson", {"lam": 3.0}),
    ("int_poisson_1", "poisson", {"lam": 10.0}),
    ("int_uniform_0", "integers", {"low": 0, "high": 101}),
    ("int_binomial_0", "binomial", {"n": 20, "p": 0.3}),
]
#: categorical columns: (name, number of categories); frequencies ~ 1 / rank**0.8
CATEGORICAL: list[tuple[str, int]] = [("cat_3", 3), ("cat_7", 7), ("cat_12", 12), ("cat_20", 20), ("cat_30", 30)]
#: the shifts injected into the current table: column -> what was done (the generator below does it)
SHIFTS: dict[str, str] = {
    "normal_1": "mean +0.25 std",
    "uniform_1": "scale x1.3 around the centre",
    "exponential_0": "tail: values above the 95th percentile x1.4",
    "int_poisson_1": "mean +0.25 std (Poisson λ 10 → 10.79)",
    "cat_7": "10 points of share moved from the 1st category to the 3rd",
    "cat_20": "a new category at 5% (the others scaled by 0.95)",
}
ALL_COLUMNS = [n for n, _, _ in NUMERIC] + [n for n, _ in CATEGORICAL]
CATEGORICAL_NAMES = [n for n, _ in CATEGORICAL]
UNSHIFTED = [c for c in ALL_COLUMNS if c not in SHIFTS]

PEER = {
    "requirements": ["evidently>=0.7,<0.8", "pandas<3", "pyarrow"],
    "probe": "import evidently, pandas, pyarrow; print(evidently.__version__)",
    "major": "0",
}
#: the Evidently configurations: side name -> (label, DataDriftPreset keyword arguments)
EVIDENTLY_CONFIGS: dict[str, tuple[str, dict[str, str]]] = {
    "evidently": ("default", {}),
    "evidently-ks": ("KS + chi²", {"num_method": "ks", "cat_method": "chisquare"}),
}
#: loopml's default ``DriftConfig.sample_size``: its reference keeps at most this many values per numeric column,
#: and its KS test runs against them; the "limit-sample" side does the same, so that above this size
#: loopml can also be compared with a limit doing the same work
REFERENCE_SAMPLE = 100_000
SIDE_NAMES = ["limit", "limit-sample", "loopml", *EVIDENTLY_CONFIGS]


# =============================================================================
# The side process: one tool's half, results as JSON. No rich, no loopml outside the loopml side.
# =============================================================================


def progress(desc: str, frac: float) -> None:
    print(PROGRESS_PREFIX + json.dumps({"desc": desc, "frac": min(frac, 1.0)}), flush=True)


class Memory:
    """Peak resident memory added by a block: ``VmHWM`` after it minus ``VmRSS`` before it.

    The peak is reset before the block through ``/proc/self/clear_refs``; where that is not
    possible, a thread samples ``VmRSS`` every 2 ms instead (and may miss short peaks).
    """

    def __init__(self) -> None:
        self.method = "VmHWM (reset via /proc/self/clear_refs)"
        try:
            self._status()
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.method = "VmRSS sampled every 2 ms"
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _status() -> dict[str, int]:
        text = Path("/proc/self/status").read_text()
        return {k: int(re.search(rf"^{k}:\s+(\d+) kB", text, re.M).group(1)) * 1024  # type: ignore[union-attr]
                for k in ("VmRSS", "VmHWM")}

    def rss(self) -> int:
        return self._status()["VmRSS"]

    def start(self) -> int:
        gc.collect()
        if self.method.startswith("VmHWM"):
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return self.rss()
        base = self._peak = self.rss()
        self._stop.clear()

        def sample() -> None:
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, self.rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return base

    def peak(self) -> int:
        if self.method.startswith("VmHWM"):
            return self._status()["VmHWM"]
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return max(self._peak, self.rss())


class LimitSide:
    """The physical limit: the same statistics on numpy arrays, with numpy and scipy."""

    tool = "numpy/scipy limit"

    def __init__(self, sample: int | None = None) -> None:
        self.sample = sample  # KS against a uniform sample of the reference of this many values

    def setup(self) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq
        import scipy
        from scipy.special import kolmogorov
        from scipy.stats import chi2_contingency
        from scipy.stats.distributions import kstwo

        self.np, self.pa, self.pq = np, pa, pq
        self.chi2_contingency, self.kstwo, self.kolmogorov = chi2_contingency, kstwo, kolmogorov
        self.version = f"numpy {np.__version__}, scipy {scipy.__version__}"
        self.rng = np.random.default_rng(SEED)

    def load(self, path: Path) -> dict[str, Any]:
        """float64 arrays; categorical columns as (codes, categories)."""
        table = self.pq.read_table(path)
        out: dict[str, Any] = {}
        for name in table.column_names:
            col = table.column(name)
            if self.pa.types.is_dictionary(col.type):
                arr = col.unify_dictionaries().combine_chunks() if col.num_chunks > 1 else col.chunk(0)
                out[name] = (arr.indices.to_numpy(), arr.dictionary.to_pylist())
            else:
                out[name] = col.to_numpy()
        return out

    def head(self, data: dict[str, Any], n: int) -> dict[str, Any]:
        return {k: (v[0][:n], v[1]) if isinstance(v, tuple) else v[:n] for k, v in data.items()}

    def fit(self, ref: dict[str, Any]) -> dict[str, Any]:
        """What a reference needs: per numeric column its distinct sorted values u with #(r <= u) and #(r < u)."""
        np = self.np
        fitted: dict[str, Any] = {}
        for name, value in ref.items():
            if isinstance(value, tuple):
                codes, cats = value
                fitted[name] = ("chi2", dict(zip(cats, np.bincount(codes, minlength=len(cats)).tolist(), strict=True)))
            else:
                if self.sample is not None and value.size > self.sample:
                    value = value[self.rng.choice(value.size, self.sample, replace=False, shuffle=False)]
                r = np.sort(value)
                last = np.empty(r.size, dtype=bool)
                np.not_equal(r[1:], r[:-1], out=last[:-1])
                last[-1] = True
                ends = np.flatnonzero(last) + 1
                fitted[name] = ("ks", r[ends - 1], ends / r.size, np.concatenate([[0], ends[:-1]]) / r.size, r.size)
        return fitted

    def ks_pvalue(self, d: float, n1: int, n2: int) -> float:
        """``ks_2samp(method="asymp")``'s p-value (``kstwo.sf``) up to an effective size of 10,000; above
        that the Kolmogorov limit with Stephens' correction (``kstwo.sf`` can take a second there)."""
        en = n1 * n2 / (n1 + n2)
        if en <= 10_000:
            return float(self.kstwo.sf(d, round(en)))
        return float(self.kolmogorov(en**0.5 * d + 1 / (6 * en**0.5)))

    def detect(self, fitted: dict[str, Any], cur: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """KS: both ECDFs at every distinct reference value and just below it (where the extremes of
        F_ref - F_cur are: F_ref is flat in between), i.e. two binary searches into the sorted window."""
        np = self.np
        out: dict[str, dict[str, Any]] = {}
        for name, f in fitted.items():
            if f[0] == "ks":
                _, u, at_r, below_r, n1 = f
                c = np.sort(cur[name])
                n2 = c.size
                d = max(float(np.abs(at_r - np.searchsorted(c, u, side="right") / n2).max()),
                        float(np.abs(below_r - np.searchsorted(c, u, side="left") / n2).max()))
                out[name] = {"method": "ks", "stat": d, "p": self.ks_pvalue(d, n1, n2)}
            else:
                ref_counts = f[1]
                codes, cats = cur[name]
                cur_counts = dict(zip(cats, np.bincount(codes, minlength=len(cats)).tolist(), strict=True))
                keys = list(ref_counts) + [k for k in cur_counts if k not in ref_counts]
                table = np.array([[ref_counts.get(k, 0) for k in keys], [cur_counts.get(k, 0) for k in keys]])
                table = table[:, table.sum(axis=0) > 0]
                chi2, p, _, _ = self.chi2_contingency(table, correction=False)
                v = float(np.sqrt(chi2 / table.sum() / (min(table.shape) - 1)))  # Cramér's V
                out[name] = {"method": "chi2", "stat": v, "p": float(p)}
        names = list(out)
        for name, rejected in zip(names, benjamini_hochberg(np, [out[n]["p"] for n in names], FDR), strict=True):
            out[name]["drifted"] = bool(rejected)
        return out

    def run(self, ref: Any, cur: Any) -> tuple[dict[str, float], Any]:
        t0 = time.perf_counter()
        fitted = self.fit(ref)
        t1 = time.perf_counter()
        result = self.detect(fitted, cur)
        t2 = time.perf_counter()
        return {"fit": t1 - t0, "detect": t2 - t1, "total": t2 - t0}, result

    def columns(self, raw: Any) -> dict[str, dict[str, Any]]:
        return raw


def benjamini_hochberg(np: Any, pvalues: list[float], q: float) -> list[bool]:
    """Which hypotheses Benjamini-Hochberg rejects at false discovery rate ``q``."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    passed = np.flatnonzero(p[order] <= q * np.arange(1, m + 1) / m)
    reject = np.zeros(m, dtype=bool)
    if passed.size:
        reject[order[: passed[-1] + 1]] = True
    return reject.tolist()


class LoopmlSide:
    tool = "loopml"

    def setup(self) -> None:
        import pyarrow.parquet as pq

        import loopml

        self.pq = pq
        self.version = loopml.__version__
        from loopml.monitoring.drift import detect_drift, fit_reference

        self.fit_reference, self.detect_drift = fit_reference, detect_drift

    def load(self, path: Path) -> Any:
        return self.pq.read_table(path)

    def head(self, data: Any, n: int) -> Any:
        return data.slice(0, n)

    def run(self, ref: Any, cur: Any) -> tuple[dict[str, float], Any]:
        t0 = time.perf_counter()
        fitted = self.fit_reference(ref, categorical=CATEGORICAL_NAMES)
        t1 = time.perf_counter()
        report = self.detect_drift(fitted, cur)
        t2 = time.perf_counter()
        return {"fit": t1 - t0, "detect": t2 - t1, "total": t2 - t0}, report

    def columns(self, raw: Any) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, c in raw.columns.items():
            out[name] = {"method": str(c.method), "stat": _num(c.effect_size), "p": _num(c.p_value),
                         "threshold": _num(c.threshold), "reason": str(c.reason),
                         "drifted": None if c.drifted is None else bool(c.drifted)}
        self.summary = {"drifted_columns": list(raw.drifted_columns), "dataset_drift": bool(raw.dataset_drift)}
        return out


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


class EvidentlySide:
    """Evidently 0.7: ``Report([DataDriftPreset(...)], include_tests=True).run(current, reference)`` on pandas."""

    tool = "Evidently"

    def __init__(self, preset_kwargs: dict[str, str]) -> None:
        self.preset_kwargs = preset_kwargs

    def setup(self) -> None:
        import evidently
        import pandas as pd
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        self.pd, self.Report, self.Dataset, self.Preset = pd, Report, Dataset, DataDriftPreset
        self.version = f"{evidently.__version__} (pandas {pd.__version__})"
        self.definition = DataDefinition(numerical_columns=[n for n, _, _ in NUMERIC],
                                         categorical_columns=CATEGORICAL_NAMES)

    def load(self, path: Path) -> Any:
        return self.pd.read_parquet(path)  # float64 columns, category columns

    def head(self, data: Any, n: int) -> Any:
        return data.iloc[:n]

    def run(self, ref: Any, cur: Any) -> tuple[dict[str, float], Any]:
        # include_tests=True makes every ValueDrift carry Evidently's own drifted / not drifted verdict
        t0 = time.perf_counter()
        current = self.Dataset.from_pandas(cur, data_definition=self.definition)
        reference = self.Dataset.from_pandas(ref, data_definition=self.definition)
        t1 = time.perf_counter()
        snapshot = self.Report([self.Preset(**self.preset_kwargs)], include_tests=True).run(current, reference)
        t2 = time.perf_counter()
        return {"datasets": t1 - t0, "report": t2 - t1, "total": t2 - t0}, snapshot

    def columns(self, raw: Any) -> dict[str, dict[str, Any]]:
        d = raw.dict()
        out: dict[str, dict[str, Any]] = {}
        counted = None
        for m in d["metrics"]:
            cfg = m.get("config", {})
            if cfg.get("type", "").endswith("ValueDrift"):
                out[cfg["column"]] = {"method": cfg.get("method"), "threshold": cfg.get("threshold"),
                                      "stat": _num(m.get("value")), "p": None, "drifted": None}
            elif cfg.get("type", "").endswith("DriftedColumnsCount"):
                counted = int(m["value"]["count"])
        for t in d["tests"]:
            found = re.fullmatch(r"Value Drift for column (.+)", t.get("name", ""))
            if found and found.group(1) in out:
                out[found.group(1)]["drifted"] = str(t.get("status")).upper().endswith("FAIL")
        for c in out.values():
            if str(c["method"]).lower() in ("ks", "chisquare"):  # p-value methods: the value is the p-value
                c["p"], c["stat"] = c["stat"], None
        self.summary = {"drifted_columns_count": counted}
        return out


def make_side(name: str) -> Any:
    if name == "limit":
        return LimitSide()
    if name == "limit-sample":
        return LimitSide(sample=REFERENCE_SAMPLE)
    if name == "loopml":
        return LoopmlSide()
    return EvidentlySide(EVIDENTLY_CONFIGS[name][1])


def run_side(side_name: str, workdir: Path, rows: int, reps: int) -> dict[str, Any]:
    side = make_side(side_name)
    out: dict[str, Any] = {"side": side_name, "rows": rows, "reps": reps, "python": sys.version.split()[0],
                           "executable": sys.executable}
    progress("importing", 0.0)
    t0 = time.perf_counter()
    try:
        side.setup()
    except ImportError as e:
        out.update(available=False, import_error=True, reason=f"{type(e).__name__}: {e}")
        return out
    out.update(available=True, version=side.version, import_seconds=time.perf_counter() - t0)
    mem = Memory()
    out["memory_method"] = mem.method
    progress("reading the parquet files (untimed)", 0.05)
    t0 = time.perf_counter()
    ref = side.load(workdir / f"ref_{rows}.parquet")
    cur = side.load(workdir / f"cur_{rows}.parquet")
    out["load_seconds"] = time.perf_counter() - t0
    progress(f"warm-up on {WARMUP_ROWS:,} rows (untimed)", 0.1)
    t0 = time.perf_counter()
    side.run(side.head(ref, WARMUP_ROWS), side.head(cur, WARMUP_ROWS))
    out["warmup_seconds"] = time.perf_counter() - t0
    gc.collect()
    out["rss_after_load_mb"] = mem.rss() / 2**20
    runs = []
    result = None
    for r in range(reps):
        progress(f"run {r + 1} of {reps}", 0.15 + 0.85 * r / reps)
        del result
        base = mem.start()
        c0 = time.process_time()
        times, result = side.run(ref, cur)
        cpu = time.process_time() - c0
        peak = mem.peak()
        runs.append({**times, "cpu": cpu, "added_mb": max(peak - base, 0) / 2**20, "base_mb": base / 2**20})
    progress("collecting the verdicts (untimed)", 0.99)
    out["runs"] = runs
    out["seconds"] = {k: statistics.median(run[k] for run in runs) for k in runs[0] if k not in ("base_mb",)}
    out["added_mb"] = max(run["added_mb"] for run in runs)
    out["columns"] = side.columns(result)
    out["summary"] = getattr(side, "summary", {})
    progress("done", 1.0)
    return out


def side_main(args: argparse.Namespace) -> int:
    try:
        result = run_side(args.side, Path(args.workdir).resolve(), args.side_rows, args.side_reps)
    except Exception as e:
        traceback.print_exc()
        result = {"side": args.side, "available": False, "crashed": True, "reason": f"{type(e).__name__}: {e}"}
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    return 0


# =============================================================================
# The parent process: the venv, the data, the sides, the report. Uses rich.
# =============================================================================


def side_env() -> dict[str, str]:
    """The environment of a side: no LOOPML_* settings or PYTHONPATH leaking in, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "EVIDENTLY_"))}
    env.pop("PYTHONPATH", None)
    env["DO_NOT_TRACK"] = "1"  # Evidently's telemetry switch
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONWARNINGS"] = "ignore"  # Evidently's scipy calls warn on every run (divide by zero); keep logs short
    return env


def _category_probs(np: Any, k: int) -> Any:
    p = 1.0 / np.arange(1, k + 1) ** 0.8
    return p / p.sum()


def write_data(workdir: Path, rows: int) -> dict[str, Any]:
    """The reference and current tables for one size (parquet); the shifts are in ``SHIFTS``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([SEED, rows])
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for name, method, kw in NUMERIC:
        draw = getattr(rng, method)
        ref[name] = pa.array(draw(size=rows, **kw).astype(np.float64))
        kw_cur = dict(kw)
        if name == "normal_1":
            kw_cur["loc"] = kw["loc"] + 0.25 * kw["scale"]
        elif name == "uniform_1":
            mid, half = (kw["low"] + kw["high"]) / 2, (kw["high"] - kw["low"]) / 2
            kw_cur["low"], kw_cur["high"] = mid - 1.3 * half, mid + 1.3 * half
        elif name == "int_poisson_1":
            kw_cur["lam"] = kw["lam"] + 0.25 * kw["lam"] ** 0.5
        a = draw(size=rows, **kw_cur).astype(np.float64)
        if name == "exponential_0":
            q95 = kw["scale"] * np.log(20.0)  # the reference's 95th percentile
            a[a > q95] *= 1.4
        cur[name] = pa.array(a)
    for name, k in CATEGORICAL:
        cats = [f"{name}_v{v:02d}" for v in range(k)]
        p = _category_probs(np, k)
        ref[name] = pa.DictionaryArray.from_arrays(pa.array(rng.choice(k, size=rows, p=p).astype(np.int32)),
                                                   pa.array(cats))
        cur_cats, q = list(cats), p.copy()
        if name == "cat_7":
            q[0] -= 0.10
            q[2] += 0.10
        elif name == "cat_20":
            q = np.append(q * 0.95, 0.05)
            cur_cats.append(f"{name}_new")
        codes = rng.choice(len(q), size=rows, p=q).astype(np.int32)
        cur[name] = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(cur_cats))
    pq.write_table(pa.table(ref), workdir / f"ref_{rows}.parquet")
    pq.write_table(pa.table(cur), workdir / f"cur_{rows}.parquet")
    return {"rows": rows, "bytes": sum((workdir / f"{t}_{rows}.parquet").stat().st_size for t in ("ref", "cur"))}


def run_side_process(side: str, python: str, workdir: Path, rows: int, reps: int, progress: Any, task: Any,
                     console: Any) -> dict[str, Any]:
    out = workdir / f"{side}_{rows}.json"
    log = workdir / f"{side}_{rows}.log"
    cmd = [python, str(Path(__file__).resolve()), "--side", side, "--side-rows", str(rows), "--side-reps", str(reps),
           "--out", str(out), "--workdir", str(workdir)]
    label = f"{side:13} {rows:>9,}"
    rc, wall = run_child(cmd, cwd=workdir, out=out, log=log, env=side_env(), label=label, progress=progress, task=task)
    if rc != 0 or not out.exists():
        print_failure(console, f"the {side} side ({rows:,} rows)", rc, log)
        return {"side": side, "available": False, "crashed": True, "reason": f"exit {rc}, see {log}"}
    result = json.loads(out.read_text())
    result["process_seconds"] = wall
    result["stderr_log"] = str(log)
    if result.get("crashed"):
        console.print(f"[bold red]the {side} side ({rows:,} rows) crashed: {result.get('reason')}; see {log}[/]")
    return result


def verdicts(res: dict[str, Any]) -> dict[str, Any]:
    """Caught shifted columns, flagged unshifted ones, and columns without a verdict."""
    cols = res.get("columns", {})
    flagged = {c for c, v in cols.items() if v.get("drifted")}
    return {"caught": [c for c in SHIFTS if c in flagged], "missed": [c for c in SHIFTS if c not in flagged],
            "false": [c for c in UNSHIFTED if c in flagged],
            "undecided": [c for c in ALL_COLUMNS if c in cols and cols[c].get("drifted") is None],
            "absent": [c for c in ALL_COLUMNS if c not in cols]}


def loopml_status() -> str | None:
    """None if ``loopml.monitoring.drift`` can be found, else why not."""
    import importlib.util

    try:
        if importlib.util.find_spec("loopml.monitoring.drift") is None:
            return "loopml.monitoring.drift does not exist"
    except ImportError as e:
        return f"{type(e).__name__}: {e}"
    return None


def parent_main(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console  # noqa: F401 - rich must be there: the script prints with it
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table
    except ImportError:
        print("rich is missing: run this with the loopml venv, e.g. `.venv/bin/python bench/drift_vs_evidently.py`",
              file=sys.stderr)
        return 2
    console = make_console()
    probe = subprocess.run([sys.executable, "-c", "import loopml, numpy, scipy, pyarrow"], capture_output=True,
                           text=True, env=side_env())
    if probe.returncode != 0:
        console.print(f"[red]this interpreter ({sys.executable}) cannot import loopml, numpy, scipy and pyarrow; "
                      "run it with .venv/bin/python[/]")
        return 2
    mode = "quick" if args.quick else "full"
    plan = {rows: dict(cfg) for rows, cfg in MODES[mode].items()}
    if args.sizes:
        plan = {int(s.replace("_", "")): dict(MODES["full"].get(int(s.replace("_", "")), MODES["full"][1_000_000]))
                for s in args.sizes.split(",")}
    for cfg in plan.values():
        if args.reps:
            cfg["reps"] = args.reps
        if args.evidently_reps:
            cfg["evidently_reps"] = args.evidently_reps

    lm_missing = loopml_status()
    pythons: dict[str, str] = {"limit": sys.executable, "limit-sample": sys.executable}
    if lm_missing is None:
        pythons["loopml"] = sys.executable
    else:
        console.print(f"[yellow]loopml: not run: {lm_missing}[/]")
    ev_version, skipped = None, ""
    if args.no_evidently:
        skipped = "--no-evidently"
    else:
        ev_venv = Path(args.venvs).absolute() / "evidently"
        ev_version, skipped = ensure_peer_venv(console, "evidently", PEER, ev_venv, side_env())
        if ev_version is not None and not ev_version.startswith("0.7."):
            skipped = f"{ev_venv} has Evidently {ev_version}, not 0.7.x: remove the venv to have it recreated"
            ev_version = None
        if ev_version is not None:
            for side in EVIDENTLY_CONFIGS:
                pythons[side] = str(venv_python(ev_venv))
    if skipped:
        console.print(f"[bold red]Evidently: skipped: {skipped}[/]")

    workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-drift-"))
    data: dict[int, dict[str, Any]] = {}
    for rows in plan:
        t0 = time.perf_counter()
        data[rows] = write_data(workdir, rows)
        data[rows]["seconds"] = time.perf_counter() - t0
    console.print(f"[bold]loopml drift detection vs Evidently and the numpy/scipy limit[/] ({mode}: "
                  + "; ".join(f"{r:,} rows ({d['bytes'] / 2**20:,.0f} MiB of parquet, written in {d['seconds']:.1f}s)"
                              for r, d in data.items())
                  + f" in each of reference and current; {len(NUMERIC)} float64 + {len(CATEGORICAL)} categorical "
                  f"columns, {len(SHIFTS)} shifted)")
    load_before = machine_load()
    if load_before["busy"]:
        console.print(f"[yellow]warning: the machine is busy (load average {load_before['loadavg_1m']:.1f} on "
                      f"{load_before['cpus']} CPUs); timings will be noisy[/]")

    def wanted(side: str, rows: int) -> bool:  # the same-sample limit only where loopml samples its reference
        return side != "limit-sample" or rows > REFERENCE_SAMPLE

    results: dict[int, dict[str, dict[str, Any]]] = {rows: {} for rows in plan}
    order = [s for s in SIDE_NAMES if s in pythons]
    with Progress(SpinnerColumn(), TextColumn("{task.description}", style="bold"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console) as prog:
        tasks = {(s, r): prog.add_task(f"{s:13} {r:>9,} waiting", total=1000, start=False)
                 for r in plan for s in order if wanted(s, r)}
        for rows, cfg in plan.items():
            for side in (s for s in order if wanted(s, rows)):
                prog.start_task(tasks[side, rows])
                reps = cfg["evidently_reps"] if side in EVIDENTLY_CONFIGS else cfg["reps"]
                results[rows][side] = run_side_process(side, pythons[side], workdir, rows, reps, prog,
                                                       tasks[side, rows], console)
    load_after = machine_load()

    # ---- checks: the limit must see the injected shifts (else the data are wrong), every side answers every column
    failed: list[tuple[str, str]] = []
    for rows, by_side in results.items():
        for side, res in by_side.items():
            if not res.get("available"):
                if not res.get("import_error") or side != "loopml":
                    failed.append((f"{side} at {rows:,} rows: did not run", res.get("reason", "?")))
                continue
            v = verdicts(res)
            if v["absent"]:
                failed.append((f"{side} at {rows:,} rows: columns missing from the result", ", ".join(v["absent"])))
            if v["undecided"] and side != "loopml":
                failed.append((f"{side} at {rows:,} rows: no verdict for", ", ".join(v["undecided"])))
            if side.startswith("limit") and v["missed"]:  # the data are wrong; unshifted ones flagged are chance (BH)
                failed.append((f"limit at {rows:,} rows: KS/chi² + BH must catch every injected shift",
                               f"missed {v['missed']}"))
            counted = res.get("summary", {}).get("drifted_columns_count")
            flagged = len(v["caught"]) + len(v["false"])
            if counted is not None and counted != flagged:
                failed.append((f"{side} at {rows:,} rows: DriftedColumnsCount says {counted}",
                               f"but {flagged} ValueDrift tests failed"))
            if side == "loopml":
                s = res.get("summary", {})
                got = sorted(s.get("drifted_columns", []))
                want = sorted(c for c, x in res["columns"].items() if x.get("drifted"))
                if got != want:
                    failed.append((f"loopml at {rows:,} rows: report.drifted_columns {got}",
                                   f"!= the columns whose .drifted is True {want}"))

    # ---- tables
    def secs(rows: int, side: str, key: str = "total") -> float | None:
        res = results[rows].get(side, {})
        return res.get("seconds", {}).get(key) if res.get("available") else None

    labels = {"limit": "numpy/scipy limit", "limit-sample": f"limit, {REFERENCE_SAMPLE // 1000}k ref. sample",
              "loopml": "loopml",
              **{s: f"Evidently {EVIDENTLY_CONFIGS[s][0]}" for s in EVIDENTLY_CONFIGS}}
    lm_version = next((r["loopml"].get("version") for r in results.values() if r.get("loopml", {}).get("version")), "")
    limit_version = next((r["limit"].get("version") for r in results.values() if r.get("limit", {}).get("version")),
                         "")
    speedups: list[dict[str, Any]] = []
    table = Table(title=f"data drift: loopml {lm_version} vs Evidently {ev_version or 'n/a'} vs the limit "
                        f"({limit_version}) — median wall time, lower is better", title_justify="left")
    for col, kw in (("rows", {"justify": "right"}), ("tool", {}), ("wall", {"justify": "right"}),
                    ("fit / detect", {"justify": "right"}), ("CPU", {"justify": "right"}),
                    ("peak added", {"justify": "right"}), ("shifted caught", {"justify": "center"}),
                    ("unshifted flagged", {"justify": "center"}), ("ratio", {"justify": "right"}),
                    ("notes", {"style": "dim"})):
        table.add_column(col, **kw)
    for rows in plan:
        lm_t, lim_t = secs(rows, "loopml"), secs(rows, "limit")
        for side in (s for s in SIDE_NAMES if wanted(s, rows)):
            res = results[rows].get(side)
            if res is None:
                why = (skipped if side in EVIDENTLY_CONFIGS else lm_missing) or "not run"
                table.add_row(f"{rows:,}", labels[side], "n/a", "", "", "", "", "", "", f"not run: {why}")
                continue
            if not res.get("available"):
                table.add_row(f"{rows:,}", labels[side], "n/a", "", "", "", "", "", "", f"n/a: {res.get('reason')}")
                continue
            v = verdicts(res)
            t = res["seconds"]
            split = (f"{fmt_time(t['fit'])} / {fmt_time(t['detect'])}" if "fit" in t
                     else f"{fmt_time(t['datasets'])} + {fmt_time(t['report'])}")
            caught_ok = len(v["caught"]) == len(SHIFTS)
            caught = f"[{'green' if caught_ok else 'red'}]{len(v['caught'])}/{len(SHIFTS)}[/]"
            false_ok = len(v["false"]) <= TARGET_UNSHIFTED
            false = f"[{'green' if false_ok else 'red'}]{len(v['false'])}/{len(UNSHIFTED)}[/]"
            ratio = ""
            if side in EVIDENTLY_CONFIGS and lm_t:
                x = t["total"] / lm_t
                speedups.append({"config": EVIDENTLY_CONFIGS[side][0], "rows": rows, "ratio": x})
                ratio = f"[{'green' if x >= TARGET_VS_EVIDENTLY else 'red'}]{x:,.1f}x loopml[/]"
            elif side == "loopml" and lim_t:
                x = t["total"] / lim_t
                ratio = f"[{'green' if x <= TARGET_VS_LIMIT else 'red'}]{x:,.2f}x the limit[/]"
            notes = []
            if side == "loopml" and secs(rows, "limit-sample"):
                notes.append(f"{t['total'] / secs(rows, 'limit-sample'):.2f}x the {REFERENCE_SAMPLE // 1000}k-sample "
                             "limit")
            if v["missed"]:
                notes.append("missed " + ", ".join(v["missed"]))
            if v["false"]:
                notes.append("flagged unshifted " + ", ".join(v["false"]))
            if v["undecided"]:
                notes.append(f"no verdict (drifted=None) for {len(v['undecided'])}")
            methods = sorted({str(c.get("method")) for c in res["columns"].values()})
            notes.append("methods: " + ", ".join(methods))
            if side == "loopml":
                notes.append(f"dataset_drift={res.get('summary', {}).get('dataset_drift')}")
            notes.append(f"{res['reps']} run{'s' if res['reps'] > 1 else ''}")
            table.add_row(f"{rows:,}", labels[side], fmt_time(t["total"]), split, fmt_time(t.get("cpu")),
                          f"{res['added_mb']:,.0f} MB", caught, false, ratio, "; ".join(notes))
        table.add_section()
    console.print(table)

    # which columns were flagged: the shifted ones, and every unshifted one some tool flagged
    ran = [(rows, side) for rows in plan for side in SIDE_NAMES if results[rows].get(side, {}).get("available")]
    shown = list(SHIFTS) + [c for c in UNSHIFTED if any(results[r][s]["columns"].get(c, {}).get("drifted")
                                                         for r, s in ran)]
    cols_table = Table(title="verdict per column (✓ flagged as drifted, · not flagged, ? no verdict); "
                             "score = KS D / Cramér's V / Evidently's drift score or p-value", title_justify="left")
    cols_table.add_column("column")
    cols_table.add_column("shift", style="dim")
    for rows, side in ran:
        cols_table.add_column(f"{labels[side]}\n{rows:,}", justify="center")
    for c in shown:
        cells = []
        for rows, side in ran:
            x = results[rows][side]["columns"].get(c, {})
            mark = {True: "✓", False: "·", None: "?"}[x.get("drifted")]
            good = bool(x.get("drifted")) == (c in SHIFTS)
            score = x.get("p") if x.get("stat") is None else x.get("stat")
            detail = f" {score:.3g}" if isinstance(score, (int, float)) else ""
            cells.append(f"[{'green' if good else 'red'}]{mark}[/][dim]{detail}[/]")
        cols_table.add_row(c, SHIFTS.get(c, "none"), *cells)
    console.print(cols_table)
    for rows, side in ran:  # why a shifted column was missed, in the tool's own terms
        for c in verdicts(results[rows][side])["missed"]:
            x = results[rows][side]["columns"].get(c, {})
            why = x.get("reason") or (f"{x.get('method')} = {x.get('p') if x.get('stat') is None else x.get('stat'):.4g}"
                                      f", threshold {x.get('threshold')}")
            console.print(f"[dim]{labels[side]} at {rows:,} rows missed {c} ({SHIFTS[c]}): {why}[/]")
    once = Table(title=f"untimed, per process (memory: {next((results[r][s].get('memory_method') for r, s in ran), 'n/a')}"
                       ", over the RSS after loading the data and the warm-up)", title_justify="left")
    for col in ("rows", "tool", "import", "read parquet", f"warm-up ({WARMUP_ROWS:,} rows)", "RSS after load",
                "whole process"):
        once.add_column(col, justify="left" if col == "tool" else "right")
    for rows, side in ran:
        res = results[rows][side]
        once.add_row(f"{rows:,}", labels[side], fmt_time(res.get("import_seconds")), fmt_time(res.get("load_seconds")),
                     fmt_time(res.get("warmup_seconds")), f"{res.get('rss_after_load_mb', 0):,.0f} MB",
                     fmt_time(res.get("process_seconds")))
    console.print(once)

    # ---- ratios and targets
    for rows in plan:
        lm_t, lim_t = secs(rows, "loopml"), secs(rows, "limit")
        parts = []
        for side in EVIDENTLY_CONFIGS:
            ev_t = secs(rows, side)
            if ev_t and lm_t:
                parts.append(f"Evidently {EVIDENTLY_CONFIGS[side][0]} / loopml = {ev_t / lm_t:,.1f}x")
        for lim in ("limit", "limit-sample"):
            lim_t = secs(rows, lim)
            if lm_t and lim_t:
                parts.append(f"loopml / {labels[lim]} = {lm_t / lim_t:.2f}x (fit {secs(rows, 'loopml', 'fit') or 0:.3f}s "
                             f"vs {secs(rows, lim, 'fit') or 0:.3f}s, detect {secs(rows, 'loopml', 'detect') or 0:.3f}s "
                             f"vs {secs(rows, lim, 'detect') or 0:.3f}s)")
        if parts:
            console.print(f"[bold]{rows:,} rows:[/] " + "; ".join(parts))

    targets = Table(title="loopml targets", title_justify="left")
    for col in ("target", "measured", "met"):
        targets.add_column(col)

    def target(name: str, measured: str, met: bool | None) -> None:
        targets.add_row(name, measured, {True: "[green]✓ met[/]", False: "[red]✗ not met[/]",
                                         None: "[yellow]n/a[/]"}[met])

    if lm_missing is not None or not any(results[r].get("loopml", {}).get("available") for r in plan):
        why = lm_missing or next((results[r]["loopml"].get("reason") for r in plan if "loopml" in results[r]), "?")
        target("all", f"loopml not measured: {why}", None)
    else:
        if speedups:
            worst = min(speedups, key=lambda s: s["ratio"])
            target(f"≥{TARGET_VS_EVIDENTLY:g}x faster than Evidently (every configuration and size)",
                   f"min {worst['ratio']:,.1f}x ({worst['config']} at {worst['rows']:,} rows)",
                   worst["ratio"] >= TARGET_VS_EVIDENTLY)
        else:
            target(f"≥{TARGET_VS_EVIDENTLY:g}x faster than Evidently", "Evidently not measured", None)
        for rows in plan:
            lm_t, lim_t, same_t = secs(rows, "loopml"), secs(rows, "limit"), secs(rows, "limit-sample")
            target(f"within {TARGET_VS_LIMIT:g}x of the limit at {rows:,} rows",
                   (f"{lm_t / lim_t:.2f}x" + (f" ({lm_t / same_t:.2f}x the limit with loopml's "
                                              f"{REFERENCE_SAMPLE:,}-value reference sample)" if same_t else ""))
                   if lm_t and lim_t else "n/a",
                   (max(lm_t / lim_t, lm_t / (same_t or lim_t)) <= TARGET_VS_LIMIT) if lm_t and lim_t else None)
        lm_mem = results.get(TARGET_MEMORY_ROWS, {}).get("loopml", {})
        target(f"≤{TARGET_MEMORY_MB:g} MB added memory at {TARGET_MEMORY_ROWS:,} rows",
               f"{lm_mem['added_mb']:,.0f} MB" if lm_mem.get("available") else
               f"not measured ({TARGET_MEMORY_ROWS:,} rows not run)" if TARGET_MEMORY_ROWS not in plan else "n/a",
               (lm_mem["added_mb"] <= TARGET_MEMORY_MB) if lm_mem.get("available") else None)
        for rows in plan:
            res = results[rows].get("loopml", {})
            if res.get("available"):
                v = verdicts(res)
                target(f"{len(SHIFTS)}/{len(SHIFTS)} shifted caught, ≤{TARGET_UNSHIFTED} of {len(UNSHIFTED)} "
                       f"unshifted flagged at {rows:,} rows", f"{len(v['caught'])}/{len(SHIFTS)} caught, "
                       f"{len(v['false'])}/{len(UNSHIFTED)} unshifted flagged",
                       len(v["caught"]) == len(SHIFTS) and len(v["false"]) <= TARGET_UNSHIFTED)
    console.print(targets)

    for what, detail in failed:
        console.print(f"[bold white on red] CHECK FAILED [/] [red]{what}: {detail}[/]")
    if failed:
        for rows, by_side in results.items():
            for side, res in by_side.items():
                if res.get("stderr_log"):
                    console.print(f"[red]   stderr of {side} at {rows:,} rows: {res['stderr_log']}[/]")
    if load_before["busy"] or load_after["busy"]:
        console.print(f"[yellow]machine load: {load_before['loadavg_1m']:.1f} before, {load_after['loadavg_1m']:.1f} "
                      f"after (1-minute load average, {load_after['cpus']} CPUs): timings are noisy; the CPU column "
                      "is less affected[/]")

    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "mode": mode, "plan": plan, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"platform": sys.platform, "load_before": load_before, "load_after": load_after},
            "data": {"numeric": NUMERIC, "categorical": CATEGORICAL, "shifts": SHIFTS, "seed": SEED, "files": data},
            "evidently": {"version": ev_version, "skipped": skipped,
                          "configs": {s: {"label": lab, "preset_kwargs": kw}
                                      for s, (lab, kw) in EVIDENTLY_CONFIGS.items()}},
            "loopml_missing": lm_missing, "failed_checks": [{"what": w, "detail": d} for w, d in failed],
            "speedups": speedups, "results": {str(r): s for r, s in results.items()},
        }, indent=2, default=str))
        console.print(f"[dim]results saved to {path}[/]")
    if args.keep:
        console.print(f"[dim]kept {workdir} (data, per-side JSON and stderr logs)[/]")
    elif failed:  # keep the logs for the failure, drop the data
        for f in workdir.glob("*.parquet"):
            f.unlink()
        console.print(f"[dim]logs kept in {workdir}[/]")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    sys.stdout.flush()
    if lm_missing is not None:
        print("SPEEDUP min=n/a (loopml monitoring not available)", flush=True)
        return 1 if failed else 0
    lm_runs = [results[r].get("loopml", {}) for r in plan]
    if not all(r.get("available") for r in lm_runs):
        why = next(r.get("reason", "?") for r in lm_runs if not r.get("available"))
        print(f"SPEEDUP min=n/a (loopml failed: {why})", flush=True)
        return 2
    if not speedups:
        print(f"SPEEDUP min=n/a (Evidently not measured: {skipped or 'it failed'})", flush=True)
        return 1 if failed else 0
    worst = min(speedups, key=lambda s: s["ratio"])
    print(f"SPEEDUP min={worst['ratio']:.2f} (Evidently {worst['config']} at {worst['rows']:,} rows)", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark loopml's data-drift detection against Evidently 0.7.")
    p.add_argument("--quick", action="store_true", help="100,000 rows only, fewer repetitions (under a minute)")
    p.add_argument("--sizes", metavar="N,N", help="rows per table, comma-separated (default 100000,1000000)")
    p.add_argument("--reps", type=int, help="timed runs of loopml and the limit per size (median)")
    p.add_argument("--evidently-reps", type=int, help="timed runs of each Evidently configuration per size")
    p.add_argument("--no-evidently", action="store_true", help="leave Evidently out")
    p.add_argument("--json", metavar="PATH", help="save all results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (data, per-side JSON, logs)")
    p.add_argument("--venvs", metavar="DIR", default=str(VENVS),
                   help="where the Evidently venv is (created if missing; default: bench/.venvs)")
    p.add_argument("--side", choices=SIDE_NAMES, help=argparse.SUPPRESS)
    p.add_argument("--side-rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--side-reps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        if not (args.out and args.workdir and args.side_rows and args.side_reps):
            p.error("--side needs --out, --workdir, --side-rows and --side-reps")
        return side_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
