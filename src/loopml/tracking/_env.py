"""What a run captures about where it ran: git state, Python, packages, host.

Computed once per process (git is asked at most once per working folder),
so starting a run costs no subprocess after the first.
"""

from __future__ import annotations

import functools
import getpass
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

__all__ = ["git_state", "system_info", "user_name"]

#: distributions whose versions are recorded when they are importable
_TRACKED = ("loopml", "numpy", "pandas", "pyarrow", "scikit-learn", "torch", "scipy", "sqlalchemy")


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


_GIT_TTL_S = 5.0
_git_cache: dict[str, tuple[float, tuple[str | None, bool | None]]] = {}


def git_state(cwd: str | None = None) -> tuple[str | None, bool | None]:
    """(commit sha, dirty flag) of the git work tree at ``cwd``; (None, None) outside git.

    Remembered for a few seconds per folder: a burst of runs costs one ``git``
    call, while a long-lived process (a notebook) still sees new commits.
    """
    cwd = cwd or os.getcwd()
    now = time.monotonic()
    hit = _git_cache.get(cwd)
    if hit is not None and now - hit[0] < _GIT_TTL_S:
        return hit[1]
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        state: tuple[str | None, bool | None] = (None, None)
    else:
        status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
        state = (commit.strip(), bool(status and status.strip()))
    _git_cache[cwd] = (now, state)
    return state


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in _TRACKED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@functools.lru_cache(maxsize=1)
def _static() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "executable": sys.executable,
        "packages": _packages(),
    }


def system_info() -> dict[str, Any]:
    """Python, platform, package versions and the entry point of this process."""
    info = dict(_static())
    info["entrypoint"] = " ".join(sys.argv[:1]) if sys.argv and sys.argv[0] else None
    info["pid"] = os.getpid()
    return info


@functools.lru_cache(maxsize=1)
def host_name() -> str:
    return socket.gethostname()


def user_name(configured: str | None = None) -> str | None:
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
