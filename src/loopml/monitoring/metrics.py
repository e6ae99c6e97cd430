"""The catalogue of monitored metrics: what each evaluation of a window stores, by name.

Each metric is a time series per deployment (and, for per-column metrics, per
column), stored in the ``monitor_metrics`` records; alert rules name them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["METRICS", "MetricInfo"]


@dataclass(frozen=True)
class MetricInfo:
    description: str
    per_column: bool = False
    unit: str = ""


METRICS: dict[str, MetricInfo] = {
    # data drift of the inputs against the reference
    "drift.share": MetricInfo("share of input columns that drifted (0..1)"),
    "drift.dataset": MetricInfo("1 when the share of drifted columns reaches drift_share, else 0"),
    "drift.column": MetricInfo("a column's drift effect size (KS D, Cramér's V, ...); flag = drifted", per_column=True),
    # input quality
    "quality.missing_rate": MetricInfo(
        "share of missing input values (per column, or over all columns)", per_column=True
    ),
    "quality.out_of_range": MetricInfo(
        "share of rows with a numeric input outside the reference's range", per_column=True
    ),
    "quality.unseen_categories": MetricInfo("share of rows with a category the reference never had", per_column=True),
    "quality.rejected_rate": MetricInfo("share of requests refused as invalid (schema violations, bad values)"),
    # outputs
    "output.drift": MetricInfo(
        "drift effect size of the predictions against the model's predictions on the reference; flag = drifted"
    ),
    "output.mean": MetricInfo("mean prediction (regression) or share of the reference's most frequent predicted "
                              "class (classification)"),
    # service
    "service.requests": MetricInfo("requests answered in the window"),
    "service.throughput": MetricInfo("requests per second", unit="req/s"),
    "service.latency_p50": MetricInfo("median latency", unit="ms"),
    "service.latency_p99": MetricInfo("99th percentile latency", unit="ms"),
    "service.error_rate": MetricInfo("share of requests answered with an error"),
    # performance from feedback labels
    "performance.labelled": MetricInfo("predictions in the window that have a feedback label"),
    "performance.accuracy": MetricInfo("accuracy on labelled predictions (classification)"),
    "performance.f1": MetricInfo("F1 (binary) or macro F1 on labelled predictions (classification)"),
    "performance.rmse": MetricInfo("root mean squared error on labelled predictions (regression)"),
    "performance.mae": MetricInfo("mean absolute error on labelled predictions (regression)"),
    "performance.drop": MetricInfo(
        "how far the main metric fell below its baseline (positive = worse); flag = concept drift"
    ),
    # the model itself
    "model.age_days": MetricInfo("days since the served version was registered", unit="d"),
    "model.staleness_days": MetricInfo(
        "days between the training data version and the newest version of that dataset (0: trained on the newest data)",
        unit="d",
    ),
}
