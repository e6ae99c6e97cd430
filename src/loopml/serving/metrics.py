"""Prometheus metrics of a prediction server (``GET /metrics``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from collections.abc import Iterator

    from loopml.serving.predlog import PredictionLog

__all__ = ["CONTENT_TYPE", "ServingMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class _LogCollector:
    def __init__(self, log: PredictionLog) -> None:
        self.log = log

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, doc, value in (
            ("loopml_prediction_log_buffered_rows", "Rows waiting to be written to the prediction log.",
             self.log.buffered_rows),
            ("loopml_prediction_log_written_rows", "Rows written to the prediction log since start.",
             self.log.rows_written),
            ("loopml_prediction_log_dropped_rows", "Rows dropped because the prediction log buffer was full.",
             self.log.dropped),
        ):
            yield GaugeMetricFamily(name, doc, value=float(value))


class ServingMetrics:
    """The server's counters, gauges and histograms, in their own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("loopml_requests", "Requests answered, by endpoint and status code.",
                                ["deployment", "endpoint", "code"], registry=r)
        self.errors = Counter("loopml_request_errors", "Requests answered with an error, by error code.",
                              ["deployment", "endpoint", "error_code"], registry=r)
        self.latency = Histogram("loopml_request_latency_seconds", "Time from request to response.",
                                 ["deployment", "endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("loopml_requests_in_flight", "Requests being processed now.", registry=r)
        self.batch_rows = Histogram("loopml_batch_rows", "Rows per model call (micro-batching).",
                                    ["model", "version"], buckets=_BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("loopml_batch_requests", "Requests per model call (micro-batching).",
                                        ["model", "version"], buckets=_BATCH_BUCKETS, registry=r)
        self.predict_seconds = Histogram("loopml_predict_seconds", "Time of one model call.", ["model", "version"],
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("loopml_predictions", "Rows predicted, by variant and role.",
                                   ["deployment", "variant", "model", "version", "role"], registry=r)
        self.model_info = Gauge("loopml_model_info", "Model versions served now (value 1), by variant.",
                                ["deployment", "variant", "model", "version", "role", "weight"], registry=r)
        self.shadow_rows = Counter("loopml_shadow_rows", "Shadow predictions compared with the live answer.",
                                   ["deployment", "variant", "result"], registry=r)
        self.revision = Gauge("loopml_deployment_revision", "Deployment configuration revision being served.",
                              ["deployment"], registry=r)

    def watch_log(self, log: PredictionLog) -> None:
        self.registry.register(_LogCollector(log))

    def render(self) -> bytes:
        return generate_latest(self.registry)
