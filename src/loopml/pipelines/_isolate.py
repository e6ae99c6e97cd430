"""Running one step attempt in a child process, so a timeout can stop it."""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable
from typing import Any

import cloudpickle

from loopml.errors import LoopmlError

__all__ = ["AttemptFailed", "StepTimeoutError", "call_with_timeout"]


class StepTimeoutError(LoopmlError):
    code = "STEP_TIMEOUT"


class AttemptFailed(Exception):
    """A step attempt raised: the exception, its traceback and the output the attempt printed."""

    def __init__(self, error: BaseException, tb: str, logs: str) -> None:
        super().__init__(str(error))
        self.error, self.tb, self.logs = error, tb, logs


def _child(conn: Any, payload: bytes) -> None:
    fn, kwargs = cloudpickle.loads(payload)
    try:
        conn.send_bytes(cloudpickle.dumps(("ok", fn(**kwargs))))
    except BaseException as e:  # sent to the parent, which re-raises
        conn.send_bytes(cloudpickle.dumps(("error", (type(e).__name__, str(e), traceback.format_exc()))))
    finally:
        conn.close()


def call_with_timeout(fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float | None, *, step: str) -> Any:
    """``fn(**kwargs)`` in a forked child process, killed after ``timeout`` seconds (None: no limit).

    Raises:
        StepTimeoutError: the attempt took longer than ``timeout``.
        RuntimeError: the function raised in the child (its traceback is in the message).
    """
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, cloudpickle.dumps((fn, kwargs))), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):  # None waits until the child answers or exits
            raise StepTimeoutError(f"step {step!r} did not finish within its timeout of {timeout:g} s; it was stopped",
                                   step=step, timeout=timeout)
        status, value = cloudpickle.loads(parent.recv_bytes())
    except EOFError:
        proc.join(5)  # reap it, so the exit code is known
        raise RuntimeError(f"step {step!r}: its process exited without a result (exit code {proc.exitcode})") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
    if status == "error":
        name, message, tb = value
        raise RuntimeError(f"{name}: {message}\n--- traceback in the step's process ---\n{tb}")
    return value
