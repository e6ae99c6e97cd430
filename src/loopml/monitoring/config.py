"""Monitoring configuration: the ``[monitoring]`` tables of ``loopml.toml``.

```toml
[monitoring]
window = "1h"              # each evaluation covers the last hour of the prediction log
interval = "5m"            # `loopml monitor watch` evaluates this often
min_rows = 30              # fewer rows in a window: "not enough data", no verdict
alpha = 0.05               # drift tests' significance (Benjamini-Hochberg across columns)
performance_drop = 0.05    # a metric this far below its baseline is concept drift

[monitoring.deployments.pumpkins-api]
reference = "datasets:/pumpkins@training"   # default: the served model's training dataset
task = "regression"                          # default: from the model's output type
baseline = { rmse = 2.1 }                    # default: the metrics of the model's run
columns = { size = { min_effect = 0.2 } }    # per-column drift thresholds

[[monitoring.alerts]]
name = "input-drift"
deployment = "*"              # every monitored deployment, or one name
metric = "drift.share"        # see loopml.monitoring.metrics for the catalogue
column = "size"               # for per-column metrics (drift.column, quality.missing_rate)
op = ">="
threshold = 0.3
hold = "2/3"                  # breached in 2 of the last 3 windows (hysteresis)
cooldown = "6h"               # after firing, stay quiet this long
actions = ["log", "event", "webhook:https://hooks.example.com/loopml"]
```

Durations are numbers of seconds or strings such as ``"90s"``, ``"5m"``, ``"1h"``, ``"2d"``.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.config import CONFIG_FILE, Settings
from loopml.errors import ConfigError

__all__ = ["AlertRule", "DeploymentMonitor", "MonitorConfig", "load_monitor_config", "parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_OPS = (">", ">=", "<", "<=")
_HOLD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_TASKS = ("classification", "regression")


def parse_duration(value: Any, where: str) -> float:
    """Seconds from ``3600``, ``"90s"``, ``"5m"``, ``"1h"``, ``"2d"``.

    Raises:
        ConfigError: not a positive duration.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ConfigError(f'{where} = {value!r} is not a duration; write seconds or e.g. "90s", "5m", "1h", "2d"')
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{where} = {value!r} must be longer than zero")
    return seconds


@dataclass(frozen=True)
class AlertRule:
    """When to raise an alert, and what to do then.

    Attributes:
        name: the rule's name (alerts are de-duplicated per rule and deployment).
        metric: a metric of the catalogue, e.g. ``drift.share`` or ``performance.accuracy``.
        op: comparison that means *breached*: ``>``, ``>=``, ``<``, ``<=``.
        threshold: the value compared against.
        deployment: a deployment name, or ``*`` for every monitored one.
        column: for per-column metrics (``drift.column``, ``quality.missing_rate``); None: the whole table.
        hold: breached in ``hold[0]`` of the last ``hold[1]`` evaluated windows (windows without data do not count).
        cooldown: seconds after firing during which the rule stays quiet for that deployment.
        actions: ``log``, ``event`` (an ``alert.raised`` event that pipeline triggers can start on),
            ``webhook:<url>`` (a JSON POST).
    """

    name: str
    metric: str
    op: str
    threshold: float
    deployment: str = "*"
    column: str | None = None
    hold: tuple[int, int] = (1, 1)
    cooldown: float = 3600.0
    actions: tuple[str, ...] = ("log", "event")

    def breached(self, value: float | None) -> bool | None:
        if value is None or not math.isfinite(value):
            return None
        return {
            ">": value > self.threshold,
            ">=": value >= self.threshold,
            "<": value < self.threshold,
            "<=": value <= self.threshold,
        }[self.op]

    def applies_to(self, deployment: str) -> bool:
        return self.deployment in ("*", deployment)


@dataclass(frozen=True)
class DeploymentMonitor:
    """Per-deployment monitoring options (all optional)."""

    reference: str | None = None
    task: str | None = None
    baseline: dict[str, float] = field(default_factory=dict)
    columns: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitorConfig:
    window: float = 3600.0
    interval: float = 300.0
    min_rows: int = 30
    alpha: float = 0.05
    performance_drop: float = 0.05
    deployments: dict[str, DeploymentMonitor] = field(default_factory=dict)
    alerts: tuple[AlertRule, ...] = ()

    def for_deployment(self, name: str) -> DeploymentMonitor:
        return self.deployments.get(name, DeploymentMonitor())


def _number(
    table: Mapping[str, Any],
    key: str,
    default: float,
    where: str,
    *,
    low: float = 0.0,
    high: float = math.inf,
    integral: bool = False,
) -> float:
    value = table.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low <= value <= high) or (integral and int(value) != value):
        kind = "an integer" if integral else "a number"
        raise ConfigError(f"{where}.{key} = {value!r} must be {kind} in [{low:g}, {high:g}]")
    return float(value)


def _rule(raw: Any, i: int, metric_names: frozenset[str]) -> AlertRule:
    where = f"[[monitoring.alerts]] #{i + 1}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} needs a name")
    where = f"[[monitoring.alerts]] {name!r}"
    unknown = sorted(
        set(raw) - {"name", "metric", "op", "threshold", "deployment", "column", "hold", "cooldown", "actions"}
    )
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}")
    metric = raw.get("metric")
    if metric not in metric_names:
        raise ConfigError(f"{where}: metric {metric!r} is not known; use one of {', '.join(sorted(metric_names))}")
    op = raw.get("op", ">=")
    if op not in _OPS:
        raise ConfigError(f"{where}: op {op!r} must be one of {', '.join(_OPS)}")
    threshold = _number(
        raw, "threshold", math.nan if "threshold" not in raw else raw["threshold"], where, low=-math.inf
    )
    hold_raw = raw.get("hold", "1/1")
    m = _HOLD.match(hold_raw) if isinstance(hold_raw, str) else None
    if m is None or not (1 <= int(m.group(1)) <= int(m.group(2)) <= 100):
        raise ConfigError(f'{where}: hold = {hold_raw!r} must be "k/n" with 1 <= k <= n <= 100, e.g. "2/3"')
    actions = raw.get("actions", ["log", "event"])
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise ConfigError(f'{where}: actions must be a list such as ["log", "event", "webhook:https://..."]')
    for a in actions:
        if a not in ("log", "event") and not re.match(r"^webhook:https?://\S+$", a):
            raise ConfigError(f"{where}: action {a!r} must be log, event or webhook:<http(s) url>")
    column = raw.get("column")
    if column is not None and not isinstance(column, str):
        raise ConfigError(f"{where}: column must be a column name")
    deployment = raw.get("deployment", "*")
    if not isinstance(deployment, str) or not deployment:
        raise ConfigError(f'{where}: deployment must be a name or "*"')
    return AlertRule(
        name=name,
        metric=metric,
        op=op,
        threshold=threshold,
        deployment=deployment,
        column=column,
        hold=(int(m.group(1)), int(m.group(2))),
        cooldown=parse_duration(raw.get("cooldown", "1h"), f"{where}.cooldown"),
        actions=tuple(actions),
    )


def _deployment(name: str, raw: Any) -> DeploymentMonitor:
    where = f"[monitoring.deployments.{name}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(raw) - {"reference", "task", "baseline", "columns"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}")
    ref = raw.get("reference")
    if ref is not None and (not isinstance(ref, str) or not ref.startswith("datasets:/")):
        raise ConfigError(f"{where}.reference = {ref!r} must be a datasets:/ URI")
    task = raw.get("task")
    if task is not None and task not in _TASKS:
        raise ConfigError(f"{where}.task = {task!r} must be one of {', '.join(_TASKS)}")
    baseline = raw.get("baseline", {})
    if not isinstance(baseline, Mapping) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in baseline.values()
    ):
        raise ConfigError(f"{where}.baseline must map metric names to numbers, e.g. {{ accuracy = 0.93 }}")
    columns = raw.get("columns", {})
    if not isinstance(columns, Mapping) or not all(
        isinstance(v, Mapping) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v.values())
        for v in columns.values()
    ):
        raise ConfigError(
            f"{where}.columns must map column names to tables of numbers, e.g. {{ size = {{ min_effect = 0.2 }} }}"
        )
    return DeploymentMonitor(
        reference=ref,
        task=task,
        baseline={k: float(v) for k, v in baseline.items()},
        columns={c: {k: float(x) for k, x in v.items()} for c, v in columns.items()},
    )


def load_monitor_config(settings: Settings) -> MonitorConfig:
    """The ``[monitoring]`` configuration of the project (defaults when there is none).

    Raises:
        ConfigError: a malformed value, naming the table and key.
    """
    from loopml.monitoring.metrics import METRICS

    path = Path(settings.project_dir) / CONFIG_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path} is not valid TOML: {e}") from None
    raw = data.get("monitoring", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: [monitoring] must be a table")
    where = "[monitoring]"
    deployments = raw.get("deployments", {})
    if not isinstance(deployments, Mapping):
        raise ConfigError(f"{where}.deployments must be a table of tables")
    alerts = raw.get("alerts", [])
    if not isinstance(alerts, list):
        raise ConfigError(f"{where}: alerts must be an array of tables ([[monitoring.alerts]])")
    names = frozenset(METRICS)
    rules = tuple(_rule(r, i, names) for i, r in enumerate(alerts))
    dup = sorted({r.name for r in rules if sum(x.name == r.name for x in rules) > 1})
    if dup:
        raise ConfigError(f"[[monitoring.alerts]]: rule names repeat: {dup}")
    return MonitorConfig(
        window=parse_duration(raw.get("window", 3600), f"{where}.window"),
        interval=parse_duration(raw.get("interval", 300), f"{where}.interval"),
        min_rows=int(_number(raw, "min_rows", 30, where, low=1, high=1e9, integral=True)),
        alpha=_number(raw, "alpha", 0.05, where, low=1e-6, high=0.5),
        performance_drop=_number(raw, "performance_drop", 0.05, where, low=0.0, high=1.0),
        deployments={str(k): _deployment(str(k), v) for k, v in deployments.items()},
        alerts=rules,
    )
