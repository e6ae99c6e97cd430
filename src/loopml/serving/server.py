"""Running the prediction server: uvicorn (uvloop and httptools when installed) over the app."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable

from loopml.config import Settings
from loopml.errors import ConfigError
from loopml.serving.app import ServeOptions, ServingState, create_app

__all__ = ["run_server"]


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
