"""Monitoring end to end on real data: shifts injected into scikit-learn's bundled datasets are found by the
right metric, alerts fire with hysteresis, de-duplication and cool-down, and an alert starts a pipeline."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression

import loopml
import loopml.data as data
import loopml.registry as reg
from loopml.config import Settings
from loopml.errors import ConfigError
from loopml.monitoring.config import load_monitor_config
from loopml.monitoring.service import get_monitor
from loopml.serving.payload import Input
from loopml.serving.predlog import PredictionLog
from loopml.storage import get_backend

HOUR = 3_600_000
T0 = 1_700_000_000_000  # windows are laid out from here, one hour each


def setup_model(settings: Settings, X: pd.DataFrame, y: pd.Series, model: Any, name: str) -> tuple[Any, int]:
    """Register the training data, train in a tracked run that logs it, register the model."""
    dv = data.register(name, X.assign(target=y.to_numpy()), settings=settings)
    with loopml.start_run(name, settings=settings) as run:
        run.log_dataset(f"datasets:/{name}/{dv.version}")
        fitted = model.fit(X, y)
        pred = fitted.predict(X)
        if isinstance(model, LinearRegression):
            run.log_metric("rmse", float(np.sqrt(np.mean((pred - y.to_numpy()) ** 2))))
        else:
            run.log_metric("accuracy", float(np.mean(pred == y.to_numpy())))
        mv = reg.register(fitted, name, input_example=X.head(5), settings=settings)
    return fitted, mv.version


def log_window(settings: Settings, deployment: str, model: Any, version: int, X: pd.DataFrame, labels: Any,
               window: int, *, per_request: int = 5) -> None:
    """Write one hour of prediction-log rows (and their labels) as a server would."""
    log = PredictionLog(get_backend(settings).blobs)
    start = T0 + window * HOUR
    cols = tuple(X.columns)
    for i in range(0, len(X), per_request):
        chunk = X.iloc[i:i + per_request]
        arr = chunk.to_numpy(dtype=float)
        y = model.predict(chunk)
        rid = f"w{window}-r{i}"
        ts = start + int(i / len(X) * (HOUR - 1000))
        log.log(deployment=deployment, variant="primary", role="live", model=deployment, version=version,
                request_id=rid, ts_ms=ts, latency_ms=1.0 + (i % 7), x=Input(n=len(chunk), array=arr, columns=cols),
                y=np.asarray(y))
        if labels is not None:
            log.feedback(deployment=deployment, request_id=rid, labels=list(np.asarray(labels)[i:i + per_request]),
                         ts_ms=ts + 1000)
    log.close()


def run_window(settings: Settings, deployment: str, window: int) -> Any:
    result, alerts = get_monitor(settings).run(deployment, end_ms=T0 + (window + 1) * HOUR, window_s=3600)
    return result


@pytest.fixture
def cancer(settings: Settings) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series, Any, int]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    train, live = idx[:300], idx[300:]
    model, version = setup_model(settings, X.iloc[train], y.iloc[train], LogisticRegression(max_iter=5000), "cancer")
    return X.iloc[train], y.iloc[train], X.iloc[live], y.iloc[live], model, version


def test_covariate_shift_is_found_on_the_shifted_columns_only(settings: Settings, cancer: Any) -> None:
    _, _, X_live, y_live, model, version = cancer
    log_window(settings, "cancer", model, version, X_live, y_live, 0)
    calm = run_window(settings, "cancer", 0)
    assert calm.status == "ok" and calm.rows == len(X_live)
    assert calm.summary["drift"]["drifted_columns"] == []
    shifted = X_live.copy()
    for col in ("mean radius", "worst texture"):
        shifted[col] = shifted[col] + shifted[col].std()
    log_window(settings, "cancer", model, version, shifted, y_live, 1)
    moved = run_window(settings, "cancer", 1)
    assert sorted(moved.summary["drift"]["drifted_columns"]) == ["mean radius", "worst texture"]
    assert moved.flag("drift.column", "mean radius") is True and moved.flag("drift.column", "mean area") is False
    series = get_monitor(settings).series("cancer", "drift.column", "mean radius")
    assert [p["flag"] for p in series] == [False, True]


def test_label_shift_moves_the_output_distribution(settings: Settings, cancer: Any) -> None:
    _, _, X_live, y_live, model, version = cancer
    # keep mostly malignant cases (class 0): the class balance of the traffic changes
    skewed = X_live[y_live.to_numpy() == 0]
    skewed = pd.concat([skewed, X_live[y_live.to_numpy() == 1].head(10)])
    log_window(settings, "cancer", model, version, skewed, None, 0)
    result = run_window(settings, "cancer", 0)
    assert result.flag("output.drift") is True
    shares = result.summary["outputs"]["class_share"]
    assert shares["0"] > 0.7


def test_concept_drift_shows_as_a_performance_drop_without_input_drift(settings: Settings, cancer: Any) -> None:
    _, _, X_live, y_live, model, version = cancer
    log_window(settings, "cancer", model, version, X_live, y_live, 0)
    ok = run_window(settings, "cancer", 0)
    assert ok.value("performance.accuracy") > 0.9 and ok.flag("performance.drop") is False
    flipped = 1 - y_live.to_numpy()  # the relation between inputs and truth reversed
    log_window(settings, "cancer", model, version, X_live, flipped, 1)
    bad = run_window(settings, "cancer", 1)
    assert bad.summary["drift"]["drifted_columns"] == []
    assert bad.value("performance.accuracy") < 0.2
    assert bad.flag("performance.drop") is True and bad.summary["performance"]["concept_drift"] is True


def test_regression_performance_and_wrong_label_types(settings: Settings) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model, version = setup_model(settings, X.iloc[:300], y.iloc[:300], LinearRegression(), "diabetes")
    log_window(settings, "diabetes", model, version, X.iloc[300:], y.iloc[300:], 0)
    result = run_window(settings, "diabetes", 0)
    assert result.value("performance.rmse") is not None and result.value("performance.mae") is not None
    assert result.summary["performance"]["task"] == "regression"
    log_window(settings, "diabetes", model, version, X.iloc[300:], ["high"] * len(X.iloc[300:]), 1)
    result = run_window(settings, "diabetes", 1)
    assert "labels are not numbers" in result.summary["performance"]["note"]


def test_windows_without_traffic_unknown_feedback_and_missing_columns(settings: Settings, cancer: Any) -> None:
    _, _, X_live, y_live, model, version = cancer
    empty = run_window(settings, "cancer", 5)
    assert empty.status == "no_data" and empty.value("service.requests") == 0.0
    assert any("no traffic" in n for n in empty.notes)
    # feedback for request ids nobody served, and a log without one of the model's columns
    log = PredictionLog(get_backend(settings).blobs)
    log.feedback(deployment="cancer", request_id="never-served", labels=[1], ts_ms=T0 + 6 * HOUR + 5)
    narrow = X_live.drop(columns=["mean radius"])
    log.log(deployment="cancer", variant="primary", role="live", model="cancer", version=version, request_id="x1",
            ts_ms=T0 + 6 * HOUR + 10, latency_ms=1.0,
            x=Input(n=len(narrow), array=narrow.to_numpy(dtype=float), columns=tuple(narrow.columns)),
            y=np.zeros(len(narrow), dtype=int))
    log.close()
    result = run_window(settings, "cancer", 6)
    assert result.status == "ok"
    assert any("'mean radius'" in n and "missing" in n for n in result.notes)
    assert result.summary["drift"]["columns"]["mean radius"]["drifted"] is None
    assert result.summary["performance"]["labelled"] == 0


def test_all_null_constant_and_single_category_inputs_do_not_crash(settings: Settings) -> None:
    X, y = load_wine(return_X_y=True, as_frame=True)
    model, version = setup_model(settings, X, y, LogisticRegression(max_iter=5000), "wine")
    odd = X.copy()
    odd["alcohol"] = np.nan
    odd["ash"] = 2.0
    log_window(settings, "wine", model, version, X, y, 0)  # a normal window first
    log = PredictionLog(get_backend(settings).blobs)
    log.log(deployment="wine", variant="primary", role="live", model="wine", version=version, request_id="odd",
            ts_ms=T0 + HOUR + 5, latency_ms=1.0,
            x=Input(n=len(odd), array=odd.to_numpy(dtype=float), columns=tuple(odd.columns)),
            y=np.zeros(len(odd), dtype=int))  # one class only
    log.close()
    result = run_window(settings, "wine", 1)
    cols = result.summary["drift"]["columns"]
    assert cols["alcohol"]["drifted"] is None and cols["alcohol"]["null_share"] == 1.0
    assert result.value("quality.missing_rate", "alcohol") == 1.0
    assert cols["ash"]["drifted"] is True  # a constant where the reference varied
    assert result.flag("output.drift") is True


def write_config(settings: Settings, text: str) -> None:
    (settings.project_dir / "loopml.toml").write_text(text)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_alerts_need_k_of_n_windows_fire_once_and_resolve(settings: Settings, cancer: Any,
                                                          webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    write_config(settings, f"""
[[monitoring.alerts]]
name = "radius-drift"
metric = "drift.column"
column = "mean radius"
op = ">="
threshold = 0.3
hold = "2/3"
cooldown = "30d"
actions = ["log", "event", "webhook:{url}"]
""")
    _, _, X_live, y_live, model, version = cancer
    shifted = X_live.copy()
    shifted["mean radius"] = shifted["mean radius"] * 1.5
    monitor = get_monitor(settings)
    states = []
    for w, frame in enumerate([X_live, shifted, X_live, shifted, shifted, X_live, X_live]):
        log_window(settings, "cancer", model, version, frame, y_live, w)
        run_window(settings, "cancer", w)
        firing = monitor.alerts("cancer", state="firing")
        states.append(len(firing))
    # window 1: one breach of the 2 needed -> quiet; 3: 2 of the last 3 -> fires; 4: still firing, no repeat;
    # 5: calm, but 2 of the last 3 still breached -> keeps firing (hysteresis); 6: 1 of 3 -> resolved
    assert states == [0, 0, 0, 1, 1, 1, 0]
    every = monitor.alerts("cancer")
    assert len(every) == 1 and every[0].state == "resolved"
    assert [r["kind"] for r in received] == ["alert.raised", "alert.resolved"]  # once each, no repeats
    assert received[0]["rule"] == "radius-drift" and received[0]["column"] == "mean radius"
    from loopml.storage.events import read_events

    kinds = [e.kind for e in read_events(get_backend(settings).metadata, subject="cancer")
             if e.kind.startswith("alert.")]
    assert kinds == ["alert.raised", "alert.resolved"]


def test_an_alert_event_starts_the_retraining_pipeline(settings: Settings, cancer: Any) -> None:
    from loopml.pipelines import Pipeline, get_pipelines, step
    from loopml.pipelines.triggers import Scheduler, get_triggers

    write_config(settings, """
[[monitoring.alerts]]
name = "decay"
metric = "performance.drop"
op = ">"
threshold = 0.1
actions = ["event"]
""")

    @step
    def retrain(event_subject: str) -> str:
        return f"retrained {event_subject}"

    pipe = Pipeline("retrain-cancer", steps=[retrain], params={"event_subject": ""})
    get_triggers(settings).add("on-decay", "retrain-cancer", "event", "alert.raised")
    scheduler = Scheduler(settings, pipelines={"retrain-cancer": pipe})
    _, _, X_live, y_live, model, version = cancer
    log_window(settings, "cancer", model, version, X_live, 1 - y_live.to_numpy(), 0)
    run_window(settings, "cancer", 0)
    fired = scheduler.run_once()
    assert len(fired) == 1
    run = get_pipelines(settings).get_run(fired[0].run_id or "")
    assert run.status == "finished" and run.params["event_subject"] == "cancer"
    assert scheduler.run_once() == []  # one alert, one retraining


def test_bad_monitoring_config_is_refused_naming_the_key(settings: Settings) -> None:
    for text, needle in [
        ('[monitoring]\nwindow = "soon"\n', "window"),
        ('[[monitoring.alerts]]\nname = "x"\nmetric = "drift.nope"\nthreshold = 1\n', "drift.nope"),
        ('[[monitoring.alerts]]\nname = "x"\nmetric = "drift.share"\nthreshold = 1\nhold = "3/2"\n', "hold"),
        ('[[monitoring.alerts]]\nname = "x"\nmetric = "drift.share"\nthreshold = 1\nactions = ["email"]\n', "email"),
        ('[monitoring.deployments.web]\nreference = "models:/x/1"\n', "datasets:/"),
    ]:
        write_config(settings, text)
        with pytest.raises(ConfigError, match=needle):
            load_monitor_config(settings)


def test_the_watch_daemon_survives_a_failing_deployment(settings: Settings, cancer: Any) -> None:
    _, _, X_live, y_live, model, version = cancer
    log_window(settings, "cancer", model, version, X_live, y_live, 0)
    seen: list[str] = []
    get_monitor(settings).watch(["ghost", "cancer"], once=True, on_result=lambda r, a: seen.append(r.deployment))
    assert "cancer" in seen


def test_two_projects_with_the_same_names_keep_their_own_references(tmp_path: Any) -> None:
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = X[["alcohol", "malic_acid", "ash", "magnesium"]]
    results = []
    for i, scale in enumerate((1.0, 3.0)):
        s = Settings.for_dir(tmp_path / f"p{i}")
        model, version = setup_model(s, X * scale, y, LogisticRegression(max_iter=5000), "cancer")
        log_window(s, "cancer", model, version, X * 3.0, None, 0)
        results.append(run_window(s, "cancer", 0))
    assert results[0].summary["drift"]["drifted_columns"]  # x3 data against a x1 reference: drift
    assert results[1].summary["drift"]["drifted_columns"] == []  # against its own x3 reference: none
