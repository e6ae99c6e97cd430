"""Pipelines: steps wired by name into a DAG, run with caching, records and resume.

``Pipeline("train", steps=[load, clean, train], params={"month": 1})`` infers the
DAG from names: a step parameter named like another step's output is an edge;
every other parameter must be a pipeline parameter (``params``) or have a
default. Cycles, missing inputs and outputs produced twice are refused here,
when the pipeline is defined, naming the steps involved.

Running records the run and every step (input hashes, parameters, code hash,
outputs, status, duration, captured output, error with traceback) in the
metadata store. A step whose cache key — its code hash (which covers the
project helpers it calls), input hashes and parameters — matches an earlier
successful execution whose outputs still exist is not run again ("cached");
otherwise the record says why (``cache_miss``). A run that died (even by
``kill -9``) is continued by :func:`resume`: finished steps are kept, the rest run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import random
import time
import traceback
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from loopml.config import Settings, use_settings
from loopml.core import new_id, now_ms
from loopml.errors import ConflictError, InvalidInputError
from loopml.pipelines import _outputs
from loopml.pipelines._codehash import code_hash
from loopml.pipelines._isolate import AttemptFailed
from loopml.pipelines._step import SEED_PARAM, Step
from loopml.pipelines.models import PipelineRun, StepRun
from loopml.storage import get_service
from loopml.storage.base import Backend

logger = logging.getLogger(__name__)

__all__ = ["PIPELINES", "Pipeline", "PipelineService", "get_pipelines", "resume"]

#: pipelines defined in this process, by name (discovery fills it by importing project modules)
PIPELINES: dict[str, Pipeline] = {}
_LOG_LIMIT = 64_000
#: how steps run: in this process, in a forked child each, or as Ray tasks
EXECUTORS = ("local", "processes", "ray")


class Pipeline:
    """A named DAG of steps with parameters.

    Raises:
        InvalidInputError: a cycle, a missing input, an output produced by two steps, or a
            duplicate step name — the message names the steps.
    """

    def __init__(self, name: str, steps: Iterable[Step], *, params: Mapping[str, Any] | None = None,
                 description: str | None = None) -> None:
        self.name = name
        self.description = description
        self.steps: dict[str, Step] = {}
        for s in steps:
            if not isinstance(s, Step):
                raise InvalidInputError(f"pipeline {name!r}: {s!r} is not a step; decorate the function with @loopml.step")
            if s.name in self.steps:
                raise InvalidInputError(f"pipeline {name!r}: two steps are called {s.name!r}")
            self.steps[s.name] = s
        self.params = dict(params or {})
        self.producer: dict[str, str] = {}
        for s in self.steps.values():
            for out in s.outputs:
                if out in self.producer:
                    raise InvalidInputError(
                        f"pipeline {name!r}: output {out!r} is produced by both {self.producer[out]!r} and {s.name!r}"
                    )
                self.producer[out] = s.name
        self.upstream: dict[str, set[str]] = {}
        for s in self.steps.values():
            ups = set()
            for inp in s.inputs:
                if inp in self.producer:
                    ups.add(self.producer[inp])
                elif inp not in self.params and inp not in s.defaults and inp != SEED_PARAM:
                    raise InvalidInputError(
                        f"pipeline {name!r}: step {s.name!r} needs input {inp!r}, which no step produces and which is "
                        f"not a pipeline parameter; add a step with that output, or params={{{inp!r}: ...}}",
                        step=s.name, input=inp,
                    )
            self.upstream[s.name] = ups
        self.order = self._toposort()
        PIPELINES[name] = self

    def _toposort(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(n: str, path: list[str]) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise InvalidInputError(f"pipeline {self.name!r} has a cycle: {' -> '.join(cycle)}", cycle=cycle)
            state[n] = 1
            for u in sorted(self.upstream[n]):
                visit(u, [*path, n])
            state[n] = 2
            order.append(n)

        for n in self.steps:
            visit(n, [])
        return order

    def run(self, *, settings: Settings | None = None, cache: bool = True, workers: int = 1,
            executor: str = "local", seed: int | None = None, trigger: str | None = None, progress: Any = None,
            run_id: str | None = None, **params: Any) -> PipelineRun:
        """Run the pipeline with ``params`` overriding its defaults; returns the recorded run.

        Args:
            cache: reuse earlier results of unchanged steps (per-step ``cache=False`` also opts out).
            workers: steps that do not depend on each other run in parallel, this many at a time.
            executor: ``"local"`` runs steps in this process (threads for parallel branches);
                ``"processes"`` runs each step attempt in a forked child process (a crash or a
                memory leak in a step cannot take the run down; outputs pass through the store);
                ``"ray"`` runs each step attempt as a Ray task (on a local Ray, or the cluster
                at ``ray_address``); inputs and outputs pass through the artifact store, and
                ``@step(resources=...)`` says what a task needs.
            seed: the run's seed (default: random); steps with a ``seed`` parameter get one derived from it.
            trigger: what started the run (recorded).
            progress: called as ``progress(step_name, status)`` when a step changes state.
            run_id: the run's id (default: new); a second run with the same id is refused, which
                makes starting a run idempotent (the scheduler derives it from the firing).

        Raises:
            InvalidInputError: an unknown parameter.
        """
        unknown = sorted(set(params) - set(self.params) - {i for s in self.steps.values() for i in s.inputs})
        if unknown:
            raise InvalidInputError(f"pipeline {self.name!r} has no parameter(s) {unknown}; known: {sorted(self.params)}")
        return get_pipelines(settings).run(self, {**self.params, **params}, cache=cache, workers=workers, seed=seed,
                                           trigger=trigger, progress=progress, run_id=run_id, executor=executor)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={self.order})"


def _cache_key(step: str, code: str, input_hashes: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps([step, code, sorted(input_hashes.items())]).encode()).hexdigest()


def _miss_reason(prev: StepRun | None, code: str, input_hashes: Mapping[str, str]) -> str:
    if prev is None:
        return "no earlier successful execution of this step"
    why = []
    if prev.code_hash != code:
        why.append("its code (or a helper it calls) changed")
    for k in sorted(set(input_hashes) | set(prev.input_hashes)):
        if prev.input_hashes.get(k) != input_hashes.get(k):
            why.append(f"input {k!r} changed")
    return "; ".join(why) or "the earlier outputs are no longer stored"


def _step_seed(run_seed: int, step: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{run_seed}:{step}".encode()).digest()[:4], "big")


@dataclass
class _Result:
    refs: dict[str, _outputs.OutputRef]
    values: dict[str, Any]


class PipelineService:
    """Runs pipelines and reads their records, over one :class:`~loopml.storage.Backend`."""

    def __init__(self, backend: Backend) -> None:
        from loopml.pipelines._sql import SqlPipelineRepository

        self.backend = backend
        self.repo = SqlPipelineRepository(backend.metadata)

    # -- running -----------------------------------------------------------------

    def run(self, pipe: Pipeline, params: dict[str, Any], *, cache: bool = True, workers: int = 1,
            seed: int | None = None, trigger: str | None = None, progress: Any = None,
            resume_run: PipelineRun | None = None, run_id: str | None = None,
            executor: str = "local") -> PipelineRun:
        from loopml.tracking._env import git_state

        if executor not in EXECUTORS:
            raise InvalidInputError(f"executor {executor!r} is unknown; use one of {', '.join(map(repr, EXECUTORS))}")
        if resume_run is None:
            run_id = run_id or new_id()
            seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
            try:
                json.dumps(params)
            except (TypeError, ValueError) as e:
                raise InvalidInputError(f"pipeline {pipe.name!r}: parameters must be JSON-serialisable ({e})") from None
            self.repo.create_run(run_id, {
                "pipeline": pipe.name, "status": "running", "params": params, "seed": seed,
                "cache": cache, "executor": executor,
                "trigger": trigger, "git_commit": git_state(str(self.backend.settings.project_dir))[0],
                "started_at": now_ms(), "ended_at": None, "error": None,
            })
            kept: dict[str, StepRun] = {}
        else:
            run_id, seed, params, cache = resume_run.id, resume_run.seed, resume_run.params, resume_run.cache
            executor = resume_run.executor if resume_run.executor in EXECUTORS else "local"
            kept = {s.step: s for s in resume_run.steps if s.status in ("done", "cached")}
            self.repo.reopen_run(run_id)
        assert seed is not None
        results: dict[str, _Result] = {}
        for name, s in kept.items():
            results[name] = _Result(dict(s.outputs), {})
            if progress:
                progress(name, s.status)
        failed: dict[str, str] = {}
        pending = [n for n in pipe.order if n not in kept]

        def ready(n: str) -> bool:
            return all(u in results for u in pipe.upstream[n])

        def blocked(n: str) -> str | None:
            return next((u for u in pipe.upstream[n] if u in failed), None)

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="loopml-step") as pool:
            running: dict[Future[_Result], str] = {}
            while pending or running:
                for n in list(pending):
                    up = blocked(n)
                    if up is not None:
                        pending.remove(n)
                        failed[n] = f"upstream step {up!r} failed"
                        self.repo.save_step({"run_id": run_id, "step": n, "status": "skipped", "attempts": 0,
                                             "error": failed[n], "ended_at": now_ms()})
                        if progress:
                            progress(n, "skipped")
                    elif ready(n) and len(running) < max(1, workers):
                        pending.remove(n)
                        if workers == 1:
                            fut: Future[_Result] = Future()
                            try:
                                fut.set_result(self._execute(pipe, n, run_id, seed, params, results, cache, progress,
                                                             executor))
                            except BaseException as e:  # recorded by _execute; collected below
                                fut.set_exception(e)
                        else:
                            fut = pool.submit(self._execute, pipe, n, run_id, seed, params, results, cache, progress,
                                              executor)
                        running[fut] = n
                if not running:
                    if pending and not any(ready(n) or blocked(n) for n in pending):
                        break  # unreachable for a valid DAG
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    n = running.pop(fut)
                    try:
                        results[n] = fut.result()
                    except KeyboardInterrupt:
                        self.repo.finish_run(run_id, "failed", now_ms(), f"interrupted in step {n!r}")
                        raise
                    except BaseException as e:
                        failed[n] = f"{type(e).__name__}: {e}"
        status = "failed" if failed else "finished"
        first = next((f"step {n!r}: {why}" for n, why in failed.items() if not why.startswith("upstream")), None)
        self.repo.finish_run(run_id, status, now_ms(), first)
        run = self.repo.get_run(run_id)
        order = {n: i for i, n in enumerate(pipe.order)}
        run.steps.sort(key=lambda s: order.get(s.step, len(order)))
        run.outputs = _LazyOutputs(results, self.backend)
        return run

    def _execute(self, pipe: Pipeline, name: str, run_id: str, seed: int, params: Mapping[str, Any],
                 results: Mapping[str, _Result], cache: bool, progress: Any, executor: str = "local") -> _Result:
        st = pipe.steps[name]
        code = code_hash(st.fn)
        input_hashes: dict[str, str] = {}
        step_params: dict[str, Any] = {}
        for inp in st.inputs:
            if inp in pipe.producer:
                input_hashes[inp] = results[pipe.producer[inp]].refs[inp]["sha256"]
            elif inp == SEED_PARAM and inp not in params:
                step_params[inp] = _step_seed(seed, name)
                input_hashes[inp] = _outputs.value_hash(step_params[inp])
            else:
                step_params[inp] = params[inp] if inp in params else st.defaults[inp]
                input_hashes[inp] = _outputs.value_hash(step_params[inp])
        key = _cache_key(name, code, input_hashes)
        base = {"run_id": run_id, "step": name, "cache_key": key, "code_hash": code, "input_hashes": input_hashes,
                "params": {k: (v if _jsonable(v) else repr(v)) for k, v in step_params.items()}}
        miss = None
        if cache and st.cache:
            hit = self.repo.find_cached(key)
            if hit is not None and all(_outputs.exists(r, self.backend.blobs) for r in hit.outputs.values()):
                now = now_ms()
                self.repo.save_step({**base, "status": "cached", "attempts": 0, "outputs": hit.outputs,
                                     "cached_from": hit.id, "cache_miss": None, "started_at": now, "ended_at": now,
                                     "logs": None, "error": None})
                if progress:
                    progress(name, "cached")
                return _Result(dict(hit.outputs), {})
            miss = _miss_reason(self.repo.last_success(name) if hit is None else hit, code, input_hashes)
        else:
            miss = "caching is off for this " + ("run" if not cache else "step")
        started = now_ms()
        self.repo.save_step({**base, "status": "running", "attempts": 1, "cache_miss": miss, "started_at": started,
                             "outputs": None, "cached_from": None, "ended_at": None, "logs": None, "error": None})
        if progress:
            progress(name, "running")
        attempt = 0
        while True:
            attempt += 1
            try:
                refs, values, logs = self._attempt(st, pipe, results, step_params, executor)
            except AttemptFailed as failure:
                e, tb, logs = failure.error, failure.tb, failure.logs
                retryable = not isinstance(e, InvalidInputError)  # e.g. an unpicklable output: retrying will not help
                if attempt <= st.retries and retryable:
                    self.repo.save_step({**base, "status": "running", "attempts": attempt + 1, "cache_miss": miss,
                                         "started_at": started, "outputs": None, "cached_from": None,
                                         "ended_at": None, "logs": logs, "error": tb})
                    time.sleep(st.retry_backoff * 2 ** (attempt - 1))
                    continue
                self.repo.save_step({**base, "status": "failed", "attempts": attempt, "cache_miss": miss,
                                     "started_at": started, "outputs": None, "cached_from": None,
                                     "ended_at": now_ms(), "logs": logs, "error": tb})
                if progress:
                    progress(name, "failed")
                raise e from None
            self.repo.save_step({**base, "status": "done", "attempts": attempt, "cache_miss": miss,
                                 "started_at": started, "outputs": refs, "cached_from": None, "ended_at": now_ms(),
                                 "logs": logs or None, "error": None})
            if progress:
                progress(name, "done")
            return _Result(refs, values)

    def _attempt(self, st: Step, pipe: Pipeline, results: Mapping[str, _Result], step_params: Mapping[str, Any],
                 executor: str) -> tuple[dict[str, _outputs.OutputRef], dict[str, Any], str]:
        """One attempt of a step: its output references, the values (when in this process) and its output.

        Raises:
            AttemptFailed: the step (or storing its outputs) raised.
        """
        if executor == "ray":
            from loopml.pipelines import _ray

            inputs = {inp: results[pipe.producer[inp]].refs[inp] for inp in st.inputs if inp in pipe.producer}
            try:
                refs, logs = _ray.run_attempt(st, inputs, step_params, self.backend.settings)
            except AttemptFailed:
                raise
            except Exception as e:  # Ray itself failed, or the timeout
                raise AttemptFailed(e, traceback.format_exc(), "") from None
            return refs, {}, logs
        buf = io.StringIO()
        try:
            kwargs = {inp: (results[pipe.producer[inp]].values[inp] if inp in results[pipe.producer[inp]].values
                            else _outputs.load(results[pipe.producer[inp]].refs[inp], self.backend.blobs))
                      if inp in pipe.producer else step_params[inp] for inp in st.inputs}
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), \
                    use_settings(self.backend.settings):
                value = _call(st, kwargs, executor == "processes")
            values = _split(st, value)
            refs = {o: _outputs.dump(v, self.backend.blobs, step=st.name, name=o) for o, v in values.items()}
        except Exception as e:
            raise AttemptFailed(e, traceback.format_exc(), buf.getvalue()[-_LOG_LIMIT:]) from None
        return refs, values, buf.getvalue()[-_LOG_LIMIT:]

    # -- reading -------------------------------------------------------------------

    def get_run(self, run_id: str) -> PipelineRun:
        return self.repo.get_run(run_id)

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.repo.list_runs(pipeline, limit)

    def resume(self, run_id: str, pipe: Pipeline | None = None, *, workers: int = 1, progress: Any = None) -> PipelineRun:
        """Continue a run that stopped (killed or failed): finished steps are kept, the others run.

        Raises:
            NotFoundError: no such run, or its pipeline is not defined in this process.
            ConflictError: the run already finished.
        """
        old = self.repo.get_run(run_id)
        if old.status == "finished":
            raise ConflictError(f"pipeline run {old.id} already finished; start a new run instead")
        if pipe is None:
            pipe = PIPELINES.get(old.pipeline)
            if pipe is None:
                from loopml.errors import NotFoundError

                raise NotFoundError(
                    f"pipeline {old.pipeline!r} of run {old.id} is not defined; list its module under "
                    "[pipelines] in loopml.toml (or import it) before resuming"
                )
        return self.run(pipe, old.params, workers=workers, progress=progress, resume_run=old)


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _call(st: Step, kwargs: dict[str, Any], isolate: bool) -> Any:
    if st.timeout is None and not isolate:
        return st.fn(**kwargs)
    from loopml.pipelines._isolate import call_with_timeout

    return call_with_timeout(st.fn, kwargs, st.timeout, step=st.name)


def _split(st: Step, value: Any) -> dict[str, Any]:
    if len(st.outputs) == 1:
        return {st.outputs[0]: value}
    if not isinstance(value, tuple) or len(value) != len(st.outputs):
        raise InvalidInputError(
            f"step {st.name!r} declares outputs {list(st.outputs)} but returned {type(value).__name__}"
            f"{f' of length {len(value)}' if isinstance(value, tuple) else ''}; return a tuple of that length",
            step=st.name,
        )
    return dict(zip(st.outputs, value, strict=True))


class _LazyOutputs(dict):  # type: ignore[type-arg]
    """Step outputs of a finished run, loaded from the store on first access."""

    def __init__(self, results: Mapping[str, _Result], backend: Backend) -> None:
        super().__init__()
        self._refs = {o: (r, res) for res in results.values() for o, r in res.refs.items()}
        self._backend = backend

    def __missing__(self, key: str) -> Any:
        if key not in self._refs:
            raise KeyError(key)
        ref, res = self._refs[key]
        value = res.values[key] if key in res.values else _outputs.load(ref, self._backend.blobs)
        self[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._refs

    def keys(self):  # type: ignore[no-untyped-def]
        return self._refs.keys()


def get_pipelines(settings: Settings | None = None) -> PipelineService:
    """The process-wide :class:`PipelineService` for ``settings`` (default: the project's)."""
    return get_service("pipelines", PipelineService, settings)


def resume(run_id: str, *, settings: Settings | None = None, workers: int = 1) -> PipelineRun:
    """Continue a stopped run; see :meth:`PipelineService.resume`."""
    return get_pipelines(settings).resume(run_id, workers=workers)
