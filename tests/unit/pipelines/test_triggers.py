"""Triggers and the scheduler: cron, new dataset versions, events; durable, exactly-once firing."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from loopml import data
from loopml.config import Settings
from loopml.errors import AlreadyExistsError, InvalidInputError
from loopml.pipelines import Pipeline, step
from loopml.pipelines.triggers import Scheduler, get_triggers
from loopml.storage.events import emit

HOUR = 3_600_000


@step
def count(dataset_uri: str = "", label: str = "x") -> str:
    return f"{label}:{dataset_uri}"


def _pipe() -> Pipeline:
    return Pipeline("retrain", steps=[count], params={"dataset_uri": "", "label": "x"})


class Clock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


def test_bad_triggers_are_refused_when_saved(settings: Settings) -> None:
    svc = get_triggers(settings)
    with pytest.raises(InvalidInputError, match="cron expression '61 \\* \\* \\* \\*' is invalid"):
        svc.add("t", "retrain", "cron", "61 * * * *")
    with pytest.raises(InvalidInputError, match="kind 'weekly' is unknown"):
        svc.add("t", "retrain", "weekly", "x")
    svc.add("t", "retrain", "cron", "0 * * * *")
    with pytest.raises(AlreadyExistsError):
        svc.add("t", "retrain", "cron", "0 * * * *")


def test_cron_fires_once_per_due_slot_and_survives_restarts(settings: Settings) -> None:
    pipes = {"retrain": _pipe()}
    trig = get_triggers(settings).add("hourly", "retrain", "cron", "0 * * * *", params={"label": "cron"})
    clock = Clock(trig.created_at)
    sched = Scheduler(settings, pipelines=pipes, clock=clock)
    assert sched.run_once() == []
    clock.now += 3 * HOUR  # three slots passed while nobody looked: fire once, not three times
    fired = sched.run_once()
    assert len(fired) == 1 and fired[0].run_id is not None
    assert sched.run_once() == []
    restarted = Scheduler(settings, pipelines=pipes, clock=clock)  # a new process: state is in the store
    assert restarted.run_once() == []
    clock.now += HOUR
    assert len(restarted.run_once()) == 1
    firings = get_triggers(settings).firings("hourly")
    assert len(firings) == 2 and all(f.status == "finished" for f in firings)


def test_new_dataset_version_fires_with_its_uri(settings: Settings) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    data.register("pumpkins", frame, settings=settings)
    get_triggers(settings).add("on-data", "retrain", "dataset", "pumpkins")
    sched = Scheduler(settings, pipelines={"retrain": _pipe()})
    assert sched.run_once() == []  # version 1 existed before the trigger
    data.register("pumpkins", frame.assign(a=[4, 5, 6]), settings=settings)
    data.register("other", frame, settings=settings)
    fired = sched.run_once()
    assert [f.fire_key for f in fired] == ["dataset:2"]
    from loopml.pipelines import get_pipelines

    run = get_pipelines(settings).get_run(fired[0].run_id or "")
    assert run.params["dataset_uri"] == "datasets:/pumpkins/2"
    assert run.trigger == "trigger:on-data:dataset:2"
    assert sched.run_once() == []


def test_events_fire_subscribed_pipelines(settings: Settings) -> None:
    get_triggers(settings).add("on-alert", "retrain", "event", "alert.raised")
    sched = Scheduler(settings, pipelines={"retrain": _pipe()})
    store = get_triggers(settings).store
    emit(store, "alert.raised", subject="pumpkins", payload={"rule": "accuracy drop"})
    emit(store, "deployment.changed", subject="pumpkins", payload={})
    fired = sched.run_once()
    assert len(fired) == 1 and fired[0].fire_key.startswith("event:")
    assert sched.run_once() == []


def test_two_schedulers_never_fire_the_same_thing_twice(settings: Settings) -> None:
    get_triggers(settings).add("on-alert", "retrain", "event", "alert.raised")
    store = get_triggers(settings).store
    for _ in range(3):
        emit(store, "alert.raised")
    pipes = {"retrain": _pipe()}
    # the lease keeps a second scheduler idle while the first holds it
    first, second = Scheduler(settings, pipelines=pipes), Scheduler(settings, pipelines=pipes)
    assert first._acquire_lease() and not second._acquire_lease()
    first.release()
    # even with the lease out of the way (expired at once), the firing rows decide
    racers = [Scheduler(settings, pipelines=pipes, lease_seconds=0) for _ in range(4)]
    results: list[int] = []
    barrier = threading.Barrier(len(racers))

    def go(s: Scheduler) -> None:
        barrier.wait()
        results.append(len(s.run_once()))

    threads = [threading.Thread(target=go, args=(s,)) for s in racers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(results) == 3
    assert len(get_triggers(settings).firings("on-alert")) == 3
    from loopml.pipelines import get_pipelines

    assert len(get_pipelines(settings).list_runs("retrain")) == 3  # one pipeline run per event, no more


def test_a_firing_recorded_before_a_crash_is_started_once(settings: Settings) -> None:
    get_triggers(settings).add("on-alert", "retrain", "event", "alert.raised")
    emit(get_triggers(settings).store, "alert.raised")
    pipes = {"retrain": _pipe()}
    crashed = Scheduler(settings, pipelines=pipes)
    trig = get_triggers(settings).get("on-alert")
    [(key, cursor, _)] = crashed._due(trig)
    assert crashed._claim(trig, key, cursor)  # recorded, then the process "died" before starting the run
    crashed.release()
    fresh = Scheduler(settings, pipelines=pipes)
    fired = fresh.run_once()
    assert [f.fire_key for f in fired] == [key] and fired[0].run_id is not None
    assert fresh.run_once() == []
    [firing] = get_triggers(settings).firings("on-alert")
    assert firing.status == "finished"
