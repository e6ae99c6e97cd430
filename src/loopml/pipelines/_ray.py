"""The Ray executor: step attempts and tuning trials as Ray tasks.

The driver sends a step's task the step function, its parameters and
*references* to its inputs; the task loads the inputs from the artifact store,
runs the step, stores its outputs there and answers with their references and
its captured output. So a step's data never passes through the driver's
memory, and the driver can be a laptop while the steps run on a cluster that
shares the artifact store (S3) and the metadata database (PostgreSQL).

Project modules are pickled by value, so the cluster's workers run the
project's code as it is in the driver, without it being installed there.
Ray is started on the first use (``ray.init()`` on this machine, or
``ray_address`` from the settings); a Ray the caller initialised is used as is.
"""

from __future__ import annotations

import contextlib
import io
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import cloudpickle

from loopml.config import Settings, use_settings
from loopml.errors import InvalidInputError
from loopml.pipelines import _outputs
from loopml.pipelines._codehash import project_modules
from loopml.pipelines._isolate import AttemptFailed, StepTimeoutError
from loopml.pipelines._step import Step

__all__ = ["call", "run_attempt"]

_LOG_LIMIT = 64_000
_lock = threading.Lock()
_remote: Any = None


def _connect(settings: Settings) -> Any:
    """Ray, initialised (once per process), and the remote function made."""
    global _remote
    from loopml.core.ray import connect

    ray = connect(settings)
    with _lock:
        if _remote is None:
            _remote = ray.remote(_run_remote)
    return ray


def _run_remote(payload: bytes) -> tuple[str, Any]:
    """On a Ray worker: ``("ok", result)`` or ``("error", (exception, traceback, captured output))``."""
    fn, args, settings = cloudpickle.loads(payload)
    try:
        with use_settings(settings):
            return "ok", fn(*args)
    except AttemptFailed as f:
        e, tb, logs = f.error, f.tb, f.logs
    except Exception as exc:
        e, tb, logs = exc, traceback.format_exc(), ""
    try:
        error: BaseException = cloudpickle.loads(cloudpickle.dumps(e))
    except Exception:
        error = RuntimeError(f"{type(e).__name__}: {e}")
    return "error", (error, tb, logs)


def _payload(fn: Callable[..., Any], args: tuple[Any, ...], settings: Settings) -> bytes:
    modules = project_modules(settings.project_dir)
    for m in modules:
        cloudpickle.register_pickle_by_value(m)
    try:
        data: bytes = cloudpickle.dumps((fn, args, settings))
        return data
    finally:
        for m in modules:
            cloudpickle.unregister_pickle_by_value(m)


def _options(resources: Mapping[str, float]) -> dict[str, Any]:
    options: dict[str, Any] = {k: v for k, v in resources.items() if k in ("num_cpus", "num_gpus", "memory")}
    custom = {k: v for k, v in resources.items() if k not in options}
    if custom:
        options["resources"] = custom
    return options


def call(fn: Callable[..., Any], args: tuple[Any, ...], settings: Settings, *, what: str,
         timeout: float | None = None, resources: Mapping[str, float] | None = None) -> Any:
    """``fn(*args)`` as a Ray task (with ``settings`` as the task's project); returns its result.

    Args:
        what: names the work in errors and in Ray's task list, e.g. ``"step 'train'"``.

    Raises:
        AttemptFailed: ``fn`` raised (its exception, the worker's traceback, the captured output).
        StepTimeoutError: the task outlived ``timeout`` seconds; it was cancelled.
        InvalidInputError: ``fn`` or its arguments do not pickle, or Ray is not installed.
    """
    ray = _connect(settings)
    try:
        payload = _payload(fn, args, settings)
    except Exception as e:
        raise InvalidInputError(f"{what} cannot be sent to Ray: its function or parameters do not pickle "
                                f"({type(e).__name__}: {e})") from None
    task = _remote.options(name=f"loopml {what}", max_retries=0, **_options(resources or {})).remote(payload)
    try:
        status, value = ray.get(task, timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        ray.cancel(task, force=True)
        raise StepTimeoutError(f"{what} did not finish within its timeout of {timeout:g} s; its Ray task was "
                               "cancelled", timeout=timeout) from None
    except ray.exceptions.RayError as e:  # the worker died, ran out of memory, was cancelled...
        raise RuntimeError(f"{what}: its Ray task failed: {type(e).__name__}: {e}") from None
    if status == "error":
        raise AttemptFailed(*value)
    return value


def _step_attempt(step: Step, inputs: Mapping[str, _outputs.OutputRef], params: Mapping[str, Any],
                  settings: Settings) -> tuple[dict[str, _outputs.OutputRef], str]:
    from loopml.pipelines.pipeline import _split
    from loopml.storage.blob import open_blob_store

    blobs = open_blob_store(settings.artifact_root, s3_endpoint_url=settings.s3_endpoint_url)
    buf = io.StringIO()
    try:
        kwargs = {**params, **{name: _outputs.load(ref, blobs) for name, ref in inputs.items()}}
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            value = step.fn(**kwargs)
        refs = {o: _outputs.dump(v, blobs, step=step.name, name=o) for o, v in _split(step, value).items()}
    except Exception as e:
        raise AttemptFailed(e, traceback.format_exc(), buf.getvalue()[-_LOG_LIMIT:]) from None
    return refs, buf.getvalue()[-_LOG_LIMIT:]


def run_attempt(step: Step, inputs: Mapping[str, _outputs.OutputRef], params: Mapping[str, Any],
                settings: Settings) -> tuple[dict[str, _outputs.OutputRef], str]:
    """One attempt of ``step`` as a Ray task; returns its output references and captured output.

    Raises:
        AttemptFailed: the step raised.
        StepTimeoutError: the attempt outlived the step's timeout.
    """
    result: tuple[dict[str, _outputs.OutputRef], str] = call(
        _step_attempt, (step, dict(inputs), dict(params), settings), settings, what=f"step {step.name!r}",
        timeout=step.timeout, resources=step.resources)
    return result
