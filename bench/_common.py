"""Helpers shared by the benchmark scripts (run as ``python bench/<script>.py``)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["ensure_peer_venv", "fmt_time", "machine_load", "venv_python"]


def machine_load() -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    try:
        one = os.getloadavg()[0]
    except (OSError, AttributeError):
        return {"cpus": cpus, "loadavg_1m": None, "busy": False}
    return {"cpus": cpus, "loadavg_1m": one, "busy": one > 0.5 * cpus}


def fmt_time(s: float | None) -> str:
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def venv_python(venv: Path) -> Path:
    """The interpreter of a virtual environment."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_peer_venv(console: Any, name: str, peer: dict[str, Any], venv: Path,
                     env: dict[str, str]) -> tuple[str | None, str]:
    """Create a peer's venv if it cannot import its library; return (version or None, why not).

    ``peer`` has ``requirements`` (pip arguments), ``probe`` (Python code printing the
    library's version as its last line) and optionally ``major`` (the required major version).
    """
    from rich.markup import escape

    py = venv_python(venv)

    def version() -> str | None:
        if not py.exists():
            return None
        out = subprocess.run([str(py), "-c", peer["probe"]], capture_output=True, text=True, env=env)
        found = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else None
        if found and "major" in peer and found.split(".")[0] != peer["major"]:
            return None
        return found

    found = version()
    if found is not None:
        return found, ""
    why = "missing" if not py.exists() else "unable to import its library"
    console.rule(f"[bold]{name} venv {venv} is {why}: setting it up")
    steps = [[str(py), "-m", "pip", "install", "--upgrade", "pip"],
             [str(py), "-m", "pip", "install", *peer["requirements"]]]
    if not py.exists():
        steps.insert(0, [sys.executable, "-m", "venv", str(venv)])
    for cmd in steps:
        console.print(f"[bold cyan]$[/] {escape(shlex.join(cmd))}", highlight=False)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            console.print("\n".join(tail), markup=False, highlight=False)
            console.rule()
            return None, f"`{shlex.join(cmd[-3:])}` failed (exit {proc.returncode}): {tail[-1] if tail else ''}"
    console.rule()
    found = version()
    if found is None:
        return None, f"{py} still cannot run: {peer['probe']}"
    return found, ""


PROGRESS_PREFIX = "@@bench "


def run_child(cmd: list[str], *, cwd: Path, out: Path, log: Path, env: dict[str, str], label: str, progress: Any,
             task: Any) -> tuple[int, float]:
    """Run one side of a benchmark as a child process, moving ``task`` on the lines it prints as
    ``PROGRESS_PREFIX {"frac": .., "desc": ..}``; stderr goes to ``log``. Returns (exit code, wall seconds);
    the caller reads ``out`` when the code is 0 and ``out`` exists."""
    import json
    import subprocess
    import time

    t0 = time.perf_counter()
    with log.open("w") as errf:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=errf, text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    ev = json.loads(line[len(PROGRESS_PREFIX):])
                    progress.update(task, completed=ev["frac"] * 1000, description=f"{label} {ev['desc']}")
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    wall = time.perf_counter() - t0
    if rc == 0 and out.exists():
        progress.update(task, completed=1000, description=f"{label} done in {wall:.1f}s")
    return rc, wall


def print_failure(console: Any, what: str, rc: int, log: Path) -> None:
    """Say that a side failed, with the last lines of its stderr log."""
    tail = log.read_text(errors="replace").splitlines()[-40:]
    console.print(f"[bold red]{what} failed (exit {rc}); last lines of {log}:[/]")
    console.print("\n".join(tail), markup=False, highlight=False)


def make_console() -> Any:
    """A Rich console; 180 columns wide when the output is not a terminal (a log file, CI)."""
    import os

    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=180)
    return console
