"""One evaluation of a deployment over a time window of its prediction log.

Measured, each as metrics of the catalogue (:mod:`loopml.monitoring.metrics`):

* data drift of every input column against the fitted reference, and the
  share of drifted columns (:mod:`loopml.monitoring.drift`);
* input quality: missing values, numeric values outside the reference's range,
  categories the reference never had, requests refused as invalid;
* output drift: the predictions against the model's predictions on the reference;
* service: requests, throughput, latency p50/p99, error rate;
* performance from the feedback labels received so far for the window's
  predictions (accuracy and F1, or RMSE and MAE), and how far the main metric
  fell below its baseline (concept drift);
* the model's age, and the staleness of its training data.

Every part copes with what the window has: no traffic, no labels, a column
missing from the log, all-null or constant columns give "not enough data" or
a note, never an exception.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.monitoring.config import DeploymentMonitor, MonitorConfig

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.config import Settings
    from loopml.monitoring.reference import FittedReference
    from loopml.registry.models import ModelVersion

__all__ = ["MetricPoint", "WindowResult", "evaluate_window"]

_DAY_MS = 86_400_000
_REJECTED = ("SIGNATURE_MISMATCH", "INVALID_INPUT", "PAYLOAD_TOO_LARGE")  # the client's fault, not the model's
_HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "rmse": False, "mae": False}


@dataclass(frozen=True)
class MetricPoint:
    metric: str
    value: float | None
    column: str | None = None
    flag: bool | None = None


@dataclass
class WindowResult:
    """What one evaluation found."""

    deployment: str
    window_start: int
    window_end: int
    status: str  # ok | no_data
    rows: int
    points: list[MetricPoint] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def value(self, metric: str, column: str | None = None) -> float | None:
        return next((p.value for p in self.points if p.metric == metric and p.column == column), None)

    def flag(self, metric: str, column: str | None = None) -> bool | None:
        return next((p.flag for p in self.points if p.metric == metric and p.column == column), None)


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _served_version(preds: pa.Table, settings: Settings, deployment: str) -> ModelVersion:
    """The model version that answered most of the window's requests (else the deployment's current one)."""
    import pyarrow.compute as pc

    from loopml.registry import get_registry

    reg = get_registry(settings)
    if preds.num_rows and "model" in preds.column_names:
        counts = pc.value_counts(pc.binary_join_element_wise(preds["model"], pc.cast(preds["version"], "string"),
                                                             "/")).to_pylist()
        best = max(counts, key=lambda c: c["counts"])["values"]
        name, version = best.rsplit("/", 1)
        return reg.get_version(name, int(version))
    from loopml.serving.deployments import get_deployments

    try:
        dep = get_deployments(settings).get(deployment)
        live = dep.live()[0]
        return reg.get_version(live.model, live.version)
    except Exception:
        return reg.resolve(f"models:/{deployment}/latest")


def _drift(ref: FittedReference, inputs: pa.Table, cfg: MonitorConfig, mon: DeploymentMonitor,
           result: WindowResult) -> None:
    from loopml.monitoring.drift import DriftConfig, detect_drift

    config = DriftConfig(alpha=cfg.alpha, min_rows=cfg.min_rows, column_thresholds=dict(mon.columns))
    report = detect_drift(ref.inputs, inputs, config=config)
    verdicts = [c for c in report.columns.values() if c.drifted is not None]
    share = _finite(report.share_drifted) if verdicts else None
    result.points.append(MetricPoint("drift.share", share, flag=report.dataset_drift if verdicts else None))
    result.points.append(MetricPoint("drift.dataset", None if not verdicts else float(report.dataset_drift)))
    for name, c in report.columns.items():
        result.points.append(MetricPoint("drift.column", _finite(c.effect_size), column=name, flag=c.drifted))
    result.summary["drift"] = report.to_dict()


def _quality(ref: FittedReference, inputs: pa.Table, result: WindowResult) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = inputs.num_rows
    total_missing, cells = 0, 0
    quality: dict[str, Any] = {}
    for name, cref in ref.inputs.columns.items():
        if name not in inputs.column_names:
            result.notes.append(f"input column {name!r} of the reference is missing from the prediction log")
            continue
        col = inputs[name]
        missing = col.null_count
        if pa.types.is_floating(col.type):
            missing += int(pc.sum(pc.is_nan(col.fill_null(0.0))).as_py() or 0)
        total_missing += missing
        cells += n
        entry: dict[str, Any] = {"missing_rate": missing / n if n else None}
        result.points.append(MetricPoint("quality.missing_rate", entry["missing_rate"], column=name))
        kind = getattr(cref, "kind", None)
        if kind == "numeric" and (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            lo, hi = getattr(cref, "min", None), getattr(cref, "max", None)
            values = col.to_numpy(zero_copy_only=False).astype(float)
            outside = int(np.count_nonzero((values < lo) | (values > hi))) if lo is not None and hi is not None else 0
            entry["out_of_range"] = outside / n if n else None
            # new i.i.d. values fall outside the min..max of m reference values with probability 2/(m+1):
            # flag only a share clearly above that (3 binomial standard deviations)
            expected = 2 / (cref.count + 1) if cref.count else 0.0
            limit = expected + 3 * math.sqrt(expected * (1 - expected) / n) if n else 0.0
            entry["out_of_range_expected"] = expected
            result.points.append(MetricPoint("quality.out_of_range", entry["out_of_range"], column=name,
                                             flag=(outside / n > limit) if n else None))
        elif kind == "categorical":
            known = set(getattr(cref, "categories", ()) or ())
            if known and "__other__" not in known:  # with a catch-all bucket, "unseen" cannot be told
                counts = pc.value_counts(pc.cast(col, pa.string()) if not pa.types.is_string(col.type) else col)
                unseen = {v["values"]: v["counts"] for v in counts.to_pylist()
                          if v["values"] is not None and v["values"] not in known}
                share = sum(unseen.values()) / n if n else None
                entry["unseen_categories"] = share
                entry["unseen_examples"] = sorted(unseen, key=lambda k: -unseen[k])[:5]
                result.points.append(MetricPoint("quality.unseen_categories", share, column=name,
                                                 flag=bool(unseen)))
        quality[name] = entry
    overall = total_missing / cells if cells else None
    result.points.append(MetricPoint("quality.missing_rate", overall))
    result.summary["quality"] = {"columns": quality, "missing_rate": overall}


def _outputs(ref: FittedReference, preds: pa.Table, cfg: MonitorConfig, result: WindowResult) -> None:
    import pyarrow as pa

    from loopml.monitoring.drift import DriftConfig, detect_drift

    values = preds["prediction"]
    if pa.types.is_list(values.type) or pa.types.is_struct(values.type):
        result.notes.append("multi-output predictions: output drift is not measured")
        return
    arr = values.to_numpy(zero_copy_only=False)
    if ref.task == "classification":
        arr = arr.astype(str)
        classes, counts = np.unique(arr, return_counts=True)
        shares = {str(c): float(k / counts.sum()) for c, k in zip(classes, counts, strict=True)}
        # output.mean follows one class across windows: the reference's most frequent prediction
        ref_col = ref.outputs.columns.get("prediction") if ref.outputs is not None else None
        pinned = next(iter(ref_col.categories), None) if ref_col is not None and ref_col.categories else None
        pinned = pinned if pinned is not None else (str(classes[0]) if classes.size else None)
        first = shares.get(pinned, 0.0) if pinned is not None and counts.size else None
        result.summary["outputs"] = {"class_share": shares, "mean_class": pinned}
    else:
        arr = arr.astype(float)
        first = float(np.nanmean(arr)) if arr.size else None
        result.summary["outputs"] = {"mean": first}
    result.points.append(MetricPoint("output.mean", _finite(first)))
    if ref.outputs is None:
        result.notes.append("no output reference (the model could not predict on the reference data)")
        return
    report = detect_drift(ref.outputs, pa.table({"prediction": pa.array(arr)}),
                          config=DriftConfig(alpha=cfg.alpha, min_rows=cfg.min_rows))
    c = report.columns.get("prediction")
    if c is not None:
        result.points.append(MetricPoint("output.drift", _finite(c.effect_size), flag=c.drifted))
        result.summary["outputs"]["drift"] = {"method": c.method, "effect_size": c.effect_size, "p_value": c.p_value,
                                              "drifted": c.drifted, "reason": c.reason, "hist": c.hist}


def _service(preds: pa.Table, errors: pa.Table, start: int, end: int, result: WindowResult) -> None:
    import pyarrow.compute as pc

    live = preds
    if "role" in preds.column_names:
        live = preds.filter(pc.equal(preds["role"], "live"))
    firsts = live.filter(pc.equal(live["row"], 0)) if "row" in live.column_names else live
    requests = firsts.num_rows
    failed = errors.num_rows
    rejected = int(pc.sum(pc.is_in(errors["error_code"], value_set=_pa_strings(_REJECTED))).as_py() or 0) \
        if failed else 0
    seconds = max((end - start) / 1000, 1e-9)
    lat = firsts["latency_ms"].to_numpy(zero_copy_only=False) if requests else np.array([])
    p50 = float(np.percentile(lat, 50)) if lat.size else None
    p99 = float(np.percentile(lat, 99)) if lat.size else None
    total = requests + failed
    error_rate = failed / total if total else None
    result.points += [
        MetricPoint("service.requests", float(requests)),
        MetricPoint("service.throughput", requests / seconds),
        MetricPoint("service.latency_p50", p50),
        MetricPoint("service.latency_p99", p99),
        MetricPoint("service.error_rate", error_rate),
        MetricPoint("quality.rejected_rate", rejected / total if total else None),
    ]
    result.summary["service"] = {"requests": requests, "errors": failed, "rejected": rejected,
                                 "throughput": requests / seconds, "latency_p50_ms": p50, "latency_p99_ms": p99,
                                 "error_rate": error_rate}


def _pa_strings(values: tuple[str, ...]) -> Any:
    import pyarrow as pa

    return pa.array(list(values), type=pa.string())


def _classification(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    accuracy = float(np.mean(y == p))
    labels = np.union1d(y, p)
    f1s = []
    for c in labels:
        tp = np.count_nonzero((p == c) & (y == c))
        fp = np.count_nonzero((p == c) & (y != c))
        fn = np.count_nonzero((p != c) & (y == c))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    if len(labels) == 2:  # binary: F1 of the positive (larger) label, as scikit-learn's default
        f1 = f1s[1]
    else:
        f1 = float(np.mean(f1s)) if f1s else math.nan
    return {"accuracy": accuracy, "f1": float(f1)}


def _performance(preds: pa.Table, labels: pa.Table, ref: FittedReference, baseline: dict[str, float],
                 cfg: MonitorConfig, result: WindowResult) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    summary: dict[str, Any] = {"task": ref.task}
    result.summary["performance"] = summary
    if "role" in preds.column_names:
        preds = preds.filter(pc.equal(preds["role"], "live"))
    if not labels.num_rows or not preds.num_rows:
        result.points.append(MetricPoint("performance.labelled", 0.0))
        summary["note"] = "no feedback labels for this window yet"
        return
    from loopml.serving.predlog import match_labels

    joined = match_labels(preds, labels, join_type="inner")
    n = joined.num_rows
    result.points.append(MetricPoint("performance.labelled", float(n)))
    summary["labelled"] = n
    unknown = labels.num_rows - n
    if unknown > 0:
        summary["unmatched_labels"] = unknown  # labels for requests outside the window, or for unknown request ids
    if n < cfg.min_rows:
        summary["note"] = f"not enough labelled predictions: {n} < {cfg.min_rows}"
        return
    at = joined["__at"].to_numpy()
    y_raw = joined["label"].to_numpy(zero_copy_only=False)
    p_raw = preds["prediction"].take(pa.array(at)).to_numpy(zero_copy_only=False)
    values: dict[str, float]
    if ref.task == "classification":
        values = _classification(y_raw.astype(str), p_raw.astype(str))
        main = "accuracy"
    else:
        try:
            y = y_raw.astype(float)
        except (TypeError, ValueError):
            summary["note"] = "the labels are not numbers, but the model is a regression; check what /feedback gets"
            return
        err = p_raw.astype(float) - y
        ok = np.isfinite(err)
        if not ok.any():
            summary["note"] = "no finite label/prediction pairs"
            return
        values = {"rmse": float(np.sqrt(np.mean(err[ok] ** 2))), "mae": float(np.mean(np.abs(err[ok])))}
        main = "rmse"
    for k, v in values.items():
        result.points.append(MetricPoint(f"performance.{k}", _finite(v)))
    summary.update(values)
    base = baseline.get(main)
    if base is not None:
        drop = (base - values[main]) if _HIGHER_IS_BETTER[main] else (values[main] - base) / max(abs(base), 1e-12)
        concept = drop > cfg.performance_drop
        result.points.append(MetricPoint("performance.drop", _finite(drop), flag=concept))
        summary.update({"baseline": {main: base}, "drop": drop, "concept_drift": concept})
    else:
        summary["note"] = f"no baseline {main} (log it on the model's run, or set [monitoring.deployments.<name>] baseline)"


def _baseline(mv: ModelVersion, mon: DeploymentMonitor, settings: Settings) -> dict[str, float]:
    if mon.baseline:
        return dict(mon.baseline)
    if mv.run_id is None:
        return {}
    from loopml.tracking import get_tracking

    try:
        run = get_tracking(settings).get_run(mv.run_id)
    except Exception:
        return {}
    found: dict[str, float] = {}
    for metric in _HIGHER_IS_BETTER:
        for key in (metric, f"val_{metric}", f"validation_{metric}", f"test_{metric}"):
            m = run.metrics.get(key)
            if m is not None:
                found[metric] = float(m.value)
                break
    return found


def _age(mv: ModelVersion, ref_uri: str | None, settings: Settings, now: int, result: WindowResult) -> None:
    result.points.append(MetricPoint("model.age_days", (now - mv.created_at) / _DAY_MS))
    result.summary["model"] = {"uri": mv.uri, "registered_at": mv.created_at}
    if ref_uri is None:
        return
    from loopml.data import get_data

    try:
        data = get_data(settings)
        dv = data.resolve(ref_uri)
        newest = data.list_versions(dv.name)[-1]
    except Exception:
        return
    staleness = max(0.0, (newest.created_at - dv.created_at) / _DAY_MS)
    result.points.append(MetricPoint("model.staleness_days", staleness))
    result.summary["model"].update({"training_data": f"datasets:/{dv.name}/{dv.version}",
                                    "newest_data": f"datasets:/{newest.name}/{newest.version}",
                                    "staleness_days": staleness})


def evaluate_window(deployment: str, start_ms: int, end_ms: int, *, settings: Settings,
                    config: MonitorConfig) -> WindowResult:
    """Evaluate ``[start_ms, end_ms)`` of ``deployment``'s prediction log."""
    from loopml.monitoring.reference import get_reference
    from loopml.serving.predlog import read_errors, read_feedback, read_predictions

    mon = config.for_deployment(deployment)
    preds = read_predictions(deployment, since_ms=start_ms, until_ms=end_ms, settings=settings)
    errors = read_errors(deployment, since_ms=start_ms, until_ms=end_ms, settings=settings)
    result = WindowResult(deployment, start_ms, end_ms, "ok" if preds.num_rows else "no_data", preds.num_rows)
    _service(preds, errors, start_ms, end_ms, result)
    try:
        mv = _served_version(preds, settings, deployment)
    except Exception as e:
        result.notes.append(f"no model version to compare against: {e}")
        result.summary["notes"] = result.notes
        return result
    ref = None
    try:
        ref = get_reference(mv, settings, dataset=mon.reference, task=mon.task)
    except Exception as e:
        result.notes.append(f"no reference: {e}")
    _age(mv, ref.dataset if ref else None, settings, int(time.time() * 1000), result)
    if preds.num_rows and ref is not None:
        live = preds
        if "role" in preds.column_names:
            import pyarrow.compute as pc

            live = preds.filter(pc.equal(preds["role"], "live"))
        if "inputs" in live.column_names:
            import pyarrow as pa

            struct = live["inputs"].combine_chunks()
            inputs = pa.Table.from_arrays(struct.flatten(), names=[f.name for f in struct.type])
            _drift(ref, inputs, config, mon, result)
            _quality(ref, inputs, result)
        else:
            result.notes.append("the prediction log has no inputs")
        _outputs(ref, live, config, result)
        labels = read_feedback(deployment, since_ms=start_ms, settings=settings)
        _performance(live, labels, ref, _baseline(mv, mon, settings), config, result)
    elif not preds.num_rows:
        result.notes.append("no traffic in this window: not enough data for drift, quality or performance")
    result.summary["notes"] = result.notes
    return result
