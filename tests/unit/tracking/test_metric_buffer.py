"""MetricBuffer: batching, size-triggered flushes and retry after a failed write."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from loopml.errors import StoreError
from loopml.tracking._buffer import MetricBuffer
from loopml.tracking._sql import MetricRow


class Sink:
    """A writer that records batches and can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[list[MetricRow]] = []
        self.fail = False
        self.written = threading.Event()

    def __call__(self, rows: Sequence[MetricRow]) -> None:
        if self.fail:
            raise StoreError("database is down")
        self.batches.append(list(rows))
        self.written.set()

    @property
    def rows(self) -> list[MetricRow]:
        return [r for b in self.batches for r in b]


def _row(i: int, run: str = "r") -> MetricRow:
    return (run, "m", float(i), None, i, 1000 + i)


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def buffer(sink: Sink):  # type: ignore[no-untyped-def]
    # a long interval: only explicit and size-triggered flushes happen during a test
    buf = MetricBuffer(sink, interval=3600, max_size=10)
    yield buf
    buf.close()


def test_points_wait_for_a_flush(buffer: MetricBuffer, sink: Sink) -> None:
    buffer.add(_row(0))
    buffer.extend([_row(1), _row(2, run="other")])
    assert sink.batches == []
    assert buffer.pending() == 3
    assert buffer.pending("r") == 2
    buffer.flush()
    assert sink.batches == [[_row(0), _row(1), _row(2, run="other")]]
    assert buffer.pending() == 0


def test_flush_of_nothing_writes_nothing(buffer: MetricBuffer, sink: Sink) -> None:
    buffer.flush()
    assert sink.batches == []


def test_reaching_max_size_flushes(buffer: MetricBuffer, sink: Sink) -> None:
    for i in range(9):
        buffer.add(_row(i))
    assert sink.batches == []
    buffer.add(_row(9))
    assert sink.rows == [_row(i) for i in range(10)]
    buffer.extend([_row(i) for i in range(10, 25)])
    assert sink.rows == [_row(i) for i in range(25)]


def test_failed_write_keeps_the_points_in_order(buffer: MetricBuffer, sink: Sink) -> None:
    buffer.extend([_row(0), _row(1)])
    sink.fail = True
    with pytest.raises(StoreError):
        buffer.flush()
    assert buffer.pending() == 2
    buffer.add(_row(2))
    sink.fail = False
    buffer.flush()
    assert sink.rows == [_row(0), _row(1), _row(2)]


def test_background_thread_flushes(sink: Sink) -> None:
    buf = MetricBuffer(sink, interval=0.01, max_size=1000)
    try:
        buf.add(_row(0))
        assert sink.written.wait(30), "the background thread never flushed"
        assert sink.rows == [_row(0)]
    finally:
        buf.close()


def test_close_flushes_and_survives_a_failure(sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    buf = MetricBuffer(sink, interval=3600, max_size=1000)
    buf.add(_row(0))
    buf.close()
    assert sink.rows == [_row(0)]

    failing = Sink()
    failing.fail = True
    buf2 = MetricBuffer(failing, interval=3600, max_size=1000)
    buf2.add(_row(1))
    buf2.close()  # must not raise
    assert buf2.pending() == 1
    assert "could not write 1 buffered metric points" in caplog.text
