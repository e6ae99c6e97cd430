#!/usr/bin/env python
"""Model serving: ``loopml serve`` vs MLflow, BentoML and a hand-written FastAPI app, side by side in one run.

Usage (from the repository root)::

    .venv/bin/python bench/serving_vs_peers.py --quick                  # under a minute once the venvs exist
    .venv/bin/python bench/serving_vs_peers.py --only fastapi,inprocess  # a subset
    .venv/bin/python bench/serving_vs_peers.py --json bench/results/serving.json

Every server serves the same scikit-learn model (``LogisticRegression(max_iter=5000)`` on the bundled
breast-cancer data as a DataFrame, 30 float columns), on 127.0.0.1, one server at a time:

* ``loopml``: ``loopml serve models:/cancer@champion --open`` (the loopml venv), the model registered
  with an input example in a fresh project folder;
* ``mlflow``: ``mlflow models serve --env-manager local -w 1`` (``bench/.venvs/mlflow``) on a model
  saved by ``mlflow.sklearn.save_model`` with an input example;
* ``bentoml``: BentoML 1.4.39 (``bench/.venvs/bentoml``), ``bentoml serve serving_bentoml_service:Svc``
  with one worker, the model loaded with joblib; its ``predict_batched`` endpoint (adaptive batching)
  is measured on the same server;
* ``fastapi``: the hand-written ``serving_fastapi_app.py`` under uvicorn, one worker
  (``bench/.venvs/fastapi`` unless the loopml venv has fastapi and uvicorn);
* ``inprocess``: ``model.predict`` on one row in this process, the physical limit.

For each server: cold start (process launch to the first successful prediction), sequential
single-row latency on one keep-alive connection (p50/p99, after a warm-up), and throughput at
concurrency 16 over a fixed duration (16 keep-alive HTTP/1.1 connections of an asyncio client in
this process; each request is one row). Non-200 answers and wrong predictions are counted and
shown. A server that does not start is reported as failed, with the tail of its log, and the
others still run.

The last line printed is always ``SPEEDUP min=<x> (<peer>)``: the smallest loopml req/s / peer req/s
at concurrency 16 over MLflow, BentoML (its better variant) and the hand-written FastAPI app, for
the peers that ran; ``SPEEDUP min=n/a (<why>)`` when loopml or every peer is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ensure_peer_venv, fmt_time, machine_load, venv_python  # bench/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
HOST = "127.0.0.1"
CONCURRENCY = 16
START_TIMEOUT = 90.0  # seconds from launch to the first answer before a server counts as failed
PHASE_SLACK = 60.0  # a phase that overruns its expected time by this much is abandoned (a hung server)
MAX_LOAD_REQUESTS = 500_000  # a hard bound on one throughput phase, whatever the duration
MODEL_NAME = "cancer"
ALIAS = "champion"

SIZES: dict[str, dict[str, Any]] = {
    # seq: timed sequential requests (after seq_warmup untimed ones); duration: seconds of the timed load at
    # CONCURRENCY (after load_warmup seconds untimed); cold_reps: launches per server (median cold start)
    "full": {"seq": 2000, "seq_warmup": 200, "duration": 10.0, "load_warmup": 1.0, "cold_reps": 3},
    "quick": {"seq": 300, "seq_warmup": 50, "duration": 2.0, "load_warmup": 0.3, "cold_reps": 1},
}

SERVERS = ("loopml", "fastapi", "bentoml", "mlflow", "inprocess")
#: the peers in SPEEDUP (BentoML counts with its better variant)
SPEEDUP_PEERS = ("mlflow", "bentoml", "fastapi")

#: peer venvs: what to install, and a probe that prints the version if the venv works
PEERS: dict[str, dict[str, Any]] = {
    "mlflow": {  # the same venv as tracking_vs_mlflow.py
        "requirements": ["mlflow>=3,<4", "scikit-learn"],
        "probe": "import mlflow, sklearn; print(mlflow.__version__)",
        "major": "3",
    },
    "bentoml": {  # 1.4.40 does not install here; the probe fails on any other version, so pip pins it
        "requirements": ["bentoml==1.4.39", "scikit-learn", "pandas"],
        "probe": "import bentoml, joblib, sklearn, pandas; v = bentoml.__version__; assert v == '1.4.39', v; print(v)",
    },
    "fastapi": {  # uvicorn[standard]: uvloop and httptools, what `pip install "fastapi[standard]"` gives
        "requirements": ["fastapi", "uvicorn[standard]", "scikit-learn", "numpy", "pandas"],
        "probe": "import fastapi, uvicorn, joblib, sklearn, pandas; from importlib.util import find_spec as f; "
                 "fast = '+'.join(m for m in ('uvloop', 'httptools') if f(m)) or 'asyncio+h11'; "
                 "print(f'{fastapi.__version__} (uvicorn {uvicorn.__version__}, {fast})')",
    },
}


# =============================================================================
# A minimal HTTP/1.1 keep-alive client on asyncio streams
# =============================================================================


class HttpError(Exception):
    """A malformed or cut answer."""


class Conn:
    """One keep-alive HTTP/1.1 connection; ``send`` writes a prepared request and reads the whole answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)  # asyncio sets TCP_NODELAY
        reader, writer = self.reader, self.writer
        assert reader is not None
        writer.write(raw)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        try:
            status = int(head[9:12])
        except ValueError:
            raise HttpError(f"bad status line {head[:40]!r}") from None
        length = None
        chunked = close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if length is not None:
            body = await reader.readexactly(length)
        elif chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    break
                parts.append((await reader.readexactly(size + 2))[:-2])
            body = b"".join(parts)
        else:  # no length: the answer ends when the server closes
            body = await reader.read()
            close = True
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def post(path: str, port: int, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def get(path: str, port: int) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()


class Errors:
    """Failed requests by kind, with the first few answers of each kind."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.samples: dict[str, list[str]] = {}

    def add(self, kind: str, detail: str | bytes) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        samples = self.samples.setdefault(kind, [])
        if len(samples) < 3:
            samples.append(detail[:300])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "counts": self.counts, "samples": self.samples}


CONN_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError, ValueError)


def percentiles(lat: list[float]) -> dict[str, Any]:
    if not lat:
        return {"n": 0, "p50": None, "p99": None, "mean": None}
    s = sorted(lat)
    return {"n": len(s), "p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(0.99 * len(s)))],
            "mean": statistics.fmean(s), "max": s[-1]}


def prediction_of(body: bytes) -> Any:
    """The single prediction in an answer: ``{"predictions": [x]}`` or ``[x]``."""
    obj = json.loads(body)
    if isinstance(obj, dict):
        obj = obj["predictions"]
    while isinstance(obj, list):
        obj = obj[0]
    if isinstance(obj, dict):  # e.g. {"predictions": [{"0": 1}]}
        obj = next(iter(obj.values()))
    return int(obj)


async def sequential(port: int, reqs: list[bytes], expected: list[int], n: int, warmup: int) -> dict[str, Any]:
    """``warmup`` then ``n`` requests one after the other on one connection; answers checked afterwards."""
    conn, errors, lat = Conn(port), Errors(), []
    answers: list[tuple[int, bytes]] = []
    failures_in_a_row = 0
    for i in range(warmup + n):
        raw = reqs[i % len(reqs)]
        t = time.perf_counter()
        try:
            status, body = await conn.send(raw)
        except CONN_ERRORS as e:
            conn.close()
            errors.add(type(e).__name__, str(e))
            failures_in_a_row += 1
            if failures_in_a_row >= 50:
                raise ServerFailed(f"50 failed requests in a row; the last: {type(e).__name__}: {e}") from None
            await asyncio.sleep(0.01)
            continue
        dt = time.perf_counter() - t
        failures_in_a_row = 0
        if i >= warmup:
            lat.append(dt)
            answers.append((i % len(reqs), body if status == 200 else b""))
        if status != 200:
            errors.add(f"HTTP {status}", body)
    conn.close()
    wrong, samples = 0, []
    for row, body in answers:
        if not body:
            continue
        try:
            got = prediction_of(body)
        except (ValueError, KeyError, IndexError, TypeError, StopIteration):
            got = None
        if got != expected[row]:
            wrong += 1
            if len(samples) < 3:
                samples.append(f"row {row}: expected {expected[row]}, answer {body[:200].decode('utf-8', 'replace')}")
    return {**percentiles(lat), "errors": errors.as_dict(), "wrong": wrong, "wrong_samples": samples}


async def load(port: int, reqs: list[bytes], concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    """Keep ``concurrency`` connections busy for ``warmup`` (untimed) then ``duration`` seconds."""

    async def run(seconds: float) -> tuple[list[float], Errors, float]:
        lat: list[float] = []
        errors = Errors()
        stop_at = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            conn, i = Conn(port), k
            try:
                while time.perf_counter() < stop_at and len(lat) + errors.total < MAX_LOAD_REQUESTS:
                    t = time.perf_counter()
                    try:
                        status, body = await conn.send(reqs[i % len(reqs)])
                    except CONN_ERRORS as e:
                        conn.close()
                        errors.add(type(e).__name__, str(e))
                        await asyncio.sleep(0.01)
                        continue
                    finally:
                        i += concurrency
                    if status == 200:
                        lat.append(time.perf_counter() - t)
                    else:
                        errors.add(f"HTTP {status}", body)
            finally:
                conn.close()

        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker(k) for k in range(concurrency))), seconds + PHASE_SLACK)
        return lat, errors, time.perf_counter() - t0

    await run(warmup)
    cpu0 = time.process_time()
    lat, errors, elapsed = await run(duration)
    return {**percentiles(lat), "rps": len(lat) / elapsed, "seconds": elapsed, "concurrency": concurrency,
            "client_cpu": (time.process_time() - cpu0) / elapsed, "errors": errors.as_dict()}


# =============================================================================
# Servers: launch, wait for the first answer, measure, stop
# =============================================================================


class ServerFailed(Exception):
    """A server did not start, died, or stopped answering."""


@dataclass
class Endpoint:
    key: str  # the row's key, e.g. "bentoml-batched"
    label: str
    path: str
    body: Callable[[list[float]], bytes]  # one row -> request body


@dataclass
class Server:
    key: str
    label: str
    cmd: list[str]  # "{port}" stands for the port
    env: dict[str, str]
    endpoints: list[Endpoint]
    port: int = 0
    cwd: Path = HERE
    ready_path: str | None = None  # checked once after the first answer (informational)
    log: Path = Path()


_RUNNING: list[subprocess.Popen[bytes]] = []  # servers to stop, whatever happens
_TEMP: list[Path] = []  # temporary folders to delete at the end (unless --keep)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start(server: Server, cmd: list[str]) -> subprocess.Popen[bytes]:
    with server.log.open("ab") as log:
        log.write(f"\n$ {shlex.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=server.cwd, env=server.env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # its own process group
    _RUNNING.append(proc)
    return proc


def _procs() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, pgid, session) of every process (Linux /proc; empty elsewhere)."""
    out = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[1]), int(fields[2]), int(fields[3]))
        except (OSError, ValueError, IndexError):
            continue
    return out


def server_pids(leader: int) -> set[int]:
    """The server's processes: its process group and session (it leads both) and every descendant.

    Descendants count too because some servers (BentoML's workers) move into process groups of their own.
    """
    procs = _procs()
    found = {pid for pid, (_, pgid, sid) in procs.items() if leader in (pid, pgid, sid)}
    todo = list(found)
    while todo:
        parent = todo.pop()
        for pid, (ppid, _, _) in procs.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; after 5 s, or once the leader is gone, SIGKILL what is left of it."""
    before = _procs()
    pids = {pid: before[pid][1:] for pid in server_pids(proc.pid) if pid in before}  # pid -> (pgid, session)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(5.0)
    except subprocess.TimeoutExpired:
        pass
    now = _procs()
    left = server_pids(proc.pid) | {pid for pid, ids in pids.items() if pid in now and now[pid][1:] == ids}
    if proc.returncode is not None:  # the leader is reaped: its pid may belong to someone else by now
        left.discard(proc.pid)
    for pid in left:  # a pid is killed only while it is still the same server process (same group and session)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    try:
        proc.wait(5.0)
    except subprocess.TimeoutExpired:
        pass
    if proc in _RUNNING:
        _RUNNING.remove(proc)


def stop_all() -> None:
    for proc in list(_RUNNING):
        stop(proc)


def server_rss(leader: int) -> int | None:
    """Resident memory of all the server's processes (Linux only)."""
    total = 0
    for pid in server_pids(leader):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total or None


def log_tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


async def first_answer(proc: subprocess.Popen[bytes], port: int, raw: bytes, t0: float) -> None:
    """Poll with a real prediction request until one answers 200; 502/503/504 mean "not yet"."""
    last = "no connection yet"
    while True:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with status {proc.returncode} before answering"
                               + (f" (its last answer: {last})" if last.startswith("HTTP") else ""))
        left = START_TIMEOUT - (time.perf_counter() - t0)
        if left <= 0:
            raise ServerFailed(f"no successful answer within {START_TIMEOUT:.0f} s ({last})")
        conn = Conn(port)
        try:
            status, body = await asyncio.wait_for(conn.send(raw), left)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}"
            if status not in (502, 503, 504):
                raise ServerFailed(f"the first answer was {last}")
        except CONN_ERRORS as e:  # TimeoutError is an OSError
            last = f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        await asyncio.sleep(0.01)


async def measure_server(server: Server, rows: list[list[float]], expected: list[int], sizes: dict[str, Any],
                         say: Callable[[str], None]) -> dict[str, Any]:
    """Launch (``cold_reps`` times), then measure every endpoint on the last launch; always stops the server."""
    out: dict[str, Any] = {"cold": [], "variants": {}}
    first = server.endpoints[0]
    proc = None
    try:
        for rep in range(sizes["cold_reps"]):
            server.port = free_port()
            cmd = [str(server.port) if a == "{port}" else a for a in server.cmd]
            say(f"{server.label}: launch {rep + 1}/{sizes['cold_reps']}, waiting for the first answer")
            t0 = time.perf_counter()
            proc = start(server, cmd)
            await first_answer(proc, server.port, post(first.path, server.port, first.body(rows[0])), t0)
            out["cold"].append(time.perf_counter() - t0)
            if rep < sizes["cold_reps"] - 1:
                stop(proc)
        assert proc is not None
        out["cold_s"] = statistics.median(out["cold"])
        port = server.port
        if server.ready_path:
            conn = Conn(port)
            ready: int | str
            try:
                ready = (await asyncio.wait_for(conn.send(get(server.ready_path, port)), 10))[0]
            except CONN_ERRORS as e:
                ready = type(e).__name__
            finally:
                conn.close()
            out["ready"] = {"path": server.ready_path, "status": ready}
        for ep in server.endpoints:
            reqs = [post(ep.path, port, ep.body(r)) for r in rows]
            say(f"{ep.label}: {sizes['seq']} sequential requests")
            seq = await asyncio.wait_for(sequential(port, reqs, expected, sizes["seq"], sizes["seq_warmup"]),
                                         sizes["seq"] * 0.2 + PHASE_SLACK)
            say(f"{ep.label}: {sizes['duration']:g} s at concurrency {CONCURRENCY}")
            conc = await load(port, reqs, CONCURRENCY, sizes["duration"], sizes["load_warmup"])
            out["variants"][ep.key] = {"label": ep.label, "seq": seq, "load": conc}
            if proc.poll() is not None:
                raise ServerFailed(f"exited with status {proc.returncode} during the measurements")
        out["rss_bytes"] = server_rss(proc.pid)
        out["ok"] = True
    except (ServerFailed, *CONN_ERRORS) as e:
        why = str(e) if isinstance(e, ServerFailed) else f"{type(e).__name__}: {e}"
        out.update(ok=False, reason=why, log_tail=log_tail(server.log))
    finally:
        if proc is not None:
            stop(proc)
    return out


def measure_inprocess(model: Any, X: Any, expected: list[int], sizes: dict[str, Any]) -> dict[str, Any]:
    """``model.predict`` on one row, as a numpy array (the limit) and as a one-row DataFrame (informational)."""
    arr = X.to_numpy()
    singles = [arr[i:i + 1] for i in range(len(arr))]
    frames = [X.iloc[[i]] for i in range(min(len(X), 100))]
    n, warm = sizes["seq"], sizes["seq_warmup"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fitted on a DataFrame: sklearn warns about a bare array's feature names
        lat, wrong = [], 0
        for i in range(warm + n):
            row = i % len(singles)
            t = time.perf_counter()
            got = model.predict(singles[row])
            dt = time.perf_counter() - t
            if i >= warm:
                lat.append(dt)
                wrong += int(got[0]) != expected[row]
        df_lat = []
        for i in range(warm + n):
            t = time.perf_counter()
            model.predict(frames[i % len(frames)])
            if i >= warm:
                df_lat.append(time.perf_counter() - t)
    seq = percentiles(lat)
    return {"ok": True, "cold": [], "variants": {"inprocess": {
        "label": "in-process predict (1 row)",
        "seq": {**seq, "errors": Errors().as_dict(), "wrong": wrong, "wrong_samples": []},
        "load": {"rps": 1 / seq["mean"], "p50": None, "p99": None, "concurrency": 1, "errors": Errors().as_dict()},
        "dataframe": percentiles(df_lat)}}}


# =============================================================================
# The parent: venvs, models, servers, report. Uses rich.
# =============================================================================


def side_env() -> dict[str, str]:
    """The environment of every process: no LOOPML_*/MLFLOW_*/BENTOML_* settings or PYTHONPATH, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "MLFLOW_", "BENTOML_"))}
    env.pop("PYTHONPATH", None)
    env.update(MLFLOW_DISABLE_TELEMETRY="true", BENTOML_DO_NOT_TRACK="true", DO_NOT_TRACK="true",
               PYTHONUNBUFFERED="1")
    return env


def split_body(columns: list[str]) -> Callable[[list[float]], bytes]:
    def body(row: list[float]) -> bytes:
        return json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()

    return body


def inputs_body(row: list[float]) -> bytes:
    return json.dumps({"inputs": [row]}).encode()


def probe_all(candidates: list[tuple[str, str]], env: dict[str, str]) -> list[str | None]:
    """Run each peer's probe with each interpreter, all at once; the version printed, or None."""
    procs = [subprocess.Popen([python, "-c", PEERS[peer]["probe"]], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env) if Path(python).exists() else None
             for peer, python in candidates]
    found: list[str | None] = []
    for (peer, _), proc in zip(candidates, procs, strict=True):
        out = proc.communicate()[0].strip() if proc is not None else ""
        version = out.splitlines()[-1] if proc is not None and proc.returncode == 0 and out else None
        if version and "major" in PEERS[peer] and version.split(".")[0] != PEERS[peer]["major"]:
            version = None
        found.append(version)
    return found


def prepare(console: Any, jobs: dict[str, tuple[str, str, Path, dict[str, str]]],
            model: Path) -> dict[str, dict[str, Any]]:
    """Run serving_prepare.py for every server at once; returns each one's result, or ``{"error": ...}``."""
    import sklearn

    procs = {}
    for key, (python, kind, out, env) in jobs.items():
        result = out / "prepare.json"
        cmd = [python, str(HERE / "serving_prepare.py"), "--kind", kind, "--out", str(out), "--result", str(result),
               "--model", str(model), "--sklearn", sklearn.__version__]
        procs[key] = (subprocess.Popen(cmd, cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
                      result)
    results = {}
    with console.status("saving the model for every server"):
        for key, (proc, result) in procs.items():
            output = proc.communicate()[0].decode(errors="replace")
            if proc.returncode != 0 or not result.exists():
                tail = "\n".join(output.strip().splitlines()[-15:])
                results[key] = {"error": f"serving_prepare.py --kind {jobs[key][1]} failed (exit {proc.returncode})",
                                "log_tail": tail}
            else:
                results[key] = json.loads(result.read_text())
    return results


def fmt_rps(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}/s"


def fmt_bytes(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f} MiB"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "n/a"
    style = "green" if r >= 1 else "red"
    return f"[{style}]{r:,.2f}x[/]"


def parent_main(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        print("rich is missing: run this with the loopml venv, e.g. `.venv/bin/python bench/serving_vs_peers.py`",
              file=sys.stderr)
        return 2
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=170)
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else list(SERVERS)
    unknown = [s for s in only if s not in SERVERS]
    if unknown:
        console.print(f"[red]--only: unknown server(s) {', '.join(unknown)}; choose from {', '.join(SERVERS)}[/]")
        return 2
    try:
        import joblib
        import pandas  # noqa: F401
        from sklearn.datasets import load_breast_cancer
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:
        console.print(f"[red]this interpreter ({sys.executable}) cannot import scikit-learn and pandas ({e}); "
                      "run it with .venv/bin/python[/]")
        return 2
    mode = "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    if args.requests:
        sizes["seq"] = args.requests
    if args.duration:
        sizes["duration"] = args.duration
    venvs = Path(args.venvs).absolute()
    env = side_env()
    t_start = time.perf_counter()

    # ---- venvs: probe them all at once, set up (one at a time) only those that fail ----
    pythons: dict[str, str] = {}
    versions: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    candidates = [(peer, str(venv_python(venvs / peer))) for peer in ("fastapi", "bentoml", "mlflow") if peer in only]
    if "fastapi" in only:  # the loopml venv will do if it already has fastapi and uvicorn
        candidates.insert(0, ("fastapi", sys.executable))
    for (peer, python), found in zip(candidates, probe_all(candidates, env), strict=True):
        if found is not None and peer not in pythons:
            pythons[peer], versions[peer] = python, found
    for peer in ("fastapi", "bentoml", "mlflow"):
        if peer not in only or peer in pythons:
            continue
        found, why = ensure_peer_venv(console, peer, PEERS[peer], venvs / peer, env)
        if found is None:
            console.print(f"[yellow]{peer}: skipped: {escape(why)}[/]")
            results[peer] = {"ok": False, "reason": f"venv: {why}"}
            continue
        pythons[peer], versions[peer] = str(venv_python(venvs / peer)), found
    if "loopml" in only:
        pythons["loopml"] = sys.executable

    # ---- the model: fitted here, saved by each server's venv the way that server expects ----
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    expected = [int(v) for v in model.predict(X)]
    columns = [str(c) for c in X.columns]
    rows = X.to_numpy().tolist()
    workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-serving-"))
    _TEMP.append(workdir)
    joblib.dump(model, workdir / "model.joblib")
    project = workdir / "loopml-project"
    project.mkdir()
    envs = {key: dict(env) for key in SERVERS}
    for key, python in pythons.items():  # as in an activated venv (MLflow runs `uvicorn` from PATH)
        envs[key]["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", "")])
    envs["loopml"]["LOOPML_PROJECT_DIR"] = str(project)
    envs["bentoml"]["BENTOML_HOME"] = str(workdir / "bentoml-home")
    jobs = {}
    for key, kind in (("loopml", "loopml"), ("mlflow", "mlflow"), ("bentoml", "joblib"), ("fastapi", "joblib")):
        if key in pythons:
            out = project if key == "loopml" else workdir / key
            out.mkdir(exist_ok=True)
            jobs[key] = (pythons[key], kind, out, envs[key])
    t_prepare = time.perf_counter()
    prepared = prepare(console, jobs, workdir / "model.joblib")
    console.print(f"[dim]venvs checked in {t_prepare - t_start:.1f} s; the model saved for "
                  f"{', '.join(jobs) or 'no server'} in {time.perf_counter() - t_prepare:.1f} s[/]")
    problems: list[str] = []  # checks that failed, printed in red
    for key, info in prepared.items():
        if "error" in info:  # shown with the servers
            results[key] = {"ok": False, "reason": info["error"], "log_tail": info["log_tail"]}
            continue
        if info["predictions"] != expected:
            diff = sum(a != b for a, b in zip(info["predictions"], expected, strict=True))
            problems.append(f"{key}: its copy of the model (scikit-learn {info['sklearn']}) differs from this one "
                            f"on {diff} of {len(expected)} rows")
        if key == "loopml":
            versions["loopml"] = info.get("version", "?")

    # ---- the servers ----
    loopml_bin = args.loopml_bin or str(Path(sys.executable).with_name("loopml"))
    split = split_body(columns)
    servers: dict[str, Server] = {}
    if "loopml" in pythons and "loopml" not in results:
        servers["loopml"] = Server(
            "loopml", f"loopml {versions['loopml']}",
            [loopml_bin, "serve", f"models:/{MODEL_NAME}@{ALIAS}", "--host", HOST, "--port", "{port}", "--open"],
            envs["loopml"], [Endpoint("loopml", f"loopml {versions['loopml']}", "/invocations", split)],
            cwd=project, ready_path="/v2/health/ready")
    if "fastapi" in pythons and "fastapi" not in results:
        servers["fastapi"] = Server(
            "fastapi", "hand-written FastAPI",
            [pythons["fastapi"], "-m", "uvicorn", "serving_fastapi_app:app", "--app-dir", str(HERE), "--host", HOST,
             "--port", "{port}", "--workers", "1"],
            {**envs["fastapi"], "BENCH_MODEL_PATH": prepared["fastapi"]["model"]},
            [Endpoint("fastapi", f"hand-written FastAPI {versions['fastapi']}", "/predict", inputs_body)],
            cwd=workdir / "fastapi")
    if "bentoml" in pythons and "bentoml" not in results:
        label = f"BentoML {versions['bentoml']}"
        servers["bentoml"] = Server(
            "bentoml", label,
            [str(Path(pythons["bentoml"]).with_name("bentoml")), "serve", "serving_bentoml_service:Svc",
             "--working-dir", str(HERE), "--host", HOST, "--port", "{port}"],
            {**envs["bentoml"], "BENCH_MODEL_PATH": prepared["bentoml"]["model"]},
            [Endpoint("bentoml", label, "/predict", inputs_body),
             Endpoint("bentoml-batched", f"{label}, adaptive batching", "/predict_batched", inputs_body)],
            cwd=workdir / "bentoml")
    if "mlflow" in pythons and "mlflow" not in results:
        servers["mlflow"] = Server(
            "mlflow", f"MLflow {versions['mlflow']}",
            [str(Path(pythons["mlflow"]).with_name("mlflow")), "models", "serve", "--env-manager", "local",
             "-m", prepared["mlflow"]["model"], "-h", HOST, "-p", "{port}", "-w", "1"],
            envs["mlflow"], [Endpoint("mlflow", f"MLflow {versions['mlflow']}", "/invocations", split)],
            cwd=workdir / "mlflow")

    console.print(f"[bold]model serving: {', '.join(s for s in only)}[/] ({mode}: cold start = launch to the first "
                  f"successful prediction, median of {sizes['cold_reps']}; {sizes['seq']} sequential one-row "
                  f"requests after {sizes['seq_warmup']} untimed; {sizes['duration']:g} s at concurrency "
                  f"{CONCURRENCY} after {sizes['load_warmup']:g} s untimed; one server at a time on {HOST})")
    load_before = machine_load()
    if load_before["busy"]:
        console.print(f"[yellow]warning: the machine is busy (load average {load_before['loadavg_1m']:.1f} on "
                      f"{load_before['cpus']} CPUs); timings will be noisy[/]")

    with console.status("") as status:
        def say(msg: str) -> None:
            status.update(escape(msg))

        for key in SERVERS:
            if key not in only:
                continue
            t_server = time.perf_counter()
            if key == "inprocess":
                say("in-process predict")
                results[key] = measure_inprocess(model, X, expected, sizes)
            elif key in servers:
                srv = servers[key]
                srv.log = workdir / f"{key}.log"
                results[key] = asyncio.run(measure_server(srv, rows, expected, sizes, say))
            res = results.get(key, {})
            if res.get("ok"):
                parts = [f"cold start {fmt_time(res['cold_s'])}"] if res.get("cold") else []
                for v in res["variants"].values():
                    parts.append(f"{v['label']}: p50 {fmt_time(v['seq']['p50'])}, {fmt_rps(v['load']['rps'])}")
                console.print(f"[green]✓[/] {key}: " + "; ".join(parts)
                              + f" [dim]({time.perf_counter() - t_server:.1f} s)[/]")
            else:
                console.print(f"[bold red]✗ {key} failed: {escape(res.get('reason', '?'))}[/]")
                if res.get("log_tail"):
                    log = servers[key].log if key in servers else None
                    console.print(f"[red]  last lines of its log{f' ({log})' if log else ''}:[/]")
                    console.print(res["log_tail"], markup=False, highlight=False)
    load_after = machine_load()

    # ---- the table ----
    lm = results.get("loopml", {})
    lm_v = lm.get("variants", {}).get("loopml") if lm.get("ok") else None
    table = Table(title=f"model serving, one row per request — {mode} (c={CONCURRENCY}: {CONCURRENCY} keep-alive "
                        "connections)", title_justify="left")
    for col, kw in (("server", {}), ("cold start", {"justify": "right"}), ("p50", {"justify": "right"}),
                    ("p99", {"justify": "right"}), (f"req/s c={CONCURRENCY}", {"justify": "right"}),
                    (f"p50 c={CONCURRENCY}", {"justify": "right"}), (f"p99 c={CONCURRENCY}", {"justify": "right"}),
                    ("errors", {"justify": "right"}), ("RSS", {"justify": "right"}),
                    ("loopml req/s ÷ this", {"justify": "right"}), ("notes", {"style": "dim"})):
        table.add_column(col, **kw)
    notes = {
        "loopml": "loopml serve --open; POST /invocations dataframe_split",
        "fastapi": "1 uvicorn worker, async def, pydantic body → np.asarray → predict; "
                   '{"inputs": [[...]]}; '
                   + ("the loopml venv" if pythons.get("fastapi") == sys.executable else "bench/.venvs/fastapi"),
        "bentoml": "1 worker, sync @bentoml.api, np.ndarray in and out; {\"inputs\": [[...]]}",
        "bentoml-batched": "same server, @bentoml.api(batchable=True)",
        "mlflow": "mlflow models serve --env-manager local -w 1; POST /invocations dataframe_split",
        "inprocess": "model.predict(1-row array) in this process: the limit; req/s = 1 / mean latency, 1 thread",
    }
    rows_out: list[dict[str, Any]] = []
    for key in SERVERS:
        if key not in only:
            continue
        res = results.get(key, {})
        if not res.get("ok"):
            table.add_row(key, "[red]failed[/]", *[""] * 8, f"[red]{escape(res.get('reason', '?'))[:120]}[/]")
            rows_out.append({"key": key, "ok": False, "reason": res.get("reason")})
            continue
        for vkey, v in res["variants"].items():
            seq, conc = v["seq"], v["load"]
            errs = seq["errors"]["total"] + conc["errors"]["total"]
            ratio = (lm_v["load"]["rps"] / conc["rps"]) if lm_v and key != "loopml" and conc["rps"] else None
            note = notes.get(vkey, "")
            if vkey == "inprocess":
                note += f"; as a 1-row DataFrame: p50 {fmt_time(v['dataframe']['p50'])}"
            if key == "loopml" and "ready" in res and res["ready"]["status"] != 200:
                note += f"; GET {res['ready']['path']} answered {res['ready']['status']}"
            if seq["wrong"]:
                note = f"[red]{seq['wrong']} wrong predictions[/]; " + note
            if conc.get("client_cpu", 0) >= 0.8:
                note = f"[yellow]load client at {conc['client_cpu']:.0%} of a core: it may be the limit[/]; " + note
            table.add_row(f"[bold]{escape(v['label'])}[/]" if key == "loopml" else escape(v["label"]),
                          fmt_time(res.get("cold_s")) if res.get("cold") else "", fmt_time(seq["p50"]),
                          fmt_time(seq["p99"]), fmt_rps(conc["rps"]), fmt_time(conc["p50"]), fmt_time(conc["p99"]),
                          f"[red]{errs}[/]" if errs else "0", fmt_bytes(res.get("rss_bytes")),
                          fmt_ratio(ratio), note)
            rows_out.append({"key": vkey, "server": key, "ok": True, "label": v["label"], "cold_s": res.get("cold_s"),
                             "cold_all": res.get("cold"), "seq": seq, "load": conc, "rss_bytes": res.get("rss_bytes"),
                             "loopml_rps_ratio": ratio})
    console.print(table)

    # ---- ratios peer / loopml ----
    peer_rows = [r for r in rows_out if r.get("ok") and r["server"] in SPEEDUP_PEERS]
    if lm_v and peer_rows:
        ratios = Table(title="peer / loopml (above 1: loopml is better by that factor)", title_justify="left")
        for col in ("peer", "cold start", "p50", "p99", f"req/s c={CONCURRENCY} (loopml / peer)",
                    f"p99 c={CONCURRENCY}"):
            ratios.add_column(col, justify="left" if col == "peer" else "right")

        def div(a: float | None, b: float | None) -> float | None:
            return a / b if a and b else None

        for r in peer_rows:
            ratios.add_row(escape(r["label"]), fmt_ratio(div(r["cold_s"], lm.get("cold_s"))),
                           fmt_ratio(div(r["seq"]["p50"], lm_v["seq"]["p50"])),
                           fmt_ratio(div(r["seq"]["p99"], lm_v["seq"]["p99"])),
                           fmt_ratio(r["loopml_rps_ratio"]), fmt_ratio(div(r["load"]["p99"], lm_v["load"]["p99"])))
        console.print(ratios)
    ip = results.get("inprocess", {}).get("variants", {}).get("inprocess")
    if lm_v and ip:
        console.print(f"loopml's sequential p50 is {lm_v['seq']['p50'] / ip['seq']['p50']:,.1f}x the in-process "
                      f"predict ({fmt_time(lm_v['seq']['p50'])} vs {fmt_time(ip['seq']['p50'])})")

    # ---- errors and checks ----
    for r in rows_out:
        if not r.get("ok"):
            continue
        for phase in ("seq", "load"):
            errs = r[phase]["errors"]
            for kind, count in errs["counts"].items():
                what = "sequential" if phase == "seq" else f"concurrency {CONCURRENCY}"
                console.print(f"[red]{escape(r['label'])}: {count} failed requests ({kind}) in the {what} phase; "
                              f"first answers: {escape(' | '.join(errs['samples'].get(kind, [])))}[/]")
        if r["seq"]["wrong"]:
            problems.append(f"{r['label']}: {r['seq']['wrong']} wrong predictions, e.g. "
                            + " | ".join(r["seq"]["wrong_samples"]))
        if r["server"] == "loopml" and (r["seq"]["errors"]["total"] or r["load"]["errors"]["total"]):
            problems.append(f"{r['label']}: {r['seq']['errors']['total'] + r['load']['errors']['total']} failed "
                            "requests")
    if lm_v and lm.get("ready", {}).get("status") != 200:
        problems.append(f"loopml: GET /v2/health/ready answered {lm['ready']['status']} once serving")
    for p in problems:
        console.print(f"[bold white on red] CHECK FAILED [/] [red]{escape(p)}[/]")
    if not problems:
        console.print("[green]checks passed: every model copy predicts like this one, and every answer checked "
                      "(the sequential phase) was the right class[/]")
    console.print(f"[dim]logs and models in {workdir}{'' if args.keep else ' (deleted now; --keep keeps them)'}; "
                  f"total wall time {time.perf_counter() - t_start:.0f} s[/]")

    # ---- SPEEDUP ----
    best: dict[str, dict[str, Any]] = {}  # per peer, its best variant (BentoML with or without batching)
    for r in peer_rows:
        if r["server"] not in best or r["load"]["rps"] > best[r["server"]]["load"]["rps"]:
            best[r["server"]] = r
    if not lm_v:
        why = "loopml not run: --only" if "loopml" not in only else f"loopml failed: {lm.get('reason', '?')}"
        speedup, worst = None, why.splitlines()[0][:150]
    elif not best:
        speedup, worst = None, "no peer ran"
    else:
        w = min(best.values(), key=lambda r: r["loopml_rps_ratio"])
        speedup, worst = w["loopml_rps_ratio"], w["label"]

    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "mode": mode, "sizes": sizes, "concurrency": CONCURRENCY, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"platform": sys.platform, "load_before": load_before, "load_after": load_after},
            "versions": versions, "rows": rows_out, "results": results, "prepared": {
                k: {kk: vv for kk, vv in v.items() if kk != "predictions"} for k, v in prepared.items()},
            "failed_checks": problems, "speedup_min": {"ratio": speedup, "peer": worst},
        }, indent=2, default=str))
        console.print(f"[dim]results saved to {path}[/]")
    sys.stdout.flush()
    print(f"SPEEDUP min={'n/a' if speedup is None else f'{speedup:.2f}'} ({worst})", flush=True)
    if "loopml" in only and not lm_v:
        return 2
    return 1 if problems else 0


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark loopml serve against MLflow, BentoML and a hand-written "
                                            "FastAPI app on the same model.")
    p.add_argument("--quick", action="store_true", help="fewer requests, shorter load phases (under a minute)")
    p.add_argument("--only", metavar="NAME,NAME", help=f"run these only, from: {', '.join(SERVERS)}")
    p.add_argument("--requests", type=int, metavar="N", help="sequential requests per server (default 2000, 300 quick)")
    p.add_argument("--duration", type=float, metavar="S", help="seconds of load at concurrency 16 (default 10, 2 quick)")
    p.add_argument("--json", metavar="PATH", help="save all results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder: models, loopml project, server logs")
    p.add_argument("--loopml-bin", metavar="PATH", help="the loopml command (default: the one beside this interpreter)")
    p.add_argument("--venvs", metavar="DIR", default=str(VENVS), help="where the peer venvs live (default bench/.venvs)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return parent_main(args)
    except KeyboardInterrupt:
        print("interrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        stop_all()
        for path in _TEMP if not args.keep else []:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
