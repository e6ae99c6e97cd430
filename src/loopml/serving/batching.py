"""Adaptive micro-batching: concurrent requests to one model share one ``predict`` call.

A request hands its checked input to the model's :class:`MicroBatcher` and
awaits its share of the predictions. The batcher runs a batch as soon as the
event loop has nothing else ready, so an idle server answers at once (no
wait window is paid when there is nothing to wait for); under load, the
requests that arrived while the previous batch ran form the next one. The
batch grows up to ``max_batch_rows``; ``max_wait_ms`` (default 0) lets a batch
wait that long for requests that are already being read, trading latency for
larger batches.

Fast models (a batch in under a millisecond, typical of scikit-learn) run on
the event loop itself, which avoids a thread hand-off per batch; slower ones
run on one worker thread per model, so the loop keeps accepting requests.
If a batch fails, its requests are retried one by one, so one bad request
cannot fail the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.serving.payload import Input
from loopml.serving.predictor import ServedModel

__all__ = ["BatchConfig", "MicroBatcher"]

_INLINE_BELOW_S = 0.001


@dataclass(frozen=True)
class BatchConfig:
    """How requests are gathered.

    Attributes:
        max_batch_rows: rows per ``predict`` call at most (a single larger request still runs alone).
        max_wait_ms: how long a batch may wait for more requests that are already in flight (0: never wait).
        enabled: False runs every request on its own.
    """

    max_batch_rows: int = 256
    max_wait_ms: float = 0.0
    enabled: bool = True


@dataclass
class _Pending:
    x: Input
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Gathers requests for one :class:`ServedModel` into batches.

    ``on_batch(rows, requests, seconds)`` is told about every ``predict`` call (for metrics).
    """

    def __init__(self, model: ServedModel, config: BatchConfig,
                 on_batch: Callable[[int, int, float], None] | None = None,
                 in_flight: Callable[[], int] | None = None) -> None:
        self.model = model
        self.config = config
        self._on_batch = on_batch
        self._in_flight = in_flight
        self._queue: list[_Pending] = []
        self._scheduled = False
        self._running = False
        self._ewma_s = 0.0
        self._pool: ThreadPoolExecutor | None = None

    async def predict(self, x: Input) -> np.ndarray:
        """The predictions for ``x``, computed in a batch with other requests."""
        loop = asyncio.get_running_loop()
        if not self.config.enabled:
            return await self._run_alone(x)
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append(_Pending(x, fut))
        if not self._scheduled and not self._running:
            self._scheduled = True
            loop.call_soon(self._start)
        return await fut

    async def _run_alone(self, x: Input) -> np.ndarray:
        started = time.perf_counter()
        if self._ewma_s < _INLINE_BELOW_S:
            out = self.model.predict(x)
        else:
            out = await asyncio.get_running_loop().run_in_executor(self._executor(), self.model.predict, x)
        self._record(x.n, 1, time.perf_counter() - started)
        return out

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"loopml-predict-{self.model.name}")
        return self._pool

    def _record(self, rows: int, requests: int, seconds: float) -> None:
        self._ewma_s = seconds if self._ewma_s == 0 else 0.8 * self._ewma_s + 0.2 * seconds
        if self._on_batch is not None:
            self._on_batch(rows, requests, seconds)

    def _start(self) -> None:
        self._scheduled = False
        if self._running or not self._queue:
            return
        wait = self.config.max_wait_ms / 1000.0
        if wait > 0 and self._in_flight is not None:
            rows = sum(p.x.n for p in self._queue)
            oldest = self._queue[0].enqueued
            waiting_for_more = self._in_flight() > len(self._queue)
            remaining = wait - (time.perf_counter() - oldest)
            if rows < self.config.max_batch_rows and waiting_for_more and remaining > 0:
                self._scheduled = True
                asyncio.get_running_loop().call_later(min(remaining, 0.0005), self._start)
                return
        self._running = True
        asyncio.get_running_loop().create_task(self._drain())

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            nxt = self._queue[0]
            if batch and rows + nxt.x.n > self.config.max_batch_rows:
                break
            batch.append(self._queue.pop(0))
            rows += nxt.x.n
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                await self._run(batch)
                if self._queue:
                    await asyncio.sleep(0)  # let requests read meanwhile join the next batch
        finally:
            self._running = False
            if self._queue and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._start)

    async def _run(self, batch: list[_Pending]) -> None:
        parts = [p.x for p in batch]
        started = time.perf_counter()
        try:
            if self._ewma_s < _INLINE_BELOW_S:
                outs = self.model.predict_many(parts)
            else:
                outs = await asyncio.get_running_loop().run_in_executor(self._executor(), self.model.predict_many,
                                                                        parts)
        except Exception as e:
            if len(batch) == 1:
                _settle(batch[0].future, error=e)
                return
            for p in batch:  # one request's bad data must not fail the others
                try:
                    _settle(p.future, value=self.model.predict(p.x))
                except Exception as each:
                    _settle(p.future, error=each)
            return
        self._record(sum(p.n for p in parts), len(batch), time.perf_counter() - started)
        for p, out in zip(batch, outs, strict=True):
            _settle(p.future, value=out)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def _settle(fut: asyncio.Future[Any], *, value: Any = None, error: BaseException | None = None) -> None:
    if fut.done():  # the client went away and the request was cancelled
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)
