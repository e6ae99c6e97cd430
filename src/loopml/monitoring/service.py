"""Monitoring a deployment: evaluate windows, store the results as time series, raise alerts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from loopml.config import Settings
from loopml.core import now_ms
from loopml.errors import InvalidInputError, NotFoundError
from loopml.monitoring.alerts import Alert, apply_rules
from loopml.monitoring.config import MonitorConfig, load_monitor_config
from loopml.monitoring.evaluate import WindowResult, evaluate_window
from loopml.storage import get_service
from loopml.storage.base import Backend

__all__ = ["MonitorService", "get_monitor"]

logger = logging.getLogger("loopml.monitoring")


class MonitorService:
    """Evaluations, metric series and alerts over one :class:`~loopml.storage.Backend`."""

    def __init__(self, backend: Backend) -> None:
        from loopml.monitoring._sql import SqlMonitorRepository

        self.backend = backend
        self.repo = SqlMonitorRepository(backend.metadata)

    def config(self) -> MonitorConfig:
        return load_monitor_config(self.backend.settings)

    def run(self, deployment: str, *, end_ms: int | None = None, window_s: float | None = None,
            config: MonitorConfig | None = None) -> tuple[WindowResult, list[Alert]]:
        """Evaluate the window ending at ``end_ms`` (default: now), store it, apply the alert rules.

        Returns:
            The evaluation and the alerts that fired or resolved because of it.

        Raises:
            InvalidInputError: a bad window.
            NotFoundError: no deployment, model or prediction log has that name.
        """
        config = config or self.config()
        end = end_ms if end_ms is not None else now_ms()
        window = window_s if window_s is not None else config.window
        if window <= 0:
            raise InvalidInputError(f"the window must be longer than zero, got {window} s")
        start = end - int(window * 1000)
        result = evaluate_window(deployment, start, end, settings=self.backend.settings, config=config)
        if result.status == "no_data" and not self._exists(deployment, config):
            known = sorted(set(self._monitored(config)) | set(self.repo.deployments()))
            raise NotFoundError(f"nothing to monitor called {deployment!r}: no deployment, model or prediction log "
                                f"has that name; known: {', '.join(known) or 'none yet'}", deployment=deployment)
        self.repo.record(result, now_ms())
        # alerts are dated by the window they judge (a backfill dates them in the past, like its windows)
        alerts = apply_rules(config.alerts, deployment, self.repo, self.backend.metadata, now=end)
        return result, alerts

    def _exists(self, name: str, config: MonitorConfig) -> bool:
        """Is ``name`` a deployment, a registered model, a configured deployment or a prediction log?"""
        from loopml.errors import NotFoundError as Missing
        from loopml.registry import get_registry

        if name in config.deployments or name in self.repo.deployments():
            return True
        if any(True for _ in self.backend.blobs.list(f"predictions/{name}")):
            return True
        try:
            from loopml.serving.deployments import get_deployments

            get_deployments(self.backend.settings).get(name)
            return True
        except Missing:
            pass
        try:
            get_registry(self.backend.settings).get_model(name)
            return True
        except Missing:
            return False

    def backfill(self, deployment: str, *, start_ms: int, end_ms: int, window_s: float | None = None,
                 config: MonitorConfig | None = None,
                 progress: Callable[[int, int], None] | None = None) -> list[tuple[WindowResult, list[Alert]]]:
        """Evaluate consecutive windows from ``start_ms`` to ``end_ms`` (e.g. to see a history at once)."""
        config = config or self.config()
        window = window_s if window_s is not None else config.window
        step = int(window * 1000)
        if step <= 0 or end_ms <= start_ms:
            raise InvalidInputError("backfill needs start < end and a window longer than zero")
        ends = list(range(start_ms + step, end_ms + 1, step)) or [end_ms]
        out = []
        for i, end in enumerate(ends):
            out.append(self.run(deployment, end_ms=end, window_s=window, config=config))
            if progress:
                progress(i + 1, len(ends))
        return out

    def watch(self, deployments: list[str] | None = None, *, interval_s: float | None = None,
              stop: threading.Event | None = None, on_result: Callable[[WindowResult, list[Alert]], Any] | None = None,
              once: bool = False) -> None:
        """Evaluate every ``interval_s`` until ``stop`` is set; a failing evaluation is logged, never fatal."""
        stop = stop or threading.Event()
        while not stop.is_set():
            config = self.config()
            names = deployments or self._monitored(config)
            started = time.monotonic()
            for name in names:
                try:
                    result, alerts = self.run(name, config=config)
                except Exception as e:  # the daemon keeps going; the next interval retries
                    logger.error("monitoring %s failed: %s: %s", name, type(e).__name__, e)
                    continue
                if on_result is not None:
                    on_result(result, alerts)
            if once:
                return
            interval = interval_s if interval_s is not None else config.interval
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def _monitored(self, config: MonitorConfig) -> list[str]:
        from loopml.serving.deployments import get_deployments

        names = set(config.deployments)
        names.update(d.name for d in get_deployments(self.backend.settings).list())
        return sorted(names)

    # -- reading ---------------------------------------------------------------------------

    def series(self, deployment: str, metric: str, column: str | None = None, *,
               since: int | None = None) -> list[dict[str, Any]]:
        return self.repo.series(deployment, metric, column, since=since)

    def runs(self, deployment: str, limit: int = 50) -> list[dict[str, Any]]:
        return self.repo.runs(deployment, limit)

    def alerts(self, deployment: str | None = None, *, state: str | None = None) -> list[Alert]:
        return self.repo.alerts(deployment, state=state)


def get_monitor(settings: Settings | None = None) -> MonitorService:
    """The process-wide :class:`MonitorService` for ``settings`` (default: the project's)."""
    return get_service("monitor", MonitorService, settings)
