"""A real prediction server on 127.0.0.1 for the serving tests: uvicorn in a thread, or `loopml serve` as a process.

A module of its own (not conftest.py) so that tests can import it by a name no other test folder uses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loopml.config import Settings
from loopml.serving.app import ServeOptions
from loopml.serving.server import BackgroundServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer(BackgroundServer):
    """A real server on 127.0.0.1, uvicorn on a thread of the test process."""

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)


def start_server(settings: Settings, *, model_uri: str | None = None, deployment: str | None = None,
                 options: ServeOptions | None = None) -> LiveServer:
    return LiveServer(settings, model_uri=model_uri, deployment=deployment,
                      options=options or ServeOptions(open_mode=True, flush_interval=0.2, poll_interval=0.1))


@dataclass
class ServerProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait; returns the exit code (uvicorn re-raises SIGTERM/SIGINT after its clean
        shutdown, so those end as ``-sig``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def serve_process(project: Path, *args: str, env: dict[str, str] | None = None, wait_ready: bool = True) -> ServerProcess:
    """`loopml serve ...` as a child process (for signals and start-up behaviour)."""
    port = free_port()
    log = project / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "loopml.cli.main", "--project", str(project), "serve", *args, "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    if wait_ready:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"loopml serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"loopml serve did not get ready: {log.read_text()[-2000:]}")
            time.sleep(0.1)
    return ServerProcess(url, proc, log)
