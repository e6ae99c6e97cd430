"""Running the prediction server: uvicorn (uvloop and httptools when installed) over the app."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable

from loopml.config import Settings
from loopml.errors import ConfigError
from loopml.serving.app import ServeOptions, ServingState, create_app

__all__ = ["BackgroundServer", "run_server"]


def _loop_and_http() -> tuple[str, str]:
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    return loop, http


def run_server(settings: Settings, *, model_uri: str | None = None, deployment: str | None = None,
               host: str = "127.0.0.1", port: int = 8080, options: ServeOptions | None = None,
               announce: Callable[[ServingState, str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; the prediction log is flushed on the way out.

    The model(s) are loaded before the port is bound, so a wrong URI or deployment
    fails here with its error instead of as a server that never gets ready.

    Raises:
        ConfigError: not in open mode and no API key exists.
        NotFoundError: the model, version, alias or deployment does not exist.
    """
    import uvicorn

    options = options or ServeOptions()
    state = ServingState(settings, deployment=deployment, model_uri=model_uri, options=options)
    if not options.open_mode:
        from loopml.serving.auth import get_keys

        if not get_keys(settings).any_keys():
            raise ConfigError(
                "no API key exists, so nobody could call this server; create one with "
                "`loopml keys create NAME --role predict`, or pass --open to serve without keys (local use only)"
            )
    state.load()
    loop, http = _loop_and_http()
    url = f"http://{host}:{port}"
    if announce is not None:
        announce(state, url)
    logging.getLogger("loopml").setLevel(logging.INFO)
    config = uvicorn.Config(create_app(state), host=host, port=port, loop=loop, http=http, log_level="warning",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=15, server_header=False)
    uvicorn.Server(config).run()


class BackgroundServer:
    """A prediction server running on a thread of this process (notebooks, demos, tests).

    Use as a context manager, or call :meth:`stop`. ``url`` is where it listens;
    ``state`` is its :class:`ServingState` (router, prediction log, metrics).
    """

    def __init__(self, settings: Settings, *, model_uri: str | None = None, deployment: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, options: ServeOptions | None = None) -> None:
        import asyncio
        import socket
        import threading
        import time

        import uvicorn

        self.state = ServingState(settings, deployment=deployment, model_uri=model_uri,
                                  options=options or ServeOptions(open_mode=True))
        self.state.load()
        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
        self.url = f"http://{host}:{port}"
        _, http = _loop_and_http()  # the loop is asyncio's: this thread runs its own
        config = uvicorn.Config(create_app(self.state), host=host, port=port, log_level="warning", access_log=False,
                                lifespan="on", loop="asyncio", http=http, server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), name="loopml-serve",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the prediction server on {self.url} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving; the prediction log is written out first."""
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
