"""Hyperparameter tuning with Optuna, every trial a tracked run.

``tune(objective, space)`` runs an Optuna study; ``tuning_step(objective, space,
inputs=(...))`` wraps it as a pipeline :class:`~loopml.pipelines.Step` with the
outputs ``best_params``, ``best_model`` and ``best_value``.

Runs
----
``tune`` creates a *tune run* (named ``"tune"``) — a child of the run active in
this thread if there is one, else a top-level run in ``experiment`` (default
``"tuning"``) — and one child run of it per trial (``trial-<n>``) holding the
trial's sampled params, its metric value and the tags ``loopml.tune.trial``,
``loopml.tune.state`` and ``loopml.tune.trial_seed``. A trial whose objective
raises is kept: its run is ``failed`` (with the error in the ``loopml.error``
tag), its state ``FAIL``, and the study goes on. The tune run gets the study's
settings as params (``direction``, ``metric``, ``n_trials``, ``sampler``,
``seed``, ``n_jobs``, ``timeout``), the best params prefixed ``best_``, the metric
``best_<metric>`` as a series over trial numbers (the best value so far; its
last point is the best value) and the counts ``trials_complete`` and
``trials_failed``.

While the objective runs, its trial's run is the active run of the thread, so
``loopml.log_metric(...)`` inside the objective logs to the trial.

Parallelism and determinism
---------------------------
``n_jobs > 1`` runs trials on Optuna's threads (each trial's run is created in
its worker thread, with the tune run as its explicit parent). With one job and
a ``seed``, a study is reproducible: the sampler is seeded with ``seed`` and each
trial gets ``trial_seed`` derived from ``seed`` and the trial number, so the same
seed gives the same trials and the same best params (as long as the objective
itself is deterministic given ``trial_seed``). Threads make the order of
completions, and so what the sampler has seen, vary. With ``executor="ray"``
each trial's objective runs as a Ray task (``n_jobs`` at once, the sampler
staying in this process); ``loopml.log_metric`` inside the objective still logs
to the trial's run.

Optuna's own log lines (one per trial) go through the ``optuna`` logger; quiet
them with ``optuna.logging.set_verbosity(optuna.logging.WARNING)``.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import math
import numbers
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.config import Settings
from loopml.errors import InvalidInputError, LoopmlError
from loopml.pipelines._step import SEED_PARAM, Step, step

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import Trial

    from loopml.tracking.service import TrackingService

__all__ = ["DEFAULT_EXPERIMENT", "TrialRecord", "TuneResult", "parse_space", "tune", "tuning_step"]

#: experiment of a tune run started while no run is active
DEFAULT_EXPERIMENT = "tuning"
_KINDS = ("int", "float", "categorical")
_DIRECTIONS = ("maximize", "minimize")
_SAMPLERS = ("tpe", "random")
_EXECUTORS = ("local", "ray")
_DEFAULT_OUTPUTS = ("best_params", "best_model", "best_value")

Objective = Callable[[dict[str, Any], int], Any]
"""``objective(params, trial_seed) -> value`` or ``(value, model)``."""


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a study.

    Attributes:
        number: Optuna's trial number (0, 1, ...).
        params: the sampled params.
        value: the objective's value; None when the trial failed.
        run_id: the trial's tracked run.
        state: ``"COMPLETE"`` or ``"FAIL"`` (Optuna's trial state).
        error: ``"ExceptionType: message"`` of a failed trial.
    """

    number: int
    params: dict[str, Any]
    value: float | None
    run_id: str | None
    state: str
    error: str | None = None


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` found.

    Attributes:
        best_params: params of the best trial.
        best_value: its value.
        best_model: the model the best trial's objective returned (None when it returned only a value).
        trials: every trial, by number.
        study_name: name of the (in-memory) Optuna study.
        parent_run_id: the tune run, parent of the trial runs.
    """

    best_params: dict[str, Any]
    best_value: float
    best_model: Any
    trials: list[TrialRecord] = field(default_factory=list)
    study_name: str = ""
    parent_run_id: str = ""


# -- the search space -----------------------------------------------------------------


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:  # pragma: no cover - depends on the environment
        raise LoopmlError(
            "tuning needs Optuna, which is not installed; install it with: pip install 'loopml[tune]'"
        ) from None
    return optuna


def _number(name: str, what: str, value: Any, integral: bool) -> Any:
    ok = isinstance(value, numbers.Integral if integral else numbers.Real) and not isinstance(value, bool)
    if not ok or (not integral and not math.isfinite(float(value))):
        kind = "an integer" if integral else "a finite number"
        raise InvalidInputError(f"space: parameter {name!r}: {what} must be {kind}, got {value!r}", param=name)
    return int(value) if integral else float(value)


def _distribution(name: str, spec: Any) -> BaseDistribution:
    optuna = _optuna()
    dists = optuna.distributions
    if isinstance(spec, dists.BaseDistribution):
        if not isinstance(spec, dists.IntDistribution | dists.FloatDistribution | dists.CategoricalDistribution):
            raise InvalidInputError(
                f"space: parameter {name!r}: unsupported distribution {type(spec).__name__}; use "
                "IntDistribution, FloatDistribution or CategoricalDistribution", param=name,
            )
        given: BaseDistribution = spec
        return given
    if not isinstance(spec, tuple | list) or not spec or not isinstance(spec[0], str):
        raise InvalidInputError(
            f"space: parameter {name!r} has spec {spec!r}; use a tuple like ('int', 2, 12), "
            "('float', 1e-3, 0.3, 'log'), ('categorical', ['gini', 'entropy']) or an Optuna distribution",
            param=name,
        )
    kind, args = spec[0], list(spec[1:])
    if kind not in _KINDS:
        raise InvalidInputError(
            f"space: parameter {name!r} has unknown kind {kind!r}; known kinds: {', '.join(_KINDS)}", param=name
        )
    if kind == "categorical":
        if len(args) != 1 or not isinstance(args[0], list | tuple) or not args[0]:
            raise InvalidInputError(
                f"space: parameter {name!r}: use ('categorical', [choice, ...]) with at least one choice", param=name
            )
        choices = tuple(args[0])
        bad = [c for c in choices if c is not None and not isinstance(c, str | int | float | bool)]
        if bad:
            raise InvalidInputError(
                f"space: parameter {name!r}: choices must be str, int, float, bool or None, got {bad[0]!r}",
                param=name,
            )
        result: BaseDistribution = dists.CategoricalDistribution(choices)
        return result
    if len(args) not in (2, 3):
        raise InvalidInputError(
            f"space: parameter {name!r}: use ({kind!r}, low, high), ({kind!r}, low, high, 'log') or "
            f"({kind!r}, low, high, step)", param=name,
        )
    integral = kind == "int"
    low, high = _number(name, "low", args[0], integral), _number(name, "high", args[1], integral)
    if low > high:
        raise InvalidInputError(f"space: parameter {name!r}: low {low!r} is greater than high {high!r}", param=name)
    log, step_size = False, None
    if len(args) == 3:
        if args[2] == "log":
            log = True
            if low <= 0:
                raise InvalidInputError(
                    f"space: parameter {name!r}: a log scale needs low > 0, got {low!r}", param=name
                )
        else:
            step_size = _number(name, "the 4th item (step, or 'log')", args[2], integral)
            if step_size <= 0:
                raise InvalidInputError(f"space: parameter {name!r}: step must be > 0, got {step_size!r}", param=name)
    if integral:
        result = dists.IntDistribution(low, high, log=log, step=1 if step_size is None else step_size)
    else:
        result = dists.FloatDistribution(low, high, log=log, step=step_size)
    return result


def parse_space(space: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """Optuna distributions for a search space of tuples (or distributions).

    ``("int", low, high)``, ``("float", low, high)`` — optionally with ``"log"`` or a step
    as a 4th item — and ``("categorical", [choices])``; bounds are inclusive.

    Raises:
        InvalidInputError: an unknown kind, low > high, a bad bound, step or choice — naming the parameter.
    """
    if not isinstance(space, Mapping) or not space:
        raise InvalidInputError(f"space must be a non-empty dict of parameter name to spec, got {space!r}")
    out: dict[str, BaseDistribution] = {}
    for name, spec in space.items():
        if not isinstance(name, str) or not name or len(name) > 245:
            raise InvalidInputError(f"space: parameter name {name!r} must be a non-empty string of at most 245 characters")
        out[name] = _distribution(name, spec)
    return out


def _suggest(trial: Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params: dict[str, Any] = {}
    for name, d in space.items():
        if isinstance(d, IntDistribution):
            params[name] = trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
        elif isinstance(d, FloatDistribution):
            params[name] = trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
        else:
            assert isinstance(d, CategoricalDistribution)
            params[name] = trial.suggest_categorical(name, d.choices)
    return params


# -- options ------------------------------------------------------------------------------


def _check_options(n_trials: int, direction: str, metric: str, seed: int | None, timeout: float | None, n_jobs: int,
                   sampler: Any, executor: str = "local") -> None:
    if executor not in _EXECUTORS:
        raise InvalidInputError(f"executor must be 'local' or 'ray', got {executor!r}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise InvalidInputError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    if direction not in _DIRECTIONS:
        raise InvalidInputError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if not isinstance(metric, str) or not metric or len(metric) > 240:
        raise InvalidInputError(f"metric must be a non-empty name of at most 240 characters, got {metric!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InvalidInputError(f"seed must be an integer >= 0 or None, got {seed!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout <= 0):
        raise InvalidInputError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or not (n_jobs >= 1 or n_jobs == -1):
        raise InvalidInputError(f"n_jobs must be an integer >= 1 (threads), or -1 for one per CPU; got {n_jobs!r}")
    if isinstance(sampler, str):
        if sampler not in _SAMPLERS:
            raise InvalidInputError(f"sampler must be 'tpe', 'random' or an Optuna sampler, got {sampler!r}")
    elif not isinstance(sampler, _optuna().samplers.BaseSampler):
        raise InvalidInputError(f"sampler must be 'tpe', 'random' or an Optuna sampler, got {type(sampler).__name__}")


def _make_sampler(sampler: Any, seed: int | None) -> Any:
    optuna = _optuna()
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return sampler


def trial_seed(seed: int, number: int) -> int:
    """The seed given to trial ``number`` of a study seeded with ``seed`` (0 <= value < 2**31)."""
    return int.from_bytes(hashlib.sha256(f"loopml-tune:{seed}:{number}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def _value(raw: Any) -> tuple[float, Any, bool]:
    """(value, model, has_model) from what the objective returned."""
    model, has_model = None, False
    if isinstance(raw, tuple):
        if len(raw) != 2:
            raise InvalidInputError(f"the objective must return a number or (number, model), got a tuple of {len(raw)}")
        raw, model = raw
        has_model = True
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        raise InvalidInputError(f"the objective must return a number or (number, model), got {type(raw).__name__}")
    value = float(raw)
    if math.isnan(value):
        raise InvalidInputError("the objective returned NaN")
    return value, model, has_model


# -- tune ------------------------------------------------------------------------------------


def tune(
    objective: Objective,
    space: Mapping[str, Any],
    *,
    n_trials: int = 20,
    direction: str = "maximize",
    metric: str = "score",
    seed: int | None = 0,
    experiment: str | None = None,
    timeout: float | None = None,
    n_jobs: int = 1,
    sampler: Any = "tpe",
    settings: Settings | None = None,
    run_name: str = "tune",
    executor: str = "local",
) -> TuneResult:
    """Search ``space`` for the params that maximise (or minimise) ``objective``, tracking every trial.

    Args:
        objective: ``objective(params, trial_seed)`` returning the value, or ``(value, model)`` to
            keep the best trial's model as ``best_model``.
        space: parameter name -> ``("int", low, high)``, ``("float", low, high, "log")``,
            ``("categorical", [choices])`` or an Optuna distribution (see :func:`parse_space`).
        n_trials: number of trials.
        direction: ``"maximize"`` or ``"minimize"``.
        metric: name under which each trial's value is logged (the tune run gets ``best_<metric>``).
        seed: seeds the sampler and the trial seeds (None: random, logged on the tune run).
        experiment: experiment of the runs (default: the active run's, else ``"tuning"``).
        timeout: stop starting trials after this many seconds.
        n_jobs: trials run at once, on threads (-1: one per CPU).
        sampler: ``"tpe"``, ``"random"`` or an Optuna sampler instance (used as given).
        settings: project settings (default: the active run's project, else the current project).
        run_name: name of the tune run.
        executor: ``"local"`` runs the objective in this process; ``"ray"`` runs each trial's
            objective as a Ray task (``n_jobs`` of them at once), logging to its trial run from there.

    Returns:
        The best params, value and model, and a record of every trial.

    Raises:
        InvalidInputError: an invalid space or option.
        LoopmlError: every trial failed (the message has the first error).
    """
    from loopml.tracking import fluent

    dists = parse_space(space)
    _check_options(n_trials, direction, metric, seed, timeout, n_jobs, sampler, executor)
    optuna = _optuna()
    if seed is None:
        seed_used = random.SystemRandom().randrange(2**31)
        sampler_seed: int | None = None
    else:
        seed_used = sampler_seed = seed
    active = fluent.active_run()
    service: TrackingService = active.service if (active is not None and settings is None) else fluent.get_tracking(settings)
    if active is not None and active.service is not service:
        active = None  # a run of another project cannot be the parent
    exp = experiment or (active.experiment if active is not None else DEFAULT_EXPERIMENT)
    sampler_name = sampler if isinstance(sampler, str) else type(sampler).__name__
    parent_id = service.create_run(
        exp, name=run_name, parent_run_id=active.id if active is not None else None,
        params={"direction": direction, "metric": metric, "n_trials": n_trials, "sampler": sampler_name,
                "seed": seed_used, "n_jobs": n_jobs, "timeout": timeout, "executor": executor},
        tags={"loopml.tune": "study"},
    )
    study_name = f"loopml-tune-{parent_id}"
    service.set_tags(parent_id, {"loopml.tune.study": study_name})
    lock = threading.Lock()
    records: dict[int, TrialRecord] = {}
    models: dict[int, Any] = {}  # models of the trials tied for the best value among those returning one
    sign = 1.0 if direction == "maximize" else -1.0

    def run_trial(trial: Trial) -> float:
        number, tseed = trial.number, trial_seed(seed_used, trial.number)
        params: dict[str, Any] = {}
        run_id: str | None = None
        stack = fluent._stack()
        run = None
        try:
            params = _suggest(trial, dists)
            run_id = service.create_run(
                exp, name=f"trial-{number}", params=params, parent_run_id=parent_id,
                tags={"loopml.tune": "trial", "loopml.tune.trial": number, "loopml.tune.trial_seed": tseed,
                      "loopml.tune.state": "RUNNING", "loopml.tune.study": study_name},
            )
            run = fluent.ActiveRun(service, run_id, exp)
            stack.append(run)  # the objective may log to its trial with loopml.log_*
            with run:
                if executor == "ray":
                    from loopml.pipelines import _ray
                    from loopml.pipelines._isolate import AttemptFailed

                    try:
                        raw = _ray.call(_trial_on_worker, (objective, dict(params), tseed, run_id, exp),
                                        service.backend.settings, what=f"trial {number}")
                    except AttemptFailed as f:
                        raise f.error from None
                else:
                    raw = objective(dict(params), tseed)
                value, model, has_model = _value(raw)
                service.log_metric(run_id, metric, value, step=0)
                service.set_tags(run_id, {"loopml.tune.state": "COMPLETE"})
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            if run_id is not None:
                service.set_tags(run_id, {"loopml.tune.state": "FAIL"})
            with lock:
                records[number] = TrialRecord(number, params, None, run_id, "FAIL", error[:5000])
            raise
        finally:
            if run is not None and run in stack:  # an ended run removes itself; this is in case end() raised
                stack.remove(run)
        with lock:
            records[number] = TrialRecord(number, params, value, run_id, "COMPLETE")
            if has_model:
                kept = next(iter(models), None)
                kept_value = None if kept is None else records[kept].value
                if kept_value is None or sign * value > sign * kept_value:
                    models.clear()
                    models[number] = model
                elif value == kept_value:  # a tie: which one Optuna calls best depends on completion order
                    models[number] = model
        return value

    parent = fluent.ActiveRun(service, parent_id, exp)
    with parent:
        study = optuna.create_study(direction=direction, sampler=_make_sampler(sampler, sampler_seed),
                                    study_name=study_name)
        context = contextvars.copy_context()  # e.g. the settings of a pipeline step, also in worker threads
        study.optimize(lambda trial: context.copy().run(run_trial, trial), n_trials=n_trials, timeout=timeout,
                       n_jobs=n_jobs, catch=(Exception,))
        trials = [records[t.number] if t.number in records else
                  TrialRecord(t.number, dict(t.params), t.value, None, t.state.name) for t in study.trials]
        complete = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
        failed = [t for t in trials if t.state == "FAIL"]
        parent.log_metrics({"trials_complete": float(len(complete)), "trials_failed": float(len(failed))}, step=0)
        if not complete:
            if not failed:
                raise LoopmlError(f"no trial of tune run {parent_id} finished within the timeout of {timeout} s",
                                  run_id=parent_id)
            raise LoopmlError(
                f"all {len(trials)} trials of tune run {parent_id} failed; the first error: {failed[0].error}",
                run_id=parent_id, trials=len(trials),
            )
        running: float | None = None
        for t in complete:
            assert t.value is not None
            running = t.value if running is None else (max if sign > 0 else min)(running, t.value)
            parent.log_metric(f"best_{metric}", running, step=t.number)
        bt = study.best_trial
        best_params = dict(bt.params)
        best_value = float(bt.value) if bt.value is not None else math.nan
        parent.log_params({f"best_{k}": v for k, v in best_params.items()})
        parent.set_tags({"loopml.tune.best_trial": bt.number, "loopml.tune.best_run_id": records[bt.number].run_id})
    return TuneResult(best_params=best_params, best_value=best_value, best_model=models.get(bt.number), trials=trials,
                      study_name=study_name, parent_run_id=parent_id)


def _trial_on_worker(objective: Objective, params: dict[str, Any], tseed: int, run_id: str, experiment: str) -> Any:
    """A trial's objective on a Ray worker, with the trial's run active (so ``loopml.log_*`` reach it)."""
    from loopml.tracking import fluent

    service = fluent.get_tracking()
    run = fluent.ActiveRun(service, run_id, experiment)
    stack = fluent._stack()
    stack.append(run)
    try:
        return objective(params, tseed)
    finally:
        stack.remove(run)
        service.flush()


# -- the pipeline step --------------------------------------------------------------------------


def tuning_step(
    objective: Callable[..., Any],
    space: Mapping[str, Any],
    *,
    inputs: Sequence[str] = (),
    name: str = "tune",
    outputs: Sequence[str] = _DEFAULT_OUTPUTS,
    n_trials: int = 20,
    direction: str = "maximize",
    metric: str = "score",
    seed: int | None = 0,
    experiment: str | None = None,
    timeout: float | None = None,
    n_jobs: int = 1,
    sampler: str = "tpe",
    settings: Settings | None = None,
    cache: bool = True,
    executor: str = "local",
) -> Step:
    """A pipeline step that runs :func:`tune` and outputs the best params, model and value.

    The step's inputs are ``inputs`` (upstream outputs or pipeline parameters, wired by name
    like any step's), passed on to ``objective(params, trial_seed, **inputs)``. With
    ``seed=None`` the step also takes the run-derived ``seed``; otherwise the study is
    seeded with ``seed``, so that re-running unchanged inputs hits the cache. The step's
    code hash covers ``objective`` (and the project code it reaches), ``space`` and the
    options, so changing any of them invalidates the cache.

    Args:
        inputs: names of the step's inputs.
        name: step name (also the tune run's name).
        outputs: names of the three outputs (best params, best model, best value).
        sampler: ``"tpe"`` or ``"random"``.
        cache: as for :func:`loopml.step`.
        The other arguments are those of :func:`tune`.

    Raises:
        InvalidInputError: an invalid space, option, input or output name.
    """
    if not callable(objective):
        raise InvalidInputError(f"tuning_step: objective must be callable, got {type(objective).__name__}")
    if isinstance(inputs, str):
        inputs = (inputs,)
    in_names = tuple(inputs)
    for i in in_names:
        if not isinstance(i, str) or not i.isidentifier():
            raise InvalidInputError(f"tuning_step {name!r}: input name {i!r} must be a Python identifier")
        if i == SEED_PARAM:
            raise InvalidInputError(
                f"tuning_step {name!r}: 'seed' cannot be an input; pass seed=None to seed the study from the run"
            )
    if len(set(in_names)) != len(in_names):
        raise InvalidInputError(f"tuning_step {name!r}: input names {list(in_names)} repeat")
    out_names = tuple(outputs)
    if len(out_names) != 3:
        raise InvalidInputError(f"tuning_step {name!r}: outputs must name 3 outputs (best params, model, value)")
    if not isinstance(sampler, str):
        raise InvalidInputError(f"tuning_step {name!r}: sampler must be 'tpe' or 'random' (a name, for the code hash)")
    dists = parse_space(space)
    _check_options(n_trials, direction, metric, seed, timeout, n_jobs, sampler, executor)
    # Everything the step depends on is in this closure, so the code hasher walks it: the
    # objective (and the project code it reaches), the space — as JSON text, which counts by
    # value whatever the hasher makes of distribution objects — and every option.
    from optuna.distributions import distribution_to_json, json_to_distribution

    space_json = {k: distribution_to_json(d) for k, d in dists.items()}
    options: dict[str, Any] = {"n_trials": n_trials, "direction": direction, "metric": metric,
                               "experiment": experiment, "timeout": timeout, "n_jobs": n_jobs, "sampler": sampler,
                               "settings": settings, "run_name": name, "executor": executor}

    def run_tuning(**kwargs: Any) -> tuple[dict[str, Any], Any, float]:
        data = {k: kwargs[k] for k in in_names}
        study_seed = kwargs[SEED_PARAM] if seed is None else seed

        def bound(params: dict[str, Any], trial_seed: int) -> Any:
            return objective(params, trial_seed, **data)

        space = {k: json_to_distribution(v) for k, v in space_json.items()}
        result = tune(bound, space, seed=study_seed, **options)
        return result.best_params, result.best_model, result.best_value

    params = [inspect.Parameter(i, inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in in_names]
    if seed is None:
        params.append(inspect.Parameter(SEED_PARAM, inspect.Parameter.POSITIONAL_OR_KEYWORD))
    run_tuning.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return step(name=name, outputs=out_names, cache=cache)(run_tuning)
