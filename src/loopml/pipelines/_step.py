"""``@step``: a function that is a unit of a pipeline.

A step's inputs are its parameters. A parameter named like another step's
output receives that output; any other parameter is a pipeline parameter
(given to ``Pipeline.run`` or defaulted in the signature). A step's output is
named after the step (or ``outputs=("a", "b")`` for a function returning a
tuple). A parameter called ``seed`` receives a seed derived from the run.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from loopml.errors import InvalidInputError

__all__ = ["Step", "step"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$")
SEED_PARAM = "seed"


@dataclass(frozen=True)
class Step:
    """A declared step. Calling it calls the function (handy in tests)."""

    fn: Callable[..., Any]
    name: str
    outputs: tuple[str, ...]
    cache: bool = True
    retries: int = 0
    retry_backoff: float = 1.0
    timeout: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    inputs: tuple[str, ...] = field(default=())
    defaults: dict[str, Any] = field(default_factory=dict)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        return self.fn


def _make(fn: Callable[..., Any], name: str | None, outputs: Sequence[str] | str | None, cache: bool, retries: int,
          retry_backoff: float, timeout: float | None, resources: Mapping[str, float] | None) -> Step:
    if not callable(fn):
        raise InvalidInputError(f"@step decorates a function, got {type(fn).__name__}")
    step_name = name or getattr(fn, "__name__", None) or ""
    if not _NAME.match(step_name):
        raise InvalidInputError(f"step name {step_name!r} is invalid: use letters, digits, '_' or '-', starting with a letter")
    outs = (outputs,) if isinstance(outputs, str) else tuple(outputs or (step_name,))
    for o in outs:
        if not o.isidentifier():
            raise InvalidInputError(f"step {step_name!r}: output name {o!r} must be a Python identifier")
    if len(set(outs)) != len(outs):
        raise InvalidInputError(f"step {step_name!r}: output names {list(outs)} repeat")
    if retries < 0 or retry_backoff < 0 or (timeout is not None and timeout <= 0):
        raise InvalidInputError(f"step {step_name!r}: retries and retry_backoff must be >= 0 and timeout > 0")
    for k, v in (resources or {}).items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
            raise InvalidInputError(f"step {step_name!r}: resources must map names to numbers >= 0, got {k!r}: {v!r}")
    sig = inspect.signature(fn)
    inputs, defaults = [], {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InvalidInputError(f"step {step_name!r}: *args/**kwargs are not supported; name every input")
        inputs.append(p.name)
        if p.default is not p.empty:
            defaults[p.name] = p.default
    st = Step(fn=fn, name=step_name, outputs=outs, cache=cache, retries=retries, retry_backoff=retry_backoff,
              timeout=timeout, resources=dict(resources or {}), inputs=tuple(inputs), defaults=defaults)
    return st


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(*, name: str | None = None, outputs: Sequence[str] | str | None = None, cache: bool = True,
         retries: int = 0, retry_backoff: float = 1.0, timeout: float | None = None,
         resources: Mapping[str, float] | None = None) -> Callable[[Callable[..., Any]], Step]: ...


def step(fn: Callable[..., Any] | None = None, /, *, name: str | None = None, outputs: Sequence[str] | str | None = None,
         cache: bool = True, retries: int = 0, retry_backoff: float = 1.0,
         timeout: float | None = None, resources: Mapping[str, float] | None = None,
         ) -> Step | Callable[[Callable[..., Any]], Step]:
    """Declare a pipeline step.

    Args:
        name: step name (default: the function's name).
        outputs: output name(s); several names mean the function returns a tuple.
        cache: reuse an earlier result when code, inputs and parameters are unchanged.
        retries: extra attempts after a failure, waiting ``retry_backoff * 2**attempt`` seconds.
        timeout: seconds before an attempt is stopped (the step then runs in a child process).
        resources: what one attempt needs on the Ray executor, e.g. ``{"num_cpus": 2, "num_gpus": 1}``
            (``num_cpus``, ``num_gpus``, ``memory`` in bytes, or a custom Ray resource); other executors ignore it.
    """
    if fn is not None:
        return _make(fn, name, outputs, cache, retries, retry_backoff, timeout, resources)
    return lambda f: _make(f, name, outputs, cache, retries, retry_backoff, timeout, resources)
