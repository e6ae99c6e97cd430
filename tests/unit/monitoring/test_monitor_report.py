"""The monitoring HTML report, drawn from real stored evaluations.

A project gets a registered dataset and model (logistic regression on the
breast-cancer data, trained on a tracked run that logged the dataset), a
prediction log written directly over six past hourly windows (one without
traffic, the last two shifted with wrong labels, one with failed requests),
and one monitoring run per window; then the report is rendered and read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import loopml
from loopml import data, registry
from loopml.config import Settings
from loopml.core import format_ms, now_ms
from loopml.errors import InvalidInputError
from loopml.monitoring import report
from loopml.monitoring.drift import OTHER
from loopml.monitoring.report import render_report, write_report
from loopml.monitoring.service import get_monitor
from loopml.serving.payload import Input
from loopml.serving.predlog import PredictionLog
from loopml.storage import get_backend

HOUR = 3_600_000
WINDOWS = 6
EMPTY = 3  # no traffic in this window
SHIFTED = (4, 5)  # "mean radius" scaled up, labels flipped
FAILING = 1  # a share of this window's requests failed
DRIFTED = "mean radius"
# names no other test uses: fitted references are cached per process by model name, version and dataset
NAME = "report-cancer"
EVIL = "report-evil"
EVIL_RULE = "errors<script>alert(1)</script>"
SECTIONS = ("summary", "drift", "columns", "output", "performance", "service", "quality", "alerts")


def _reset() -> None:
    from loopml import storage
    from loopml.tracking import fluent

    fluent.reset()
    registry.reset()
    data.reset()
    storage.reset_backends()


def _project(settings: Settings, frame: pd.DataFrame, target: pd.Series, *, name: str, rules: str = "") -> LogisticRegression:
    """Dataset ``name``/1, a run that logged it, and model ``name``/1 trained on it."""
    if rules:
        Path(settings.project_dir, "loopml.toml").write_text(rules, encoding="utf-8")
    data.register(name, frame, settings=settings)
    model = LogisticRegression(max_iter=5000).fit(frame, target)
    with loopml.start_run("monitoring", settings=settings) as run:
        run.log_dataset(f"datasets:/{name}/1")
        run.log_metric("accuracy", float(model.score(frame, target)))
        registry.register(model, name, input_example=frame.head(5))
    return model


def _log_windows(settings: Settings, deployment: str, model: LogisticRegression, frame: pd.DataFrame,
                 target: pd.Series, start: int, *, shift_column: str | None = None) -> None:
    """20 requests of 5 rows per hourly window from ``start``, with feedback labels."""
    log = PredictionLog(get_backend(settings).blobs)
    rng = np.random.default_rng(7)
    columns = tuple(frame.columns)
    for w in range(WINDOWS):
        if w == EMPTY:
            continue
        for r in range(20):
            rows = rng.integers(0, len(frame), 5)
            x = frame.iloc[rows].to_numpy(dtype=float, copy=True)
            if w in SHIFTED and shift_column is not None:
                x[:, columns.index(shift_column)] *= 1.6
            y = model.predict(pd.DataFrame(x, columns=list(columns)))
            ts = start + w * HOUR + r * 60_000
            rid = uuid.uuid4().hex
            log.log(deployment=deployment, variant="main", role="live", model=deployment, version=1, request_id=rid,
                    ts_ms=ts, latency_ms=float(rng.gamma(2.0, 4.0)), x=Input(n=5, array=x, columns=columns), y=y)
            labels = target.iloc[rows].to_numpy()
            log.feedback(deployment=deployment, request_id=rid, ts_ms=ts + 1_000,
                         labels=(1 - labels if w in SHIFTED else labels).tolist())
            if w == FAILING and r % 4 == 0:
                log.error(deployment=deployment, request_id=uuid.uuid4().hex, ts_ms=ts + 10, endpoint="/invocations",
                          status=422, error_code="INVALID_INPUT", latency_ms=1.0)
    log.flush()


def _evaluate(settings: Settings, deployment: str, start: int) -> list[int]:
    monitor = get_monitor(settings)
    ends = [start + (w + 1) * HOUR for w in range(WINDOWS)]
    for end in ends:
        monitor.run(deployment, end_ms=end, window_s=HOUR / 1000)
    return ends


@dataclass(frozen=True)
class History:
    settings: Settings
    ends: list[int]
    html: str


_RULES = f"""
[[monitoring.alerts]]
name = "input-drift"
metric = "drift.share"
op = ">="
threshold = 0.15
actions = ["log"]

[[monitoring.alerts]]
name = "accuracy"
metric = "performance.accuracy"
op = "<"
threshold = 0.8
actions = ["log"]

[[monitoring.alerts]]
name = "{EVIL_RULE}"
metric = "service.error_rate"
op = ">="
threshold = 0.1
actions = ["log"]
"""


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    settings = Settings.for_dir(tmp_path_factory.mktemp("monitored"))
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = X[["mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness"]]
    model = _project(settings, frame, y, name=NAME, rules=_RULES)
    start = (now_ms() // HOUR - 12) * HOUR
    _log_windows(settings, NAME, model, frame, y, start, shift_column=DRIFTED)
    ends = _evaluate(settings, NAME, start)
    yield History(settings, ends, render_report(NAME, settings=settings))
    _reset()


class _Page(HTMLParser):
    """Start tags, the <svg> count per section, and the text of every <title>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.section: str | None = None
        self.svgs: dict[str, int] = {}
        self.titles: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag in ("section", "header") and a.get("id"):
            self.section = a["id"]
            self.svgs.setdefault(self.section, 0)
        if tag == "svg" and self.section is not None:
            self.svgs[self.section] += 1
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, text: str) -> None:
        if self._in_title:
            self.titles.append(text)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _section(html: str, name: str) -> str:
    m = re.search(rf'<section id="{name}".*?</section>', html, re.S)
    assert m, f"no section {name}"
    return m.group(0)


# -- the page ------------------------------------------------------------------------------


def test_every_section_has_its_charts(history: History) -> None:
    page = _parse(history.html)
    assert history.html.startswith("<!DOCTYPE html>") and history.html.endswith("</html>")
    assert "script" not in page.tags  # no JavaScript
    assert "http://" not in history.html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in history.html
    expected = {"drift": 2, "columns": 5, "output": 3, "performance": 3, "service": 3, "quality": 2, "alerts": 1}
    for section, charts in expected.items():
        assert page.svgs.get(section, 0) >= charts, (section, page.svgs)
    assert set(SECTIONS) <= set(page.svgs)


def test_header_shows_model_window_and_verdicts(history: History) -> None:
    header = re.search(r'<header id="summary">.*?</header>', history.html, re.S)
    assert header
    text = header.group(0)
    assert f"model models:/{NAME}/1" in text
    assert f"{format_ms(history.ends[-2])} – {format_ms(history.ends[-1])} UTC" in text
    assert re.search(r"dataset drift: (yes|no) \([1-5] of 5 columns drifted\)", text)
    assert "concept drift: yes" in text
    assert re.search(r"open alerts: [12]<", text)  # drift share and accuracy still breached


def test_drifted_column_is_named_and_first(history: History) -> None:
    columns = _section(history.html, "columns")
    first = re.search(r'<article class="panel col" id="col-0"><h3>(.*?) <span class="badge (\w+)"', columns)
    assert first and first.group(1) == DRIFTED and first.group(2) == "bad"
    assert columns.count(">drifted<") >= 1
    assert "Kolmogorov–Smirnov" in columns
    assert "outside the reference range" in columns  # the reason, and the red side bar
    assert 'class="outside"' in columns
    drift = _section(history.html, "drift")
    assert drift.index(f">{DRIFTED}<") < drift.index(">mean texture<")  # drifted row first in the heat strip
    assert drift.count('class="drifted"') >= len(SHIFTED)  # a dot per drifted column and window


def test_window_without_traffic_is_a_gap_not_a_zero(history: History) -> None:
    gap_end = format_ms(history.ends[EMPTY])
    for name in ("drift", "service", "performance", "quality"):
        section = _section(history.html, name)
        assert 'class="gap"' in section, name
        assert not re.search(rf"· {gap_end} UTC: [-\d<]", section), name  # no value drawn for the empty window
    # the service stored a throughput of 0 for it, yet the line breaks there
    throughput = get_monitor(history.settings).series(NAME, "service.throughput")
    assert any(p["window_end"] == history.ends[EMPTY] and p["value"] == 0.0 for p in throughput)
    service = _section(history.html, "service")
    paths = re.findall(r'<path d="([^"]+)"[^>]*stroke="#059669"', service)
    assert paths and paths[0].count("M") == 2


def test_performance_marks_concept_drift_and_baseline(history: History) -> None:
    performance = _section(history.html, "performance")
    assert performance.count('class="mark"') >= 2 * len(SHIFTED)  # two charts mark the shifted windows
    assert "baseline accuracy" in performance
    assert "alert accuracy &lt; 0.8" in performance  # the alert rule's threshold line
    output = _section(history.html, "output")
    assert "categories of the prediction" in output


def test_quality_and_service_show_the_failed_requests(history: History) -> None:
    quality = _section(history.html, "quality")
    assert "input quality per column" in quality
    assert f"{DRIFTED}: outside the reference range" in quality
    service = _section(history.html, "service")
    assert f"error rate · {format_ms(history.ends[FAILING])} UTC: 20.0%" in service  # 5 failed of 25


def test_alerts_on_a_timeline_with_escaped_names(history: History) -> None:
    alerts = _section(history.html, "alerts")
    assert alerts.count('class="alert"') == len(get_monitor(history.settings).alerts(NAME))
    assert "<script>" not in history.html
    assert "errors&lt;script&gt;alert(1)&lt;/script&gt;" in alerts
    page = _parse(alerts)
    assert any("service.error_rate" in t and "resolved" in t for t in page.titles)  # the message on hover
    assert any("still firing" in t for t in page.titles)


def test_since_and_runs_limit_the_windows(history: History) -> None:
    since = render_report(NAME, settings=history.settings, since_ms=history.ends[3])
    assert f"{WINDOWS - 3:,} windows since" in since
    newest = render_report(NAME, settings=history.settings, runs=2)
    assert "2 windows since" in newest
    with pytest.raises(InvalidInputError):
        render_report(NAME, settings=history.settings, runs=0)


def test_write_report(history: History, tmp_path: Path) -> None:
    out = write_report(NAME, tmp_path / "reports" / "cancer.html", settings=history.settings)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# -- edge cases ----------------------------------------------------------------------------


def test_empty_history(settings: Settings) -> None:
    html = render_report("never-<monitored>", settings=settings)
    assert "No monitoring runs yet" in html
    assert "never-&lt;monitored&gt;" in html and "<monitored>" not in html
    assert "script" not in _parse(html).tags


def test_user_column_names_are_escaped(settings: Settings) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = X[["mean radius", "mean texture"]].rename(columns={"mean radius": "r<script>alert(1)</script>",
                                                               "mean texture": 't"&<b>'})
    model = _project(settings, frame, y, name=EVIL)
    start = (now_ms() // HOUR - 12) * HOUR
    _log_windows(settings, EVIL, model, frame, y, start, shift_column="r<script>alert(1)</script>")
    _evaluate(settings, EVIL, start)
    html = render_report(EVIL, settings=settings)
    assert "<script" not in html and 't"&<b>' not in html
    assert "r&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "t&quot;&amp;&lt;b&gt;" in html
    assert "script" not in _parse(html).tags


def test_categorical_distribution_escapes_and_pools_categories() -> None:
    categories = [f"<img src=x onerror=alert({i})>" for i in range(20)] + [OTHER]
    shares = [1 / 21] * 21
    chart = report._distribution({"categories": categories, "reference": shares, "current": shares[::-1]},
                                 "c<script>")
    assert "<img" not in chart and "<script" not in chart
    assert "&lt;img src=x onerror=alert(0)&gt;" in chart
    assert "other (" in chart  # categories beyond the shown ones are summed
    assert chart.count("<svg") == 1
