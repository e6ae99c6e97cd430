"""Fixtures of the serving tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from serving_helpers import LiveServer, start_server  # type: ignore[import-not-found]

from loopml.config import Settings
from loopml.serving.app import ServeOptions


@pytest.fixture
def serve(settings: Settings) -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def _start(**kw: Any) -> LiveServer:
        kw.setdefault("options", ServeOptions(open_mode=True, flush_interval=0.2, poll_interval=0.1))
        live = start_server(settings, **kw)
        started.append(live)
        return live

    yield _start
    for live in started:
        live.stop()
