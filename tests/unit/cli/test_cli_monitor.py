"""``loopml monitor run / history / alerts / metrics / watch`` against a real project with a logged window."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from typer.testing import Result

import loopml
import loopml.data as data
import loopml.registry as reg
from loopml.config import Settings
from loopml.core import now_ms
from loopml.serving.payload import Input
from loopml.serving.predlog import PredictionLog
from loopml.storage import get_backend

Cli = Callable[..., Result]


@pytest.fixture
def logged(project_settings: Settings) -> None:
    """A model trained on half the data, and the other half (one column shifted) served in the last hour."""
    s = project_settings
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    train, live = X.iloc[::2], X.iloc[1::2].copy()
    dv = data.register("cancer", train.assign(target=y.iloc[::2].to_numpy()), settings=s)
    with loopml.start_run("cancer", settings=s) as run:
        run.log_dataset(f"datasets:/cancer/{dv.version}")
        model = LogisticRegression(max_iter=5000).fit(train, y.iloc[::2])
        run.log_metric("accuracy", 0.95)
        mv = reg.register(model, "cancer", input_example=train.head(5), settings=s)
    live["mean radius"] = live["mean radius"] * 1.4
    log = PredictionLog(get_backend(s).blobs)
    start = now_ms() - 1_800_000
    for i in range(0, len(live), 5):
        chunk = live.iloc[i:i + 5]
        log.log(deployment="cancer", variant="primary", role="live", model="cancer", version=mv.version,
                request_id=f"r{i}", ts_ms=start + i * 1000, latency_ms=2.0,
                x=Input(n=len(chunk), array=chunk.to_numpy(dtype=float), columns=tuple(chunk.columns)),
                y=np.asarray(model.predict(chunk)))
        log.feedback(deployment="cancer", request_id=f"r{i}", labels=y.iloc[1::2].iloc[i:i + 5].tolist(),
                     ts_ms=start + i * 1000 + 10)
    log.close()


def test_run_shows_drift_quality_service_and_performance(cli: Cli, logged: None) -> None:
    res = cli("monitor", "run", "cancer")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "mean radius" in out and "drifted" in out
    assert "accuracy" in out and "latency p50 / p99" in out and "drifted columns" in out
    hist = cli("monitor", "history", "cancer", "drift.column", "--column", "mean radius")
    assert hist.exit_code == 0 and "True" in hist.output


def test_alerts_from_the_config_and_the_catalogue(cli: Cli, logged: None, project_settings: Settings) -> None:
    cfg = project_settings.project_dir / "loopml.toml"
    cfg.write_text(cfg.read_text() + '''
[[monitoring.alerts]]
name = "radius"
metric = "drift.column"
column = "mean radius"
op = ">="
threshold = 0.2
actions = ["log"]
''')
    assert cli("monitor", "run", "cancer").exit_code == 0
    res = cli("monitor", "alerts", "--firing")
    assert res.exit_code == 0 and "radius" in res.output and "firing" in res.output
    metrics = cli("monitor", "metrics")
    assert "drift.share" in metrics.output and "performance.drop" in metrics.output


def test_watch_once_and_bad_input(cli: Cli, logged: None) -> None:
    res = cli("monitor", "watch", "cancer", "--once")
    assert res.exit_code == 0, res.output
    assert "cancer" in res.output and "mean radius" in res.output
    for args, needle in [(("monitor", "run", "cancer", "--window", "forever"), "duration"),
                         (("monitor", "run", "cancer", "--end", "yesterday-ish"), "ISO time"),
                         (("monitor", "history", "cancer", "drift.bogus"), "not known")]:
        bad = cli(*args)
        assert bad.exit_code == 1 and needle in bad.output and "Traceback" not in bad.output
    unknown = cli("monitor", "run", "nobody")
    assert unknown.exit_code == 1 and "nothing to monitor called 'nobody'" in unknown.output
    assert "cancer" in unknown.output  # the names that do exist
