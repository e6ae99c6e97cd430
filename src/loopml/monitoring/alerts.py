"""Alert rules over the stored metric series: hysteresis, de-duplication, cool-down, actions.

After each evaluation every rule that applies to the deployment looks at the
metric's last ``n`` evaluated windows (windows without a value do not count).
It is *breached* when ``k`` of them cross the threshold (``hold = "k/n"``), so one
noisy window does not page anyone.

* Breached with no open alert: an alert opens (``firing``) and its actions run.
* Breached with an open alert: nothing new happens, unless the cool-down since the
  actions last ran has passed; then they run again (a reminder, same alert).
* Not breached in the latest window with an open alert: the alert is resolved.

Actions: ``log`` (a warning through the ``loopml.monitoring`` logger), ``event``
(an ``alert.raised`` event in the store — a pipeline trigger of kind ``event``
on ``alert.raised`` starts retraining), ``webhook:<url>`` (a JSON POST with the
alert; a failing webhook is recorded on the alert, never raised).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.core import now_ms
from loopml.monitoring.config import AlertRule

if TYPE_CHECKING:
    from loopml.monitoring._sql import SqlMonitorRepository
    from loopml.storage.base import MetadataStore

__all__ = ["ALERT_RAISED", "ALERT_RESOLVED", "Alert", "apply_rules"]

logger = logging.getLogger("loopml.monitoring")

ALERT_RAISED = "alert.raised"
ALERT_RESOLVED = "alert.resolved"
_WEBHOOK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Alert:
    id: int
    rule: str
    deployment: str
    state: str  # firing | resolved
    opened_at: int
    last_fired_at: int
    resolved_at: int | None
    value: float | None
    message: str
    details: dict[str, Any]


def _message(rule: AlertRule, deployment: str, values: list[float], hits: int) -> str:
    target = f"{rule.metric}" + (f"[{rule.column}]" if rule.column else "")
    k, n = rule.hold
    return (f"{deployment}: {target} {rule.op} {rule.threshold:g} in {hits} of the last {len(values)} windows "
            f"(needs {k} of {n}); latest {values[0]:.4g}")


def _webhook(url: str, payload: dict[str, Any]) -> str | None:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json",
                                                              "User-Agent": "loopml-monitoring"})
    try:
        with urllib.request.urlopen(request, timeout=_WEBHOOK_TIMEOUT_S) as response:
            if response.status >= 300:
                return f"webhook {url} answered {response.status}"
    except Exception as e:  # recorded on the alert; monitoring goes on
        return f"webhook {url} failed: {type(e).__name__}: {e}"
    return None


def _act(rule: AlertRule, alert: dict[str, Any], store: MetadataStore, kind: str) -> list[str]:
    from loopml.storage.events import emit

    problems: list[str] = []
    for action in rule.actions:
        if action == "log":
            (logger.warning if kind == ALERT_RAISED else logger.info)("%s %s", kind, alert["message"])
        elif action == "event":
            emit(store, kind, subject=alert["deployment"], payload=alert)
        elif action.startswith("webhook:"):
            problem = _webhook(action[len("webhook:"):], {"kind": kind, **alert})
            if problem:
                problems.append(problem)
    return problems


def apply_rules(rules: tuple[AlertRule, ...], deployment: str, repo: SqlMonitorRepository, store: MetadataStore,
                *, now: int | None = None) -> list[Alert]:
    """Run every rule for ``deployment`` against its stored series; returns the alerts that fired or resolved now."""
    now = now if now is not None else now_ms()
    changed: list[Alert] = []
    for rule in rules:
        if not rule.applies_to(deployment):
            continue
        k, n = rule.hold
        values = repo.last_values(deployment, rule.metric, rule.column, n)
        open_alert = repo.open_alert(rule.name, deployment)
        if not values:
            continue
        hits = sum(bool(rule.breached(v)) for v in values)
        breached = hits >= k
        latest_breached = bool(rule.breached(values[0]))
        if breached:
            message = _message(rule, deployment, values, hits)
            payload = {"rule": rule.name, "deployment": deployment, "metric": rule.metric, "column": rule.column,
                       "op": rule.op, "threshold": rule.threshold, "value": values[0], "values": values,
                       "message": message}
            if open_alert is None:
                problems = _act(rule, payload, store, ALERT_RAISED)
                alert_id = repo.open(rule.name, deployment, now, values[0], message,
                                     {**payload, "action_problems": problems})
                changed.append(repo.get_alert(alert_id))
            elif now - open_alert.last_fired_at >= rule.cooldown * 1000:
                problems = _act(rule, {**payload, "alert_id": open_alert.id, "reminder": True}, store, ALERT_RAISED)
                repo.refire(open_alert.id, now, values[0], message, {**payload, "action_problems": problems})
                changed.append(repo.get_alert(open_alert.id))
            else:
                repo.touch(open_alert.id, values[0])
        elif open_alert is not None and not latest_breached:
            message = f"{deployment}: {rule.metric} back within {rule.op} {rule.threshold:g} (latest {values[0]:.4g})"
            _act(rule, {"rule": rule.name, "deployment": deployment, "alert_id": open_alert.id, "value": values[0],
                        "message": message}, store, ALERT_RESOLVED)
            repo.resolve(open_alert.id, now)
            changed.append(repo.get_alert(open_alert.id))
    return changed
