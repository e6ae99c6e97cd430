#!/usr/bin/env python
"""loopml vs MLflow: the same tracking and registry work, side by side, in one run.

Usage (from the repository root)::

    make bench                                   # full run (BENCH_ARGS="--quick" for the short one)
    .venv/bin/python bench/tracking_vs_mlflow.py --quick --json bench/results/quick.json

How it works: this script (run with the loopml venv's interpreter) makes sure
an MLflow venv exists at ``bench/.venvs/mlflow`` (creating it if needed), then
re-invokes itself twice, one side at a time so they never compete for the CPU:

* ``--side loopml`` with the current interpreter,
* ``--side mlflow`` with the MLflow venv's interpreter,

each in a fresh temporary folder with a fresh SQLite store, so both start
cold and equally. A side reports progress on stdout (``@@bench`` lines) and
writes its results to a JSON file; this process shows the progress, compares
the two and prints a table. The last line printed is always
``SPEEDUP min=<ratio> (<measurement>)``: the smallest MLflow-time / loopml-time
ratio over the headline measurements (a), (b), (c), (d), (e total) and (f).

The side code below uses only the standard library plus the library under
test, because the MLflow venv has neither rich nor loopml.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sqlite3
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
    fmt_time,
    machine_load,
    print_failure,
    run_child,
)

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".venvs" / "mlflow"
MLFLOW_REQUIREMENTS = ["mlflow>=3,<4", "scikit-learn"]

SIZES: dict[str, dict[str, int]] = {
    # a_calls: log_metric calls in one run; b_points: points in one batch; c_runs: runs of 10 params + 10 metrics;
    # d_runs: runs searched; reps: repetitions of (a), (b), (c) (median); search_reps: of (d); import_reps: of (f)
    "full": {"a_calls": 2000, "b_points": 2000, "c_runs": 200, "d_runs": 2000, "reps": 3, "search_reps": 5,
             "import_reps": 3},
    "quick": {"a_calls": 500, "b_points": 2000, "c_runs": 50, "d_runs": 500, "reps": 1, "search_reps": 5,
              "import_reps": 3},
}

C_PARAMS = 10  # params per run in (c)
C_METRICS = 10  # metrics per run in (c)
D_KEYS = 3  # params and metrics per run in (d)
D_FILTER = "metrics.m0 > 0.5"
D_ORDER = "metrics.m1 DESC"
D_MAX_RESULTS = 1000
MODEL_NAME = "bench-model"
ALIAS = "champion"

# headline measurements: key -> (label template, target ratio); e is its total
HEADLINE = ["a", "b", "c", "d", "e", "f"]
TARGETS = {"a": 30.0, "c": 10.0, "d": 10.0}


def labels(sizes: dict[str, int]) -> dict[str, str]:
    return {
        "init": "store init: new SQLite DB + experiment",
        "a": f"a: {sizes['a_calls']} log_metric calls",
        "b": f"b: batch of {sizes['b_points']} points",
        "c": f"c: {sizes['c_runs']} runs x {C_PARAMS} params + {C_METRICS} metrics",
        "d": f"d: search {sizes['d_runs']} runs",
        "e_register": "e1: register model version",
        "e_alias": "e2: set alias",
        "e_load": "e3: load by alias + predict",
        "e": "e: register + alias + load",
        "e_register2": "e1': register, MLflow given pip_requirements",
        "f": "f: import",
    }


# =============================================================================
# The side process: runs one library's half and writes JSON. Standard library only.
# =============================================================================


class Reporter:
    """Progress lines on stdout for the parent; checks collected for the results."""

    def __init__(self, plan: list[tuple[str, float]]) -> None:
        self.weights = dict(plan)
        self.order = [k for k, _ in plan]
        self.total = sum(self.weights.values())
        self.done = 0.0
        self.current: str | None = None
        self.checks: list[dict[str, Any]] = []

    def _emit(self, desc: str, frac: float) -> None:
        print(PROGRESS_PREFIX + json.dumps({"desc": desc, "frac": min(frac, 1.0)}), flush=True)

    @contextmanager
    def step(self, key: str, desc: str) -> Iterator[Callable[[float], None]]:
        """A planned step; the yielded function reports progress within it (0..1)."""
        self.current = key
        base = self.done
        w = self.weights[key]
        self._emit(desc, base / self.total)

        def sub(f: float) -> None:
            self._emit(desc, (base + w * f) / self.total)

        yield sub
        self.done = base + w
        self._emit(desc, self.done / self.total)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        if not ok:
            print(f"CHECK FAILED: {name}: {detail}", file=sys.stderr, flush=True)


def _sqlite_count(db: Path, sql: str, args: tuple[Any, ...]) -> int:
    """Count straight from the database file, through a new connection: no library cache or buffer involved."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute(sql, args).fetchone()[0])
    finally:
        con.close()


def _d_data(n: int) -> list[tuple[dict[str, str], dict[str, float]]]:
    """Params and metrics of the (d) runs; the same on both sides (fixed seed)."""
    rng = random.Random(20240611)
    out = []
    for i in range(n):
        params = {f"p{k}": f"v{(i * (k + 3)) % 17}" for k in range(D_KEYS)}
        metrics = {f"m{k}": rng.random() for k in range(D_KEYS)}
        out.append((params, metrics))
    return out


def _c_data(i: int) -> tuple[dict[str, Any], dict[str, float]]:
    params = {f"p{k}": (i * 31 + k) % 97 for k in range(C_PARAMS)}
    metrics = {f"m{k}": ((i * 7 + k) % 101) / 101.0 for k in range(C_METRICS)}
    return params, metrics


def _iris() -> tuple[Any, Any, Any]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(as_frame=True, return_X_y=True)
    return X, LogisticRegression(max_iter=1000).fit(X, y), LogisticRegression(C=0.5, max_iter=1000).fit(X, y)


def _site_packages_info(root_dist: str) -> dict[str, Any]:
    """du of site-packages, number of installed distributions, and the size of ``root_dist`` + its dependencies."""
    import re
    import sysconfig
    from importlib import metadata

    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip vendors it
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef,assignment]

    sp = Path(sysconfig.get_paths()["purelib"])
    seen_inodes: set[tuple[int, int]] = set()
    disk = 0
    for dirpath, _dirs, files in os.walk(sp):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            ino = (st.st_dev, st.st_ino)
            if ino in seen_inodes:
                continue
            seen_inodes.add(ino)
            disk += st.st_blocks * 512

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    dists: dict[str, Any] = {}
    for d in metadata.distributions(path=[str(sp)]):
        name = d.metadata["Name"]
        if name:
            dists.setdefault(norm(name), d)

    # dependency closure of root_dist (no extras), with markers evaluated for this interpreter
    closure: set[str] = set()
    todo = [norm(root_dist)]
    while todo:
        name = todo.pop()
        if name in closure or name not in dists:
            continue
        closure.add(name)
        for spec in dists[name].requires or []:
            try:
                req = Requirement(spec)
            except Exception:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(norm(req.name))
    closure_bytes = 0
    for name in closure:
        for f in dists[name].files or []:
            try:
                closure_bytes += os.stat(dists[name].locate_file(f)).st_size
            except OSError:
                continue
    return {
        "site_packages": str(sp),
        "du_bytes": disk,
        "distributions": len(dists),
        "root": root_dist,
        "closure_distributions": len(closure),
        "closure_bytes": closure_bytes,
    }


def _import_time(module: str, reps: int, cwd: Path) -> dict[str, Any]:
    """Median in-process time of ``import module`` in a fresh interpreter, plus the process wall time."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    inner, wall = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
        wall.append(time.perf_counter() - t0)
        inner.append(float(out.stdout.strip().splitlines()[-1]))
    return {"seconds": statistics.median(inner), "all": inner, "process_wall": statistics.median(wall)}


class LoopmlSide:
    name = "loopml"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db = workdir / ".loopml" / "loopml.db"

    def setup(self) -> None:
        import loopml
        from loopml.config import Settings

        self.loopml = loopml
        self.settings = Settings.for_dir(self.workdir)
        self.version = loopml.__version__

    def init_store(self) -> None:
        from loopml.tracking import get_tracking

        get_tracking(self.settings).experiment("bench-init")

    # (a)
    def a_work(self, n: int, rep: int) -> str:
        with self.loopml.start_run(f"bench-a{rep}", settings=self.settings) as run:
            for i in range(n):
                run.log_metric("m", i * 0.001, step=i)
        return run.id

    def a_stored(self, run_id: str) -> tuple[int, int, int]:
        raw = _sqlite_count(self.db, "SELECT count(*) FROM metrics WHERE run_id = ? AND key = 'm'", (run_id,))
        steps = _sqlite_count(self.db, "SELECT count(DISTINCT step) FROM metrics WHERE run_id = ? AND key = 'm'",
                              (run_id,))
        api = len(self.loopml.metric_history(run_id, "m", settings=self.settings))
        return raw, steps, api

    # (b)
    def b_start(self, rep: int) -> Any:
        return self.loopml.start_run(f"bench-b{rep}", settings=self.settings)

    def b_work(self, run: Any, values: list[float], steps: list[int]) -> None:
        run.log_metric_batch("m", values, steps=steps)

    def b_stored(self, run: Any) -> int:
        return _sqlite_count(self.db, "SELECT count(*) FROM metrics WHERE run_id = ? AND key = 'm'", (run.id,))

    def b_end(self, run: Any) -> None:
        run.end()

    # (c)
    def c_work(self, n: int, rep: int) -> str:
        exp = f"bench-c{rep}"
        for i in range(n):
            params, metrics = _c_data(i)
            with self.loopml.start_run(exp, settings=self.settings) as run:
                run.log_params(params)
                run.log_metrics(metrics, step=0)
        return exp

    def c_stored(self, exp: str) -> list[tuple[str, int, int]]:
        page = self.loopml.search_runs(exp, max_results=50_000, settings=self.settings)
        return [(r.status.value.upper(), len(r.params), len(r.metrics)) for r in page.runs]

    # (d)
    def d_populate(self, data: list[tuple[dict[str, str], dict[str, float]]], progress: Callable[[float], None]) -> None:
        for i, (params, metrics) in enumerate(data):
            with self.loopml.start_run("bench-d", params=params, settings=self.settings) as run:
                run.log_metrics(metrics, step=0)
            if i % 100 == 0:
                progress(i / len(data))

    def d_search(self) -> list[float]:
        page = self.loopml.search_runs("bench-d", filter=D_FILTER, order_by=[D_ORDER], max_results=D_MAX_RESULTS,
                                       settings=self.settings)
        return [r.metrics["m1"].value for r in page.runs]

    # (e)
    def e_prepare(self) -> None:
        from loopml import models  # ImportError: not written yet

        self.models = models

    def e_register(self, model: Any, X: Any) -> Any:
        return self.models.register(model, MODEL_NAME, input_example=X.head(5), settings=self.settings).version

    def e_register2(self, model: Any, X: Any) -> Any:
        return self.e_register(model, X)  # loopml never infers requirements by running code

    def e_alias(self, version: Any) -> None:
        self.models.set_alias(MODEL_NAME, ALIAS, version, settings=self.settings)

    def e_load(self, X: Any) -> Any:
        m = self.models.load(f"models:/{MODEL_NAME}@{ALIAS}", settings=self.settings)
        return m.predict(X)


class MlflowSide:
    name = "mlflow"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db = workdir / "mlflow.db"
        self.artifacts = workdir / "mlartifacts"
        self._exp_ids: dict[str, str] = {}

    def setup(self) -> None:
        import logging

        import mlflow
        from mlflow import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.mlflow = mlflow
        self.version = mlflow.__version__
        mlflow.set_tracking_uri(f"sqlite:///{self.db}")
        self.client_class = MlflowClient

    def init_store(self) -> None:
        self.client = self.client_class()  # opens the store: creates the database and its tables
        self.exp("bench-init")

    def exp(self, name: str) -> str:
        """Experiment id for ``name``, created (untimed) with its artifacts in the temp folder."""
        eid = self._exp_ids.get(name)
        if eid is None:
            eid = self._exp_ids[name] = self.mlflow.create_experiment(
                name, artifact_location=(self.artifacts / name).as_uri())
        return eid

    # (a)
    def a_work(self, n: int, rep: int) -> str:
        mlflow = self.mlflow
        with mlflow.start_run(experiment_id=self.exp(f"bench-a{rep}")) as run:
            for i in range(n):
                mlflow.log_metric("m", i * 0.001, step=i)
        return run.info.run_id

    def a_stored(self, run_id: str) -> tuple[int, int, int]:
        raw = _sqlite_count(self.db, "SELECT count(*) FROM metrics WHERE run_uuid = ? AND key = 'm'", (run_id,))
        steps = _sqlite_count(self.db, "SELECT count(DISTINCT step) FROM metrics WHERE run_uuid = ? AND key = 'm'",
                              (run_id,))
        api = len(self.client.get_metric_history(run_id, "m"))
        return raw, steps, api

    # (b)
    def b_start(self, rep: int) -> Any:
        return self.client.create_run(self.exp(f"bench-b{rep}"))

    def b_work(self, run: Any, values: list[float], steps: list[int]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(run.info.run_id,
                              metrics=[Metric("m", v, ts, s) for v, s in zip(values, steps, strict=True)])

    def b_stored(self, run: Any) -> int:
        return _sqlite_count(self.db, "SELECT count(*) FROM metrics WHERE run_uuid = ? AND key = 'm'",
                             (run.info.run_id,))

    def b_end(self, run: Any) -> None:
        self.client.set_terminated(run.info.run_id)

    # (c)
    def c_work(self, n: int, rep: int) -> str:
        mlflow = self.mlflow
        eid = self.exp(f"bench-c{rep}")
        for i in range(n):
            params, metrics = _c_data(i)
            with mlflow.start_run(experiment_id=eid):
                mlflow.log_params(params)
                mlflow.log_metrics(metrics, step=0)
        return eid

    def c_stored(self, eid: str) -> list[tuple[str, int, int]]:
        runs = self.client.search_runs(experiment_ids=[eid], max_results=50_000)
        return [(r.info.status.upper(), len(r.data.params), len(r.data.metrics)) for r in runs]

    # (d)
    def d_populate(self, data: list[tuple[dict[str, str], dict[str, float]]], progress: Callable[[float], None]) -> None:
        from mlflow.entities import Metric, Param

        # the cheapest MLflow calls that store this (untimed): the runs are left RUNNING, which the search ignores
        eid = self.exp("bench-d")
        client = self.client
        for i, (params, metrics) in enumerate(data):
            run_id = client.create_run(eid).info.run_id
            ts = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()],
                             params=[Param(k, v) for k, v in params.items()])
            if i % 100 == 0:
                progress(i / len(data))

    def d_search(self) -> list[float]:
        runs = self.client.search_runs(experiment_ids=[self.exp("bench-d")], filter_string=D_FILTER,
                                       order_by=[D_ORDER], max_results=D_MAX_RESULTS)
        return [r.data.metrics["m1"] for r in runs]

    # (e)
    def e_prepare(self) -> None:
        import mlflow.pyfunc  # noqa: F401
        import mlflow.sklearn  # noqa: F401

        self.exp("bench-e")

    def e_register(self, model: Any, X: Any) -> Any:
        mlflow = self.mlflow
        with mlflow.start_run(experiment_id=self.exp("bench-e")):
            info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(5),
                                            registered_model_name=MODEL_NAME)
        return info.registered_model_version

    def e_register2(self, model: Any, X: Any) -> Any:
        """Same, but with the requirements given, so MLflow skips inferring them (a subprocess that imports the model)."""
        mlflow = self.mlflow
        with mlflow.start_run(experiment_id=self.exp("bench-e")):
            info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(5),
                                            registered_model_name=MODEL_NAME, pip_requirements=["scikit-learn"])
        return info.registered_model_version

    def e_alias(self, version: Any) -> None:
        self.client.set_registered_model_alias(MODEL_NAME, ALIAS, version)

    def e_load(self, X: Any) -> Any:
        m = self.mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{ALIAS}")
        return m.predict(X)


def run_side(side_name: str, workdir: Path, sizes: dict[str, int]) -> dict[str, Any]:
    side: Any = LoopmlSide(workdir) if side_name == "loopml" else MlflowSide(workdir)
    reps = sizes["reps"]
    rep = Reporter([("setup", 1), ("init", 1), ("a", 3 * reps), ("b", reps), ("c", 2 * reps),
                    ("d_populate", 6), ("d_search", 1), ("e", 3), ("f", 3), ("env", 1)])
    out: dict[str, Any] = {"side": side_name, "python": sys.version.split()[0], "executable": sys.executable,
                           "sizes": sizes}
    perf = time.perf_counter

    with rep.step("setup", "importing"):
        side.setup()  # import costs are (f), not part of the other measurements
        out["version"] = side.version

    with rep.step("init", "init: new store"):
        t0 = perf()
        side.init_store()
        out["init"] = {"seconds": perf() - t0}

    # (a) log_metric calls, the run end included (loopml buffers: its end writes the points)
    n = sizes["a_calls"]
    with rep.step("a", f"a: {n} log_metric calls") as sub:
        times = []
        for r in range(reps):
            t0 = perf()
            run_id = side.a_work(n, r)
            times.append(perf() - t0)
            raw, steps, api = side.a_stored(run_id)
            rep.check(f"a: {n} points stored (rep {r})", raw == n and steps == n and api == n,
                      f"sqlite rows={raw}, distinct steps={steps}, API history={api}, expected {n}")
            sub((r + 1) / reps)
        out["a"] = {"seconds": statistics.median(times), "all": times, "calls": n}

    # (b) one batch
    n = sizes["b_points"]
    values = [((i * 37) % 1000) / 1000.0 for i in range(n)]
    steps_ = list(range(n))
    with rep.step("b", f"b: batch of {n} points") as sub:
        times = []
        for r in range(reps):
            run = side.b_start(r)
            t0 = perf()
            side.b_work(run, values, steps_)
            times.append(perf() - t0)
            stored = side.b_stored(run)  # before the run ends: the batch call itself must have written them
            rep.check(f"b: {n} points stored by the batch call (rep {r})", stored == n,
                      f"sqlite rows={stored}, expected {n}")
            side.b_end(run)
            sub((r + 1) / reps)
        out["b"] = {"seconds": statistics.median(times), "all": times, "points": n}

    # (c) many small runs
    n = sizes["c_runs"]
    with rep.step("c", f"c: {n} runs") as sub:
        times = []
        for r in range(reps):
            t0 = perf()
            exp = side.c_work(n, r)
            times.append(perf() - t0)
            got = side.c_stored(exp)
            ok = len(got) == n and all(s == "FINISHED" and p == C_PARAMS and m == C_METRICS for s, p, m in got)
            bad = [g for g in got if g != ("FINISHED", C_PARAMS, C_METRICS)][:3]
            rep.check(f"c: {n} finished runs with {C_PARAMS} params and {C_METRICS} metrics (rep {r})", ok,
                      f"found {len(got)} runs; first mismatches (status, params, metrics): {bad}")
            sub((r + 1) / reps)
        out["c"] = {"seconds": statistics.median(times), "all": times, "runs": n}

    # (d) search
    n = sizes["d_runs"]
    data = _d_data(n)
    with rep.step("d_populate", f"d: creating {n} runs (untimed)") as sub:
        t0 = perf()
        side.d_populate(data, sub)
        populate = perf() - t0
    expected = sorted((m["m1"] for _, m in data if m["m0"] > 0.5), reverse=True)[:D_MAX_RESULTS]
    with rep.step("d_search", f"d: search {n} runs") as sub:
        times = []
        result: list[float] = []
        for r in range(sizes["search_reps"]):
            t0 = perf()
            result = side.d_search()
            times.append(perf() - t0)
            sub((r + 1) / sizes["search_reps"])
        rep.check(f"d: search returns the {len(expected)} expected runs in order", result == expected,
                  f"got {len(result)} runs, expected {len(expected)}; first got {result[:3]}, expected {expected[:3]}")
        out["d"] = {"seconds": statistics.median(times), "all": times, "runs": n, "returned": len(result),
                    "m1": result, "populate_seconds": populate}

    # (e) registry
    with rep.step("e", "e: register, alias, load") as sub:
        X, model, model2 = _iris()
        try:
            side.e_prepare()
        except ImportError as e:
            out["e"] = {"available": False, "reason": f"{type(e).__name__}: {e}"}
        else:
            try:
                t0 = perf()
                version = side.e_register(model, X)
                t1 = perf()
                sub(0.5)
                side.e_alias(version)
                t2 = perf()
                pred = side.e_load(X)
                t3 = perf()
                sub(0.8)
                side.e_register2(model2, X)  # informational: after the load, so the alias still names the first
                t4 = perf()
            except Exception as e:
                traceback.print_exc()
                out["e"] = {"available": False, "reason": f"error: {type(e).__name__}: {e}"}
                rep.check("e: register, alias and load work", False, f"{type(e).__name__}: {e}")
            else:
                import numpy as np

                same = bool(np.array_equal(np.asarray(pred).ravel(), np.asarray(model.predict(X)).ravel()))
                rep.check("e: model loaded by alias predicts like the original", same, "predictions differ")
                out["e"] = {"available": True, "version": str(version), "register": t1 - t0, "alias": t2 - t1,
                            "load": t3 - t2, "seconds": t3 - t0, "register2": t4 - t3}

    with rep.step("f", f"f: import {side_name} (fresh interpreters)"):
        out["f"] = _import_time(side_name, sizes["import_reps"], workdir)

    with rep.step("env", "measuring the venv"):
        out["env"] = _site_packages_info(side_name)

    out["checks"] = rep.checks
    return out


def side_main(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    sizes = SIZES["quick" if args.quick else "full"]
    result = run_side(args.side, workdir, sizes)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


# =============================================================================
# The parent process: sets up the MLflow venv, runs both sides, reports. Uses rich.
# =============================================================================


def mlflow_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_mlflow_venv(console: Any, venv: Path) -> str:
    """Create ``venv`` (default ``bench/.venvs/mlflow``) with MLflow 3 and scikit-learn if needed; return MLflow's version."""
    py = mlflow_python(venv)
    probe = [str(py), "-c", "import mlflow, sklearn; print(mlflow.__version__)"]

    def version() -> str | None:
        if not py.exists():
            return None
        out = subprocess.run(probe, capture_output=True, text=True, env=side_env())
        return out.stdout.strip() if out.returncode == 0 else None

    found = version()
    if found is not None and found.split(".")[0] == "3":
        return found

    def show_and_run(cmd: list[str]) -> None:
        from rich.markup import escape

        console.print(f"[bold cyan]$[/] {escape(shlex.join(cmd))}", highlight=False)
        subprocess.run(cmd, check=True)

    why = "missing" if not py.exists() else f"without a working MLflow 3 (found {found or 'none'})"
    console.rule(f"[bold]MLflow venv {venv} is {why}: setting it up")
    if not py.exists():
        show_and_run([sys.executable, "-m", "venv", str(venv)])
    show_and_run([str(py), "-m", "pip", "install", "--upgrade", "pip"])
    show_and_run([str(py), "-m", "pip", "install", *MLFLOW_REQUIREMENTS])
    found = version()
    if found is None:
        raise SystemExit(f"the MLflow venv at {venv} still cannot import mlflow and sklearn; delete it and retry")
    console.rule()
    return found


def side_env() -> dict[str, str]:
    """The environment of a side: no LOOPML_*/MLFLOW_* settings leaking in, MLflow telemetry off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "MLFLOW_"))}
    env.pop("PYTHONPATH", None)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_side_process(side: str, python: str, quick: bool, progress: Any, task: Any, keep: bool,
                     console: Any) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"loopml-bench-{side}-"))
    out = workdir.parent / f"{workdir.name}.json"
    log = workdir.parent / f"{workdir.name}.log"
    cmd = [python, str(Path(__file__).resolve()), "--side", side, "--out", str(out), "--workdir", str(workdir)]
    if quick:
        cmd.append("--quick")
    rc, wall = run_child(cmd, cwd=workdir, out=out, log=log, env=side_env(), label=f"{side:7}", progress=progress,
                        task=task)
    if rc != 0 or not out.exists():
        print_failure(console, f"the {side} side", rc, log)
        raise SystemExit(2)
    result = json.loads(out.read_text())
    result["wall_seconds"] = wall
    result["stderr_log"] = str(log)
    if keep:
        result["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        out.unlink(missing_ok=True)
        if not any(not c["ok"] for c in result.get("checks", [])):
            log.unlink(missing_ok=True)
            result["stderr_log"] = None
    return result


def fmt_bytes(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def fmt_rate(x: float) -> str:
    return f"{x / 1000:,.1f}k/s" if x >= 1000 else f"{x:,.0f}/s"


def build_rows(lm: dict[str, Any], ml: dict[str, Any], sizes: dict[str, int]) -> list[dict[str, Any]]:
    lab = labels(sizes)
    rows: list[dict[str, Any]] = []

    def row(key: str, a: float | None, b: float | None, note: str = "", headline: bool = False) -> None:
        ratio = (b / a) if (a and b) else None
        rows.append({"key": key, "label": lab[key], "loopml": a, "mlflow": b, "ratio": ratio, "note": note,
                     "headline": headline, "target": TARGETS.get(key, 1.0) if headline else None})

    row("init", lm["init"]["seconds"], ml["init"]["seconds"], "informational (includes alembic migrations)")
    n = lm["a"]["calls"]
    row("a", lm["a"]["seconds"], ml["a"]["seconds"],
        f"calls/s: loopml {fmt_rate(n / lm['a']['seconds'])}, MLflow {fmt_rate(n / ml['a']['seconds'])}", True)
    row("b", lm["b"]["seconds"], ml["b"]["seconds"], "", True)
    n = lm["c"]["runs"]
    row("c", lm["c"]["seconds"], ml["c"]["seconds"],
        f"per run: loopml {fmt_time(lm['c']['seconds'] / n)}, MLflow {fmt_time(ml['c']['seconds'] / n)}", True)
    row("d", lm["d"]["seconds"], ml["d"]["seconds"],
        (f"{D_FILTER} by {D_ORDER}: {lm['d']['returned']} runs both"
         if lm["d"]["returned"] == ml["d"]["returned"]
         else f"returned: loopml {lm['d']['returned']} runs, MLflow {ml['d']['returned']}")
        + f"; median of {sizes['search_reps']} (min: loopml {fmt_time(min(lm['d']['all']))}, "
        f"MLflow {fmt_time(min(ml['d']['all']))})", True)
    le, me = lm["e"], ml["e"]
    lav = le.get("available", False)
    na = "" if lav else "loopml: n/a (" + le.get("reason", "?") + ")"
    row("e_register", le["register"] if lav else None, me.get("register"),
        "MLflow: start_run + sklearn.log_model(registered_model_name=), infers pip requirements")
    row("e_alias", le["alias"] if lav else None, me.get("alias"))
    row("e_load", le["load"] if lav else None, me.get("load"), "MLflow: pyfunc.load_model")
    row("e", le["seconds"] if lav else None, me.get("seconds"), na, True)
    row("e_register2", le["register2"] if lav else None, me.get("register2"),
        "informational: a 2nd model; MLflow given pip_requirements=['scikit-learn'], so it infers nothing")
    row("f", lm["f"]["seconds"], ml["f"]["seconds"],
        f"median of {sizes['import_reps']} fresh interpreters; whole process: "
        f"loopml {fmt_time(lm['f']['process_wall'])}, MLflow {fmt_time(ml['f']['process_wall'])}", True)
    return rows


def parent_main(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table
    except ImportError:
        print("rich is missing: run this with the loopml venv, e.g. `.venv/bin/python bench/tracking_vs_mlflow.py` "
              "or `make bench`", file=sys.stderr)
        return 2
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=150)  # piped or logged: don't squeeze the table into 80 columns
    probe = subprocess.run([sys.executable, "-c", "import loopml, sklearn"], capture_output=True, text=True,
                           env=side_env())
    if probe.returncode != 0:
        console.print(f"[red]this interpreter ({sys.executable}) cannot import loopml and scikit-learn; "
                      "run with .venv/bin/python or `make bench`[/]")
        return 2
    venv = Path(args.mlflow_venv).absolute()
    mlflow_version = ensure_mlflow_venv(console, venv)
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    console.print(f"[bold]loopml vs MLflow {mlflow_version}[/] ({mode}; each side in its own fresh temp folder "
                  "and SQLite store, one after the other)")
    load_before = machine_load()
    if load_before["busy"]:
        console.print(f"[yellow]warning: the machine is busy (load average {load_before['loadavg_1m']:.1f} on "
                      f"{load_before['cpus']} CPUs); timings will be noisy[/]")

    results: dict[str, dict[str, Any]] = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}", style="bold"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console) as progress:
        tasks = {s: progress.add_task(f"{s:7} waiting", total=1000, start=False) for s in ("loopml", "mlflow")}
        for side, python in (("loopml", sys.executable), ("mlflow", str(mlflow_python(venv)))):
            progress.start_task(tasks[side])
            results[side] = run_side_process(side, python, args.quick, progress, tasks[side], args.keep, console)
    lm, ml = results["loopml"], results["mlflow"]
    load_after = machine_load()

    rows = build_rows(lm, ml, sizes)
    table = Table(title=f"loopml {lm['version']} vs MLflow {ml['version']} — {mode} (lower time is better)",
                  title_justify="left")
    table.add_column("measurement")
    table.add_column("loopml", justify="right")
    table.add_column("MLflow", justify="right")
    table.add_column("MLflow/loopml", justify="right")
    table.add_column("target", justify="center")
    table.add_column("notes", style="dim")
    for r in rows:
        ratio = r["ratio"]
        if ratio is None:
            ratio_s = "n/a"
        else:
            style = "green" if ratio >= (r["target"] or 1.0) else ("yellow" if ratio >= 1 else "red")
            ratio_s = f"[{style}]{ratio:,.2f}x[/]"
        target = ""
        if r["target"] is not None:
            ok = ratio is not None and ratio >= r["target"]
            target = f"≥{r['target']:g}x " + ("[green]✓[/]" if ok else ("[dim]–[/]" if ratio is None else "[red]✗[/]"))
        label = f"[bold]{r['label']}[/]" if r["headline"] else r["label"]
        table.add_row(label, fmt_time(r["loopml"]), fmt_time(r["mlflow"]), ratio_s, target, r["note"])
    console.print(table)

    env = Table(title="installed environments (informational, not in SPEEDUP)", title_justify="left")
    env.add_column("side")
    env.add_column("site-packages (du)", justify="right")
    env.add_column("distributions", justify="right")
    env.add_column("package + its dependencies", justify="right")
    env.add_column("venv")
    for side, res in results.items():
        e = res["env"]
        env.add_row(side, fmt_bytes(e["du_bytes"]), str(e["distributions"]),
                    f"{e['root']}: {e['closure_distributions']} dists, {fmt_bytes(e['closure_bytes'])}",
                    str(Path(res["executable"]).parent.parent))
    console.print(env)
    console.print(f"[dim]side wall time: loopml {lm['wall_seconds']:.1f}s, MLflow {ml['wall_seconds']:.1f}s; "
                  f"untimed creation of the (d) runs: loopml {lm['d']['populate_seconds']:.1f}s, "
                  f"MLflow {ml['d']['populate_seconds']:.1f}s[/]")

    failed = [(side, c) for side, res in results.items() for c in res["checks"] if not c["ok"]]
    if lm["d"]["returned"] != ml["d"]["returned"] or lm["d"]["m1"] != ml["d"]["m1"]:
        failed.append(("both", {"name": "d: both sides return the same runs in the same order",
                                "detail": f"loopml {lm['d']['returned']} runs, MLflow {ml['d']['returned']}"}))
    for side, c in failed:
        console.print(f"[bold white on red] CHECK FAILED [/] [red]{side}: {c['name']}: {c['detail']}[/]")
        log = results.get(side, {}).get("stderr_log")
        if log:
            console.print(f"[red]   stderr of the {side} side: {log}[/]")
    if not lm["e"].get("available", False):
        console.print(f"[yellow]note: (e) is n/a for loopml ({lm['e'].get('reason')}); it is left out of SPEEDUP[/]")

    headline = [r for r in rows if r["headline"] and r["ratio"] is not None]
    worst = min(headline, key=lambda r: r["ratio"])

    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        for res in results.values():
            res["d"].pop("m1", None)
        path.write_text(json.dumps({
            "mode": mode, "sizes": sizes, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"platform": sys.platform, "load_before": load_before, "load_after": load_after},
            "rows": rows, "speedup_min": {"ratio": worst["ratio"], "measurement": worst["label"]},
            "failed_checks": [{"side": s, **c} for s, c in failed], "sides": results,
        }, indent=2))
        console.print(f"[dim]results saved to {path}[/]")
    sys.stdout.flush()
    print(f"SPEEDUP min={worst['ratio']:.2f} ({worst['label']})", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark loopml against MLflow on the same work.")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions (under a minute)")
    p.add_argument("--json", metavar="PATH", help="save all results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary folders and logs of both sides")
    p.add_argument("--mlflow-venv", metavar="DIR", default=str(MLFLOW_VENV),
                   help="the MLflow venv, created if missing (default: bench/.venvs/mlflow)")
    p.add_argument("--side", choices=["loopml", "mlflow"], help=argparse.SUPPRESS)
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
