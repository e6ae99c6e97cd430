"""Buffered metric writes.

``log_metric`` appends a tuple to an in-memory list, which costs about a
microsecond. The buffer is written in one transaction when it reaches
``max_size`` points, every ``interval`` seconds from a daemon thread, when a
run ends, and at interpreter exit. A failed write keeps the points and
retries on the next flush, so a transient database error loses nothing. What
a hard kill (SIGKILL, power loss) can lose is bounded by the interval.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence

from loopml.tracking._sql import MetricRow

logger = logging.getLogger(__name__)

__all__ = ["MetricBuffer"]

_live: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()


class MetricBuffer:
    """Collects metric points and writes them in batches through ``write``."""

    def __init__(self, write: Callable[[Sequence[MetricRow]], None], *, interval: float, max_size: int) -> None:
        self._write = write
        self.interval = interval
        self.max_size = max_size
        self._points: list[MetricRow] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        _live.add(self)

    def add(self, row: MetricRow) -> None:
        with self._lock:
            self._points.append(row)
            n = len(self._points)
        if self._thread is None:
            self._start()
        if n >= self.max_size:
            self.flush()

    def extend(self, rows: Sequence[MetricRow]) -> None:
        with self._lock:
            self._points.extend(rows)
            n = len(self._points)
        if self._thread is None:
            self._start()
        if n >= self.max_size:
            self.flush()

    def pending(self, run_id: str | None = None) -> int:
        with self._lock:
            if run_id is None:
                return len(self._points)
            return sum(1 for p in self._points if p[0] == run_id)

    def flush(self, write: Callable[[Sequence[MetricRow]], None] | None = None) -> None:
        """Write every buffered point now.

        Args:
            write: write the batch with this instead (it may do more in the same
                transaction, e.g. end a run); called even when the buffer is empty.

        Raises:
            StoreError: the write failed; the points stay buffered for a retry.
        """
        with self._flush_lock:
            with self._lock:
                batch, self._points = self._points, []
            if not batch and write is None:
                return
            try:
                (write or self._write)(batch)
            except BaseException:
                with self._lock:
                    self._points[:0] = batch
                raise

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._loop, name="loopml-metric-flush", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            if self._closed:
                return
            try:
                self.flush()
            except Exception as e:  # keep the thread alive; the points stay buffered
                logger.warning("metric flush failed, %d points kept for retry: %s", self.pending(), e)

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._closed = True
        self._wake.set()
        try:
            self.flush()
        except Exception as e:
            logger.error("could not write %d buffered metric points at close: %s", self.pending(), e)

    def _after_fork(self) -> None:
        # the child must not write the parent's points, nor rely on its thread
        self._points = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None


def _flush_all_at_exit() -> None:
    for buf in list(_live):
        buf.close()


def _reset_after_fork() -> None:
    for buf in list(_live):
        buf._after_fork()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
