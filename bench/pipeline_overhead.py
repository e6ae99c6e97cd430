#!/usr/bin/env python
"""Pipeline orchestration overhead: loopml vs Prefect 3, ZenML, Dagster and plain Python calls.

Usage (from the repository root)::

    .venv/bin/python bench/pipeline_overhead.py --quick      # 20 + 5 steps, once (~2.5 minutes: peer startup)
    .venv/bin/python bench/pipeline_overhead.py              # 100 + 10 steps, 3 repetitions
    .venv/bin/python bench/pipeline_overhead.py --json bench/results/pipelines.json

How it works: this script (run with the loopml venv's interpreter) makes sure the
peer venvs exist (``bench/.venvs/prefect``, ``bench/.venvs/zenml`` and
``bench/.venvs/dagster``, created with pip if missing; a peer that does not install
or run is skipped with the reason printed), then runs every side in its own
processes, one process at a time so that nothing competes for the CPU:

* ``python``:  plain function calls, the physical limit;
* ``loopml``:  ``loopml.pipelines`` with an embedded SQLite store in a temporary project folder;
* ``dagster``: ``job.execute_in_process()`` in memory, and again on a SQLite ``DagsterInstance``;
* ``prefect``: ``@flow``/``@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)``, ephemeral local
  server, ``PREFECT_HOME`` and result storage in the temporary folder;
* ``zenml``:   ``@pipeline``/``@step`` on the default local stack (``zenml init`` in the temporary folder,
  its SQLite store there too), step caching on.

Each repetition of a side is a fresh process with a fresh store. It writes the
steps as an ordinary Python module (the same function bodies on every side, with
that tool's decorators), imports the library (timed), runs a 3-step warm-up
pipeline (untimed in the comparisons: it starts servers and opens stores), then:

1. a chain of no-op steps (``inc{i}(inc{i-1}) -> inc{i-1} + 1``), cold, then again
   with the same inputs (every step should be a cache hit);
2. a chain of numpy steps (each sums a 1e6-element array drawn from its own seed and
   adds the previous result), cold, then again (cached).

Finally the cache-correctness check: a one-step pipeline whose step calls
``helper()`` from another module of the project; after a first run the helper's
body changes (``x + 1`` -> ``x + 2``) and a NEW process runs the pipeline again
with caching on: the result is either the new one (correct) or the old one (stale).

The last line printed is always ``SPEEDUP min=<ratio> (<measurement>: <peer>)``: the
smallest peer-time / loopml-time ratio over the cold and cached chains, and the
import (Dagster has no cross-run cache, so it is left out of the cached comparisons).

The side code uses only the standard library, numpy and the library under test,
because the peer venvs have neither rich nor loopml.
"""

from __future__ import annotations

import argparse
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

from _common import ensure_peer_venv, fmt_time, machine_load, venv_python  # bench/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
PROGRESS_PREFIX = "@@bench "
SEED = 20240611
ARRAY_SIZE = 1_000_000
WARM_STEPS = 3
SIDE_TIMEOUT = 900  # seconds for one side process before it is killed

SIZES: dict[str, dict[str, int]] = {
    # noop: steps of the no-op chain; numpy: steps of the numpy chain; reps: processes per side (median)
    "full": {"noop": 100, "numpy": 10, "reps": 3},
    "quick": {"noop": 20, "numpy": 5, "reps": 1},
}

#: peer venvs: what to install, and a probe that prints the version if the venv works
PEERS: dict[str, dict[str, Any]] = {
    "dagster": {
        "requirements": ["dagster", "numpy"],
        "probe": "import dagster, numpy; print(dagster.__version__)",
    },
    "prefect": {
        # Prefect 3.8's server passes min_items= to fastapi.Body, which fastapi 0.151+ refuses: pin it
        "requirements": ["prefect>=3,<4", "fastapi<0.151", "numpy"],
        "probe": "import prefect, numpy, prefect.server.api.server; print(prefect.__version__)",
        "major": "3",
    },
    "zenml": {
        # the `local` extra brings SQLAlchemy for the local SQLite store (without it ZenML wants a server)
        "requirements": ["zenml[local]", "numpy"],
        "probe": "import zenml, numpy, sqlalchemy; print(zenml.__version__)",
    },
}

#: sides in the order they run; "tools" are the rows of the table (Dagster runs two ways)
SIDE_ORDER = ["python", "loopml", "dagster", "prefect", "zenml"]
TOOLS: dict[str, list[str]] = {
    "python": ["python"], "loopml": ["loopml"], "dagster": ["dagster", "dagster-sqlite"],
    "prefect": ["prefect"], "zenml": ["zenml"],
}
TOOL_LABEL = {
    "python": "plain Python", "loopml": "loopml", "dagster": "Dagster (in memory)",
    "dagster-sqlite": "Dagster (SQLite instance)", "prefect": "Prefect", "zenml": "ZenML",
}
NO_CACHE = {"python", "dagster", "dagster-sqlite"}  # no cross-run cache: the second run re-executes everything


# =============================================================================
# The generated step modules: the same function bodies on every side, with each tool's decorators.
# =============================================================================


def step_defs(kind: str, n: int) -> list[tuple[str, str, str, list[str]]]:
    """(name, parameter, annotation, body lines) of each step; each takes the previous step's output."""
    out = []
    if kind in ("noop", "warm"):
        prefix = "inc" if kind == "noop" else "warm"
        for i in range(n):
            p = "x" if i == 0 else f"{prefix}{i - 1}"
            out.append((f"{prefix}{i}", p, "int", [f"return {p} + 1"]))
    elif kind == "numpy":
        for i in range(n):
            p = "x" if i == 0 else f"work{i - 1}"
            out.append((f"work{i}", p, "float", [f"a = np.random.default_rng({SEED + i}).random({ARRAY_SIZE})",
                                                 f"return {p} + float(a.sum())"]))
    elif kind == "check":
        out.append(("use_helper", "x", "int", ["return helper(x)"]))
    else:
        raise ValueError(kind)
    return out


def first_value(kind: str) -> Any:
    return 0.0 if kind == "numpy" else 0


HELPER_MODULE = "bench_helper"


def helper_source(add: int) -> str:
    return f'"""A project helper that a step calls (the cache check changes its body)."""\n\n\n' \
           f"def helper(x):\n    return x + {add}\n"


def module_source(side: str, kind: str, n: int) -> str:
    defs = step_defs(kind, n)
    ann = defs[0][2]
    x0 = repr(first_value(kind))
    lines = [f'"""Generated by bench/pipeline_overhead.py: {side}, {kind} chain of {n} steps."""', ""]
    if kind == "numpy":
        lines.append("import numpy as np")
    if kind == "check":
        lines.append(f"from {HELPER_MODULE} import helper")
    lines += {
        "python": [],
        "loopml": ["from loopml.pipelines import Pipeline, step"],
        "prefect": ["from prefect import flow, task", "from prefect.cache_policies import INPUTS, TASK_SOURCE"],
        "zenml": ["from zenml import pipeline, step"],
        "dagster": ["from dagster import job, op"],
    }[side]
    deco = {
        "python": [],
        "loopml": ["@step"],
        "prefect": ["@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)"],
        "zenml": ["@step"],
        "dagster": ["@op"],
    }[side]
    for name, p, a, body in defs:
        lines += ["", "", *deco, f"def {name}({p}: {a}) -> {a}:", *("    " + b for b in body)]
    lines += ["", "", f"STEPS = [{', '.join(d[0] for d in defs)}]", f"LAST = {defs[-1][0]!r}", ""]
    if side == "python":
        lines += [f"def PIPELINE(x: {ann} = {x0}) -> {ann}:", "    a = x", "    for f in STEPS:", "        a = f(a)",
                  "    return a"]
    elif side == "loopml":
        lines += [f'PIPELINE = Pipeline("{kind}", steps=STEPS, params={{"x": {x0}}})']
    elif side == "prefect":
        # return_state=True only to report each task's state (Completed / Cached) back to the benchmark
        lines += [f'@flow(name="{kind}")', f"def PIPELINE(x: {ann} = {x0}):", "    states = []", "    a = x",
                  "    for t in STEPS:", "        s = t(a, return_state=True)", "        states.append(s.name)",
                  "        a = s.result()", "    return a, states"]
    elif side == "zenml":
        lines += [f'@pipeline(name="{kind}", enable_cache=True)', f"def PIPELINE(x: {ann} = {x0}):",
                  "    a = STEPS[0](x)", "    for s in STEPS[1:]:", "        a = s(a)"]
    elif side == "dagster":
        lines += [f'@job(name="{kind}")', "def PIPELINE():", "    a = STEPS[0]()", "    for s in STEPS[1:]:",
                  "        a = s(a)", "", "", f'RUN_CONFIG = {{"ops": {{"{defs[0][0]}": {{"inputs": {{"x": {x0}}}}}}}}}']
    return "\n".join(lines) + "\n"


# =============================================================================
# The side process: one tool's half, results as JSON. No rich, no loopml outside the loopml side.
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
    def step(self, key: str, desc: str) -> Iterator[None]:
        self._emit(desc, self.done / self.total)
        yield
        self.done += self.weights.get(key, 0.0)
        self._emit(desc, self.done / self.total)


def _status_counts(statuses: list[str] | None) -> dict[str, int] | None:
    if statuses is None:
        return None
    out: dict[str, int] = {}
    for s in statuses:
        out[s] = out.get(s, 0) + 1
    return out


class Side:
    """One tool. ``run(mod, kind, variant)`` runs a generated module's pipeline: (value, step statuses or None)."""

    name = ""
    variants: list[str] = []

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.import_detail: dict[str, float] = {}

    def env(self) -> None:
        """Environment variables the library reads when imported (store locations in the workdir)."""

    def init_store(self) -> None:
        """Untimed set-up of a fresh store before the library is imported."""

    def import_lib(self) -> str:
        """Import what a user imports to define a pipeline; return the version."""
        raise NotImplementedError

    def after_import(self) -> None:
        pass

    def run(self, mod: Any, kind: str, variant: str) -> tuple[Any, list[str] | None]:
        raise NotImplementedError


class PythonSide(Side):
    name = "python"
    variants = ["python"]

    def import_lib(self) -> str:
        return sys.version.split()[0]

    def run(self, mod: Any, kind: str, variant: str) -> tuple[Any, list[str] | None]:
        return mod.PIPELINE(), None


class LoopmlSide(Side):
    name = "loopml"
    variants = ["loopml"]

    def import_lib(self) -> str:
        t0 = time.perf_counter()
        import loopml

        self.import_detail["import loopml"] = time.perf_counter() - t0
        from loopml.config import Settings
        from loopml.pipelines import Pipeline, step  # noqa: F401

        self.import_detail["+ from loopml.pipelines import Pipeline, step"] = time.perf_counter() - t0
        self.settings = Settings.for_dir(self.workdir)  # the generated modules are the project's code
        return loopml.__version__

    def run(self, mod: Any, kind: str, variant: str) -> tuple[Any, list[str] | None]:
        run = mod.PIPELINE.run(settings=self.settings)
        if run.status != "finished":
            raise RuntimeError(f"loopml run {run.id} ended {run.status}: {run.error}")
        return run.outputs[mod.LAST], [s.status for s in run.steps]


class PrefectSide(Side):
    name = "prefect"
    variants = ["prefect"]

    def env(self) -> None:
        home = self.workdir / "prefect_home"
        home.mkdir(parents=True, exist_ok=True)
        for k in [k for k in os.environ if k.startswith("PREFECT_")]:
            del os.environ[k]
        os.environ.update({
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",  # no PREFECT_API_URL: a temporary local server
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",  # its start can take >20 s on a busy machine
            "PREFECT_LOCAL_STORAGE_PATH": str(self.workdir / "prefect_results"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "true",
        })

    def import_lib(self) -> str:
        t0 = time.perf_counter()
        import prefect
        from prefect import flow, task  # noqa: F401
        from prefect.cache_policies import INPUTS, TASK_SOURCE  # noqa: F401

        self.import_detail["from prefect import flow, task"] = time.perf_counter() - t0
        return prefect.__version__

    def after_import(self) -> None:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        self.workers = (APILogWorker, EventsWorker)

    def run(self, mod: Any, kind: str, variant: str) -> tuple[Any, list[str] | None]:
        value, states = mod.PIPELINE()
        # the flow returns before its logs and events reach the server: wait for that here (a script pays it at
        # exit), so that the work of one run is not left to slow down the next measurement
        for worker in self.workers:
            worker.drain_all()
        norm = {"Completed": "done", "Cached": "cached"}
        return value, [norm.get(s, s) for s in states]


class ZenmlSide(Side):
    name = "zenml"
    variants = ["zenml"]

    def env(self) -> None:
        for k in [k for k in os.environ if k.startswith("ZENML_")]:
            del os.environ[k]
        os.environ.update({
            "ZENML_CONFIG_PATH": str(self.workdir / "zenml_config"),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_ENABLE_RICH_TRACEBACK": "false",
            "AUTO_OPEN_DASHBOARD": "false",
        })

    def init_store(self) -> None:
        if (self.workdir / ".zen").exists():
            return
        zenml_cli = Path(sys.executable).parent / "zenml"
        proc = subprocess.run([str(zenml_cli), "init"], cwd=self.workdir, capture_output=True, text=True)
        sys.stderr.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"`zenml init` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")

    def import_lib(self) -> str:
        t0 = time.perf_counter()
        import zenml
        from zenml import pipeline, step  # noqa: F401

        self.import_detail["from zenml import pipeline, step"] = time.perf_counter() - t0
        return zenml.__version__

    def after_import(self) -> None:
        from zenml.client import Client

        self.client = Client()

    def run(self, mod: Any, kind: str, variant: str) -> tuple[Any, list[str] | None]:
        run = mod.PIPELINE()
        self._last_run = run
        return None, None  # read back untimed by finish()

    def finish(self, mod: Any) -> tuple[Any, list[str] | None]:
        run = self.client.get_pipeline_run(self._last_run.id)
        if str(run.status.value) != "completed":
            raise RuntimeError(f"ZenML run {run.name} ended {run.status}")
        steps = run.steps
        statuses = [("done" if steps[n].status.value == "completed" else steps[n].status.value) for n in
                    [s.name for s in mod.STEPS]]
        return steps[mod.LAST].output.load(), statuses


class DagsterSide(Side):
    name = "dagster"
    variants = ["dagster", "dagster-sqlite"]

    def env(self) -> None:
        home = self.workdir / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        for k in [k for k in os.environ if k.startswith("DAGSTER_")]:
            del os.environ[k]
        os.environ["DAGSTER_HOME"] = str(home)

    def import_lib(self) -> str:
        t0 = time.perf_counter()
        import dagster
        from dagster import DagsterInstance, job, op  # noqa: F401

        self.import_detail["from dagster import job, op"] = time.perf_counter() - t0
        self.dagster = dagster
        return dagster.__version__

    def after_import(self) -> None:
        (self.workdir / "dagster_instance").mkdir(exist_ok=True)
        self.instance = self.dagster.DagsterInstance.local_temp(
            tempdir=str(self.workdir / "dagster_instance"), overrides={"telemetry": {"enabled": False}})

    def run(self, mod: Any, kind: str, variant: str) -> tuple[Any, list[str] | None]:
        instance = self.instance if variant == "dagster-sqlite" else None  # None: a new in-memory instance
        res = mod.PIPELINE.execute_in_process(run_config=mod.RUN_CONFIG, instance=instance)
        if not res.success:
            raise RuntimeError("Dagster run failed")
        return res.output_for_node(mod.LAST), None


SIDES: dict[str, type[Side]] = {"python": PythonSide, "loopml": LoopmlSide, "prefect": PrefectSide,
                                "zenml": ZenmlSide, "dagster": DagsterSide}


def _write(workdir: Path, name: str, text: str) -> None:
    (workdir / f"{name}.py").write_text(text)


def _import_module(name: str) -> Any:
    import importlib

    importlib.invalidate_caches()
    return importlib.import_module(name)


def _children_cpu() -> float:
    """CPU seconds used so far by this process's descendants that are still running (Linux; 0 elsewhere)."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        procs: dict[int, tuple[int, float]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            procs[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    except (OSError, ValueError, AttributeError):
        return 0.0
    mine, todo = set(), [os.getpid()]
    while todo:
        parent = todo.pop()
        kids = [pid for pid, (ppid, _) in procs.items() if ppid == parent and pid not in mine]
        mine.update(kids)
        todo.extend(kids)
    return sum(procs[pid][1] for pid in mine)


def _settle(limit: float = 60.0) -> tuple[float, float]:
    """Wait (untimed) until child processes (Prefect's server) stop working: (seconds waited, their CPU seconds)."""
    t0 = time.perf_counter()
    start = last = _children_cpu()
    quiet = 0
    while time.perf_counter() - t0 < limit and quiet < 2:
        time.sleep(0.25)
        now = _children_cpu()
        quiet = quiet + 1 if now - last <= 0.02 else 0
        last = now
    return time.perf_counter() - t0, last - start


def _run(side: Side, mod: Any, kind: str, variant: str) -> tuple[float, Any, list[str] | None, dict[str, float]]:
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    value, statuses = side.run(mod, kind, variant)
    secs = time.perf_counter() - t0
    bg = {"child_cpu_during": _children_cpu() - cpu0}
    if isinstance(side, ZenmlSide):
        value, statuses = side.finish(mod)
    if bg["child_cpu_during"] > 0:
        bg["settle_seconds"], bg["child_cpu_after"] = _settle()
    return secs, value, statuses, bg


def run_rep(side_name: str, workdir: Path, sizes: dict[str, int]) -> dict[str, Any]:
    side = SIDES[side_name](workdir)
    out: dict[str, Any] = {"side": side_name, "python": sys.version.split()[0], "executable": sys.executable}
    nv = len(side.variants)
    rep = Reporter([("init", 1), ("import", 1), ("define", 1), ("warm", 1 * nv), ("noop", 3 * nv),
                    ("numpy", 3 * nv)])
    sys.path.insert(0, str(workdir))
    os.chdir(workdir)
    side.env()
    with rep.step("init", "setting up the store (untimed)"):
        t0 = time.perf_counter()
        side.init_store()
        out["init_seconds"] = time.perf_counter() - t0
    with rep.step("import", "importing"):
        t0 = time.perf_counter()
        try:
            out["version"] = side.import_lib()
        except ImportError as e:
            traceback.print_exc()
            out.update(available=False, reason=f"{type(e).__name__}: {e}")
            return out
        out["import_seconds"] = time.perf_counter() - t0
        out["import_detail"] = side.import_detail
        side.after_import()
    out["available"] = True
    sizes_of = {"warm": WARM_STEPS, "noop": sizes["noop"], "numpy": sizes["numpy"]}
    mods: dict[str, Any] = {}
    with rep.step("define", "defining the pipelines"):
        out["define_seconds"] = {}
        for kind, n in sizes_of.items():
            name = f"bench_{kind}"
            _write(workdir, name, module_source(side_name, kind, n))
            t0 = time.perf_counter()
            mods[kind] = _import_module(name)
            out["define_seconds"][kind] = time.perf_counter() - t0
    np_mod = sys.modules.get("numpy") or _import_module("numpy")
    np_mod.random.default_rng(0).random(ARRAY_SIZE).sum()  # numpy's first-use costs, untimed and on every side
    runs: dict[str, Any] = {}
    out["runs"] = runs
    for variant in side.variants:
        with rep.step("warm", f"{variant}: warm-up pipeline of {WARM_STEPS} steps"):
            secs, value, statuses, bg = _run(side, mods["warm"], "warm", variant)
            runs.setdefault(variant, {})["warm"] = {"seconds": secs, "value": value,
                                                    "statuses": _status_counts(statuses), "background": bg}
        for kind in ("noop", "numpy"):
            n = sizes_of[kind]
            res: dict[str, Any] = {"steps": n}
            for phase in ("cold", "cached"):
                with rep.step(kind, f"{variant}: {kind} chain of {n} steps, {phase}"):
                    secs, value, statuses, bg = _run(side, mods[kind], kind, variant)
                res[phase] = {"seconds": secs, "value": value, "statuses": _status_counts(statuses),
                              "background": bg}
                rep.done -= rep.weights[kind] * 2 / 3  # two phases share the step's weight
            rep.done += rep.weights[kind] * 4 / 3
            runs[variant][kind] = res
    return out


def run_check(side_name: str, workdir: Path, phase: str) -> dict[str, Any]:
    """The helper-change check: phase 1 runs the pipeline; phase 2 (a new process, after the helper changed) again."""
    side = SIDES[side_name](workdir)
    out: dict[str, Any] = {"side": side_name, "phase": phase}
    rep = Reporter([("init", 1), ("import", 1), ("run", 2)])
    sys.path.insert(0, str(workdir))
    os.chdir(workdir)
    sys.dont_write_bytecode = True
    side.env()
    with rep.step("init", f"cache check ({phase}): store"):
        side.init_store()
    with rep.step("import", f"cache check ({phase}): importing"):
        try:
            out["version"] = side.import_lib()
        except ImportError as e:
            out.update(available=False, reason=f"{type(e).__name__}: {e}")
            return out
        side.after_import()
    out["available"] = True
    if phase == "first":
        _write(workdir, "bench_check", module_source(side_name, "check", 1))
    with rep.step("run", f"cache check ({phase}): running"):
        mod = _import_module("bench_check")
        helper = _import_module(HELPER_MODULE)
        out["expected"] = helper.helper(first_value("check"))  # what the helper on disk gives now
        variant = side.variants[-1]  # Dagster: the SQLite instance (the one that persists)
        secs, value, statuses, _bg = _run(side, mod, "check", variant)
    out.update(seconds=secs, value=value, statuses=_status_counts(statuses))
    return out


def side_main(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    try:
        if args.check:
            result = run_check(args.side, workdir, args.check)
        else:
            sizes = json.loads(args.sizes)
            result = run_rep(args.side, workdir, sizes)
    except Exception as e:
        traceback.print_exc()
        result = {"side": args.side, "available": False, "crashed": True, "reason": f"{type(e).__name__}: {e}"}
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    return 0  # a normal exit: Prefect stops its ephemeral server at exit


# =============================================================================
# The parent process: peer venvs, the side processes, the report. Uses rich.
# =============================================================================


def side_env(check: bool = False) -> dict[str, str]:
    """The environment of a side: no settings of any of the tools or PYTHONPATH leaking in, no telemetry."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOOPML_", "PREFECT_", "ZENML_", "DAGSTER_"))}
    env.pop("PYTHONPATH", None)
    env["DO_NOT_TRACK"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    if check:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # the helper changes within a second: no stale .pyc
    return env


def ensure_venv(console: Any, name: str, venv: Path) -> tuple[str | None, str]:
    """Create the peer venv if it cannot import its library; return (version or None, why not)."""
    return ensure_peer_venv(console, name, PEERS[name], venv, side_env())


def _stop_group(pgid: int) -> None:
    """End what is left of a side's process group (e.g. a server a peer started and did not stop)."""
    import signal

    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.1)


def run_side_process(side: str, python: str, workdir: Path, tag: str, extra: list[str], progress: Any, task: Any,
                     base: float, span: float, console: Any, label: str) -> dict[str, Any]:
    """Run one side process in its own process group, showing its progress; returns its JSON result."""
    import queue
    import threading

    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir.parent / f"{tag}.json"
    log = workdir.parent / f"{tag}.log"
    cmd = [python, str(Path(__file__).resolve()), "--side", side, "--out", str(out), "--workdir", str(workdir), *extra]
    t0 = time.perf_counter()
    timed_out = False
    with log.open("w") as errf:
        proc = subprocess.Popen(cmd, cwd=workdir, env=side_env(check="--check" in extra), stdout=subprocess.PIPE,
                                stderr=errf, text=True, start_new_session=True)
        lines: queue.Queue[str | None] = queue.Queue()

        def reader() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()
        try:
            while True:
                try:
                    line = lines.get(timeout=0.25)
                except queue.Empty:
                    if proc.poll() is not None:
                        break  # exited; a child it left behind may still hold the pipe open
                    if time.perf_counter() - t0 > SIDE_TIMEOUT:
                        timed_out = True
                        break
                    continue
                if line is None:
                    break
                if line.startswith(PROGRESS_PREFIX):
                    ev = json.loads(line[len(PROGRESS_PREFIX):])
                    progress.update(task, completed=(base + span * ev["frac"]) * 1000,
                                    description=f"{side:8} {label}: {ev['desc']}")
        finally:
            if proc.poll() is None:  # timed out or interrupted
                proc.kill()
            rc = proc.wait()
            _stop_group(proc.pid)  # then whatever it left running in its group
    wall = time.perf_counter() - t0
    if timed_out:
        return {"side": side, "available": False, "crashed": True,
                "reason": f"killed after {SIDE_TIMEOUT}s, see {log}", "stderr_log": str(log)}
    if rc != 0 or not out.exists():
        tail = log.read_text(errors="replace").splitlines()[-40:]
        console.print(f"[bold red]the {side} side failed (exit {rc}); last lines of {log}:[/]")
        console.print("\n".join(tail), markup=False, highlight=False)
        return {"side": side, "available": False, "crashed": True, "reason": f"exit {rc}, see {log}",
                "stderr_log": str(log)}
    result = json.loads(out.read_text())
    result["wall_seconds"] = wall
    result["stderr_log"] = str(log)
    if result.get("crashed"):
        tail = log.read_text(errors="replace").splitlines()[-25:]
        console.print(f"[bold red]the {side} side crashed: {result.get('reason')}; last lines of {log}:[/]")
        console.print("\n".join(tail), markup=False, highlight=False)
    return result


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _bg_cpu(run: dict[str, Any]) -> float:
    bg = run.get("background") or {}
    return float(bg.get("child_cpu_during", 0.0)) + float(bg.get("child_cpu_after", 0.0))


def summarize(reps: list[dict[str, Any]], tools: list[str]) -> dict[str, Any]:
    """Medians over the repetitions of one side, per tool (variant)."""
    ok = [r for r in reps if r.get("available")]
    out: dict[str, Any] = {"reps_ok": len(ok), "reps": len(reps)}
    if not ok:
        out["reason"] = reps[0].get("reason", "?") if reps else "did not run"
        return out
    out["version"] = ok[0]["version"]
    out["import"] = _median([r["import_seconds"] for r in ok])
    out["import_detail"] = {k: _median([r["import_detail"][k] for r in ok]) for k in ok[0]["import_detail"]}
    out["init"] = _median([r["init_seconds"] for r in ok])
    out["define"] = {k: _median([r["define_seconds"][k] for r in ok]) for k in ok[0]["define_seconds"]}
    out["wall"] = _median([r["wall_seconds"] for r in ok])
    per_tool: dict[str, Any] = {}
    for tool in tools:
        t: dict[str, Any] = {"warm": _median([r["runs"][tool]["warm"]["seconds"] for r in ok])}
        for kind in ("noop", "numpy"):
            runs = [r["runs"][tool][kind] for r in ok]
            t[kind] = {"steps": runs[0]["steps"],
                       "cold": _median([x["cold"]["seconds"] for x in runs]),
                       "cached": _median([x["cached"]["seconds"] for x in runs]),
                       "all_cold": [x["cold"]["seconds"] for x in runs],
                       "all_cached": [x["cached"]["seconds"] for x in runs],
                       # CPU seconds of child processes (Prefect's server) during and after the run
                       "bg_cold": _median([_bg_cpu(x["cold"]) for x in runs]),
                       "bg_cached": _median([_bg_cpu(x["cached"]) for x in runs])}
        t["_import"] = out["import"]
        per_tool[tool] = t
    out["tools"] = per_tool
    return out


def correctness(side: str, tools: list[str], reps: list[dict[str, Any]], ref: dict[str, Any] | None,
                sizes: dict[str, int]) -> list[tuple[str, str]]:
    """Checks on every repetition: the chains give the plain-Python values; statuses say what should happen."""
    failed: list[tuple[str, str]] = []
    want = {"noop": sizes["noop"], "warm": WARM_STEPS}
    for i, r in enumerate(reps):
        if not r.get("available"):
            continue
        for tool in tools:
            runs = r["runs"][tool]
            for kind in ("noop", "numpy"):
                for phase in ("cold", "cached"):
                    got = runs[kind][phase]
                    exp = want.get(kind)
                    if kind == "numpy" and ref is not None:
                        exp = ref["runs"]["python"]["numpy"]["cold"]["value"]
                    if exp is not None and (got["value"] is None or abs(float(got["value"]) - float(exp))
                                            > 1e-9 * max(1.0, abs(float(exp)))):
                        failed.append((f"{TOOL_LABEL[tool]}: {kind} chain {phase} (rep {i + 1})",
                                       f"returned {got['value']!r}, expected {exp!r}"))
                    st = got["statuses"]
                    if st is None or tool in NO_CACHE:
                        continue
                    n = runs[kind]["steps"]
                    expect = {"done": n} if phase == "cold" else {"cached": n}
                    if st != expect:
                        failed.append((f"{TOOL_LABEL[tool]}: {kind} chain {phase} (rep {i + 1}) step statuses",
                                       f"{st}, expected {expect}"))
    return failed


def parent_main(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table
    except ImportError:
        print("rich is missing: run this with the loopml venv, e.g. `.venv/bin/python bench/pipeline_overhead.py`",
              file=sys.stderr)
        return 2
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=170)
    probe = subprocess.run([sys.executable, "-c", "import loopml, numpy"], capture_output=True, text=True,
                           env=side_env())
    if probe.returncode != 0:
        console.print(f"[red]this interpreter ({sys.executable}) cannot import loopml and numpy; "
                      "run it with .venv/bin/python[/]")
        return 2
    mode = "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    for k in ("noop", "numpy", "reps"):
        if getattr(args, k):
            sizes[k] = getattr(args, k)
    venvs = Path(args.venvs).absolute()
    t_start = time.perf_counter()

    pythons: dict[str, str] = {"python": sys.executable, "loopml": sys.executable}
    versions: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for peer in PEERS:
        if peer in args.skip:
            skipped[peer] = "--skip"
            continue
        found, why = ensure_venv(console, peer, venvs / peer)
        if found is None:
            skipped[peer] = why
            console.print(f"[yellow]{peer}: skipped: {why}[/]")
            continue
        pythons[peer] = str(venv_python(venvs / peer))
        versions[peer] = found

    root = Path(tempfile.mkdtemp(prefix="loopml-bench-pipelines-"))
    console.print(f"[bold]pipeline overhead: loopml vs {', '.join(p for p in PEERS if p in pythons) or 'no peer'}"
                  f"[/] ({mode}: no-op chain of {sizes['noop']} steps, numpy chain of {sizes['numpy']} steps, "
                  f"cold then cached; {sizes['reps']} fresh process(es) per side, median; then the helper-change "
                  f"cache check)")
    if mode == "quick":
        console.print("[dim]quick mode: most of the time is the peers' startup (ZenML and Prefect take several "
                      "seconds per process), so expect about 2.5 minutes in all on an idle machine[/]")
    load_before = machine_load()
    if load_before["busy"]:
        console.print(f"[yellow]warning: the machine is busy (load average {load_before['loadavg_1m']:.1f} on "
                      f"{load_before['cpus']} CPUs); timings will be noisy[/]")

    order = [s for s in SIDE_ORDER if s in pythons]
    reps: dict[str, list[dict[str, Any]]] = {}
    checks: dict[str, dict[str, Any]] = {}
    n_proc = sizes["reps"] + 2
    with Progress(SpinnerColumn(), TextColumn("{task.description}", style="bold"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console) as progress:
        tasks = {s: progress.add_task(f"{s:8} waiting", total=1000, start=False) for s in order}
        for side in order:
            progress.start_task(tasks[side])
            t0 = time.perf_counter()
            reps[side] = []
            for r in range(sizes["reps"]):
                res = run_side_process(side, pythons[side], root / side / f"rep{r + 1}", f"rep{r + 1}",
                                       ["--sizes", json.dumps(sizes)], progress, tasks[side], r / n_proc,
                                       1 / n_proc, console, f"rep {r + 1}/{sizes['reps']}")
                reps[side].append(res)
                if not res.get("available"):
                    break  # a side that cannot run once will not run the next time either
            checks[side] = {}
            if reps[side][-1].get("available"):
                cdir = root / side / "check"
                cdir.mkdir(parents=True, exist_ok=True)
                for phase, helper_add in (("first", 1), ("second", 2)):
                    (cdir / f"{HELPER_MODULE}.py").write_text(helper_source(helper_add))
                    shutil.rmtree(cdir / "__pycache__", ignore_errors=True)
                    checks[side][phase] = run_side_process(
                        side, pythons[side], cdir, f"check-{phase}", ["--check", phase], progress, tasks[side],
                        (n_proc - (2 if phase == "first" else 1)) / n_proc, 1 / n_proc, console, "cache check")
                    if not checks[side][phase].get("available"):
                        break
            progress.update(tasks[side], completed=1000,
                            description=f"{side:8} done in {time.perf_counter() - t0:.1f}s")
    load_after = machine_load()

    summary = {side: summarize(reps[side], TOOLS[side]) for side in order}
    ref_rep = next((r for r in reps.get("python", []) if r.get("available")), None)

    # ---- checks ----
    failed: list[tuple[str, str]] = []
    peer_problems: list[tuple[str, str]] = []  # a peer that could not run is skipped, not a failed check

    def problem(side: str, what: str, why: str) -> None:
        (peer_problems if side in PEERS else failed).append((f"{side}: {what}", why))

    for side in order:
        for r in reps[side]:
            if not r.get("available"):
                problem(side, "did not run", r.get("reason", "?"))
        failed.extend(correctness(side, TOOLS[side], reps[side], ref_rep, sizes))
    verdicts: dict[str, dict[str, Any]] = {}
    for side in order:
        c = checks[side]
        first, second = c.get("first", {}), c.get("second", {})
        if not (first.get("available") and second.get("available")):
            why = second.get("reason") or first.get("reason") or "did not run"
            verdicts[side] = {"verdict": "n/a", "detail": why}
            if c:  # (when the side did not run at all, that is already reported)
                problem(side, "cache check did not run", why)
            continue
        if first["value"] != first["expected"]:
            failed.append((f"{side}: cache check first run", f"returned {first['value']!r}, helper gives "
                                                             f"{first['expected']!r}"))
        v = "correct" if second["value"] == second["expected"] else (
            "stale" if second["value"] == first["value"] else "wrong")
        step_status = next(iter(second["statuses"] or {"-": 1}))
        verdicts[side] = {"verdict": v, "first": first["value"], "second": second["value"],
                          "expected": second["expected"], "status": step_status}

    # ---- table ----
    py = summary.get("python", {}).get("tools", {}).get("python")
    lm_sum = summary.get("loopml", {})
    lm = lm_sum.get("tools", {}).get("loopml")
    peer_rows: list[dict[str, Any]] = []

    table = Table(title=f"pipeline overhead — {mode}: loopml {lm_sum.get('version', '?')} vs peers "
                        f"(median of {sizes['reps']} fresh process(es); lower time is better)", title_justify="left")
    for col, kw in (("measurement", {}), ("tool", {}), ("time", {"justify": "right"}),
                    ("per step", {"justify": "right"}), ("vs loopml", {"justify": "right"}),
                    ("target", {"justify": "center"}), ("notes", {"style": "dim"})):
        table.add_column(col, **kw)

    def ratio_cell(ratio: float | None) -> str:
        if ratio is None:
            return "n/a"
        style = "green" if ratio >= 1.5 else ("yellow" if ratio >= 1 else "red")
        return f"[{style}]{ratio:,.1f}x faster[/]" if ratio >= 1 else f"[{style}]{1 / ratio:,.1f}x slower[/]"

    def target_cell(ok: bool | None, text: str) -> str:
        if ok is None:
            return ""
        return f"{text} " + ("[green]✓[/]" if ok else "[red]✗[/]")

    def tool_name(tool: str) -> str:
        side = next(s for s, ts in TOOLS.items() if tool in ts)
        v = summary.get(side, {}).get("version")
        return f"{TOOL_LABEL[tool]} {v}" if v and tool != "python" else TOOL_LABEL[tool]

    def tool_data(tool: str) -> dict[str, Any] | None:
        side = next(s for s, ts in TOOLS.items() if tool in ts)
        return summary.get(side, {}).get("tools", {}).get(tool)

    all_tools = [t for s in order for t in TOOLS[s]]

    def section(label: str, key: str, getter: Callable[[dict[str, Any]], float | None], *, steps: int | None,
                overhead: bool, cached: bool, loopml_target: tuple[Callable[[float, float | None], bool], str] | None,
                notes: dict[str, str], skip: tuple[str, ...] = ()) -> None:
        lsecs = getter(lm) if lm else None
        key_kind = {"no-op": "noop", "numpy": "numpy"}.get(key.split()[0])
        key_phase = key.split()[-1]
        for tool in [t for t in all_tools if t not in skip]:
            d = tool_data(tool)
            side = next(s for s, ts in TOOLS.items() if tool in ts)
            if d is None:
                why = summary.get(side, {}).get("reason", "did not run")
                table.add_row(label, tool_name(tool), "n/a", "", "", "", f"n/a: {why}")
                continue
            secs = getter(d)
            per = ""
            if steps and secs is not None:
                if overhead and py is not None and tool != "python":
                    plain = getter(py) or 0.0
                    per = f"{fmt_time((secs - plain) / steps)} overhead"
                else:
                    per = fmt_time(secs / steps)
            ratio = None
            if tool not in ("loopml", "python") and secs is not None and lsecs:
                ratio = secs / lsecs
            note = notes.get(tool, "")
            bg = d[key_kind]["bg_" + key_phase] if key_kind else None
            if bg and bg >= 0.05:
                note = (note + "; " if note else "") + f"+{bg:.1f} s CPU in its server process (during and after)"
            if cached and tool in NO_CACHE:
                note = "no cross-run cache: every step runs again (not compared)" if tool != "python" else \
                    "plain calls again"
                ratio_s = "n/a" if tool != "python" else ""
            else:
                ratio_s = "" if tool in ("loopml", "python") else ratio_cell(ratio)
                if ratio is not None:
                    who = "Dagster" if key == "import" and tool == "dagster" else TOOL_LABEL[tool]
                    peer_rows.append({"label": f"{key}: {who}", "ratio": ratio})
            if tool == "python" and lsecs and secs:
                ratio_s = f"[dim]loopml = {lsecs / secs:,.0f}x[/]" if lsecs / secs >= 10 else \
                    f"[dim]loopml = {lsecs / secs:,.2f}x[/]"
            tgt = ""
            if tool == "loopml" and loopml_target is not None and secs is not None:
                fn, text = loopml_target
                plain = getter(py) if py else None
                tgt = target_cell(fn(secs, plain), text)
            name = f"[bold]{tool_name(tool)}[/]" if tool == "loopml" else tool_name(tool)
            table.add_row(label, name, fmt_time(secs), per, ratio_s, tgt, note)
        table.add_section()

    n_noop, n_np = sizes["noop"], sizes["numpy"]
    section("import", "import", lambda d: d.get("_import"), steps=None, overhead=False, cached=False,
            loopml_target=(lambda s, p: s < 0.3, "<0.3 s"),
            skip=("python", "dagster-sqlite"), notes={"loopml": "import loopml + from loopml.pipelines import "
                   "Pipeline, step", "prefect": "from prefect import flow, task (+ cache_policies)",
                   "zenml": "from zenml import pipeline, step", "dagster": "from dagster import job, op"})
    section(f"no-op chain of {n_noop} steps, cold", "no-op cold", lambda d: d["noop"]["cold"], steps=n_noop,
            overhead=True, cached=False,
            loopml_target=(lambda s, p: (s - (p or 0)) / n_noop <= 0.005, "≤5 ms/step"),
            notes={"python": "the limit: plain calls", "loopml": "metadata in SQLite; outputs stored",
                   "dagster": "execute_in_process(), in-memory instance", "dagster-sqlite":
                   "execute_in_process(instance=<SQLite instance>)", "prefect": "ephemeral local server; results "
                   "persisted", "zenml": "local stack: SQLite store, local artifact store"})
    section(f"no-op chain of {n_noop} steps, cached re-run", "no-op cached", lambda d: d["noop"]["cached"],
            steps=n_noop, overhead=False, cached=True,
            loopml_target=(lambda s, p: s < 0.5, "<0.5 s") if n_noop >= 100 else None,
            notes={"loopml": "every step a cache hit", "prefect": "every task Cached", "zenml": "every step cached"})
    section(f"numpy chain of {n_np} steps, cold", "numpy cold", lambda d: d["numpy"]["cold"], steps=n_np,
            overhead=True, cached=False, loopml_target=None,
            notes={"python": f"the limit: {n_np} x (rng(seed).random(1e6).sum() + previous)"})
    section(f"numpy chain of {n_np} steps, cached re-run", "numpy cached", lambda d: d["numpy"]["cached"],
            steps=n_np, overhead=False, cached=True, loopml_target=None, notes={})
    console.print(table)

    # ---- informational: one-time costs, excluded from the comparisons ----
    info = Table(title="one-time costs per process (informational, not in SPEEDUP)", title_justify="left")
    for col in ("tool", "store set-up", "define pipelines", f"first pipeline run ({WARM_STEPS} steps)",
                "whole process", "import detail"):
        info.add_column(col, justify="left" if col in ("tool", "import detail") else "right")
    for tool in all_tools:
        side = next(s for s, ts in TOOLS.items() if tool in ts)
        sm, d = summary.get(side, {}), tool_data(tool)
        if d is None:
            continue
        first = tool == TOOLS[side][0]
        info.add_row(tool_name(tool), fmt_time(sm["init"]) if first else "",
                     fmt_time(sum(sm["define"].values())) if first else "", fmt_time(d["warm"]),
                     f"{sm['wall']:.1f} s" if first else "",
                     "; ".join(f"{k}: {fmt_time(v)}" for k, v in sm["import_detail"].items()) if first else "")
    console.print(info)
    console.print("[dim]store set-up: `zenml init` (a CLI process) for ZenML, nothing for the others (loopml creates "
                  "its SQLite store on first use, Prefect starts its ephemeral server on the first flow run: both "
                  "are inside the first pipeline run). The comparisons above start after that warm-up run.[/]")

    # ---- the cache-correctness check ----
    ct = Table(title="cache correctness: the step calls helper() from another module; the helper changes from "
                     "x + 1 to x + 2, then a new process runs again with caching on", title_justify="left")
    for col in ("tool", "first run", "after the change", "step", "verdict"):
        ct.add_column(col, justify="right" if col in ("first run", "after the change") else "left")
    for side in order:
        v = verdicts[side]
        label = tool_name(TOOLS[side][-1]) if side == "dagster" else tool_name(side)
        if v["verdict"] == "n/a":
            ct.add_row(label, "", "", "", f"[yellow]n/a[/] [dim]{v['detail']}[/]")
            continue
        style = {"correct": "green", "stale": "red"}.get(v["verdict"], "red")
        note = ""
        if side in NO_CACHE or side == "dagster":
            note = " [dim](no cross-run cache: it always re-runs)[/]"
        elif v["verdict"] == "stale":
            note = " [dim](cache hit on the old result)[/]"
        ct.add_row(label, str(v["first"]), f"{v['second']} (expected {v['expected']})", v["status"],
                   f"[{style}]{v['verdict']}[/]{note}")
    console.print(ct)

    if lm_sum.get("reps_ok") == 0:
        console.print(f"[yellow]loopml did not run: {lm_sum.get('reason')}[/]")
    elif verdicts.get("loopml", {}).get("verdict") not in ("correct", None):
        failed.append(("loopml: cache check", f"result after the helper change: {verdicts['loopml']}"))
    for side, why in skipped.items():
        console.print(f"[yellow]note: {side} was skipped: {why}[/]")
    for what, why in peer_problems:
        console.print(f"[yellow]note: {what} (left out of SPEEDUP): {why}[/]")
    for what, detail in failed:
        console.print(f"[bold white on red] CHECK FAILED [/] [red]{what}: {detail}[/]")
    if failed or peer_problems:
        for side in order:
            for r in [*reps[side], *checks[side].values()]:
                if not r.get("available") and r.get("stderr_log"):
                    style = "yellow" if side in PEERS else "red"
                    console.print(f"[{style}]   stderr of the {side} side: {r['stderr_log']}[/]")
    if not failed:
        cached = [TOOL_LABEL[t] for s in order for t in TOOLS[s] if t not in NO_CACHE and summary[s].get("tools")]
        console.print("[green]checks passed: every chain returned the plain-Python value; "
                      f"{', '.join(cached)} reported every step executed on the cold run and cached on the re-run[/]")
    if lm and py:
        over = (lm["noop"]["cold"] - py["noop"]["cold"]) / n_noop
        console.print(f"loopml: {fmt_time(over)} overhead per step cold (target ≤5 ms), cached {n_noop}-step "
                      f"re-run {fmt_time(lm['noop']['cached'])}"
                      + (" (target <0.5 s)" if n_noop >= 100 else "")
                      + f", import {fmt_time(lm['_import'])} (target <0.3 s), helper change: "
                      f"{verdicts.get('loopml', {}).get('verdict', 'n/a')}")
    console.print(f"[dim]total time {time.perf_counter() - t_start:.0f} s[/]")

    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "mode": mode, "sizes": sizes, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"platform": sys.platform, "load_before": load_before, "load_after": load_after},
            "versions": versions, "skipped": skipped, "summary": summary, "cache_check": verdicts,
            "failed_checks": [{"what": w, "detail": d} for w, d in failed], "peer_ratios": peer_rows,
            "peer_problems": [{"what": w, "detail": d} for w, d in peer_problems],
            "reps": reps, "checks": checks,
        }, indent=2, default=str))
        console.print(f"[dim]results saved to {path}[/]")
    if args.keep or failed or peer_problems:
        console.print(f"[dim]kept {root} (each side's stores, generated step modules, JSON and stderr logs)[/]")
    else:
        shutil.rmtree(root, ignore_errors=True)

    sys.stdout.flush()
    if not lm or not peer_rows:
        why = lm_sum.get("reason") or "no peer measured"
        print(f"SPEEDUP min=n/a ({why})", flush=True)
        return 2
    worst = min(peer_rows, key=lambda r: r["ratio"])
    print(f"SPEEDUP min={worst['ratio']:.2f} ({worst['label']})", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark loopml's pipeline overhead against Prefect, ZenML and Dagster.")
    p.add_argument("--quick", action="store_true", help="20 + 5 steps, one repetition")
    p.add_argument("--noop", type=int, help="steps of the no-op chain (default 100; 20 with --quick)")
    p.add_argument("--numpy", type=int, help="steps of the numpy chain (default 10; 5 with --quick)")
    p.add_argument("--reps", type=int, help="fresh processes per side (median; default 3; 1 with --quick)")
    p.add_argument("--skip", action="append", default=[], choices=sorted(PEERS), help="leave a peer out (repeatable)")
    p.add_argument("--json", metavar="PATH", help="save all results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (stores, generated code, logs)")
    p.add_argument("--venvs", metavar="DIR", default=str(VENVS),
                   help="where the peer venvs are (created if missing; default: bench/.venvs)")
    p.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--sizes", help=argparse.SUPPRESS)
    p.add_argument("--check", choices=["first", "second"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        if not args.out or not args.workdir or not (args.sizes or args.check):
            p.error("--side needs --out, --workdir and --sizes or --check")
        return side_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
