"""A real prediction server on 127.0.0.1 for the serving tests: uvicorn in a thread, or `loopml serve` as a process.

A module of its own (not conftest.py) so that tests can import it by a name no other test folder uses."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loopml.config import Settings
from loopml.serving.app import ServeOptions, ServingState, create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    state: ServingState
    server: Any
    thread: threading.Thread

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(settings: Settings, *, model_uri: str | None = None, deployment: str | None = None,
                 options: ServeOptions | None = None) -> LiveServer:
    """uvicorn serving the app in a background thread (its own event loop), ready when this returns."""
    import uvicorn

    state = ServingState(settings, model_uri=model_uri, deployment=deployment,
                         options=options or ServeOptions(open_mode=True, flush_interval=0.2, poll_interval=0.1))
    state.load()
    port = free_port()
    config = uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            lifespan="on", loop="asyncio", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", state, server, thread)


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
