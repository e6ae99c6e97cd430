"""A deployment's monitoring history as one self-contained HTML page.

The page draws what the evaluations stored (:mod:`loopml.monitoring.service`):
a header with the latest verdicts, drift over time (share of drifted columns,
and a heat strip of every column's effect size per window), the latest
window's distributions per column against the reference, the model's outputs,
performance from feedback labels with concept-drift windows marked, service
latency / throughput / errors, input quality, and the alerts on a timeline.

Inline CSS and SVG only (:mod:`loopml.core.svg`): no JavaScript, no network.
Hovering a bar, point or cell shows its numbers (SVG ``<title>``). Windows
without traffic are drawn as grey gaps, never as zeros. Column names,
categories and alert messages come from users: every string is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopml.config import Settings
from loopml.core import format_ms, now_ms
from loopml.core.svg import BASE_CSS, clip, empty_svg, escape, fmt, sequential, svg
from loopml.errors import ConfigError, InvalidInputError
from loopml.monitoring.alerts import Alert
from loopml.monitoring.config import AlertRule
from loopml.monitoring.drift import OTHER, DriftConfig
from loopml.monitoring.service import MonitorService, get_monitor

__all__ = ["render_report", "write_report"]

_WIDE = 1060  # full-width charts
_HALF = 520  # charts two to a row
_REF = "#60a5fa"  # reference distribution
_CUR = "#f97316"  # current window
_LINE = ("#2563eb", "#db2777", "#059669", "#7c3aed")
_BAD = "#dc2626"
_GAP = "#eef2f6"
_MARK = "#fee2e2"
_NO_VERDICT = "#cbd5e1"
_WARN = "#d97706"
_EFFECT_SATURATION = 0.5  # heat-strip colours saturate at this effect size
_MAX_HEAT_ROWS = 40
_MAX_COLUMN_CARDS = 60
_MAX_QUALITY_ROWS = 60
_MAX_TIMELINE_ROWS = 40
_MAX_CATEGORIES = 12  # bars per categorical distribution (the rest are summed)
_POINTS_DRAWN = 120  # more windows than this: only flagged and isolated points get a marker
_METHODS = {"ks": "Kolmogorov–Smirnov", "wasserstein": "Wasserstein", "psi": "PSI", "chi2": "chi-squared",
            "jensenshannon": "Jensen–Shannon"}

_CSS = BASE_CSS + """
h3 { font-size:14px; margin:0 0 6px; display:flex; gap:8px; align-items:center; flex-wrap:wrap; }
nav { margin-top:14px; font-size:13px; display:flex; gap:14px; flex-wrap:wrap; }
.badges { display:flex; gap:8px; flex-wrap:wrap; margin-top:14px; }
.badge { display:inline-block; padding:2px 10px; border-radius:999px; font-size:12px; font-weight:600;
  border:1px solid; white-space:nowrap; }
.bad { background:#fee2e2; color:#b91c1c; border-color:#fecaca; }
.good { background:#dcfce7; color:#166534; border-color:#bbf7d0; }
.unknown { background:#f1f5f9; color:#475569; border-color:#e2e8f0; }
.grid { display:flex; flex-wrap:wrap; gap:14px; }
.panel { flex:1 1 520px; min-width:0; background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:12px 14px; }
.panel.full { flex-basis:100%; }
.panel p { margin:6px 0 0; font-size:13px; }
svg.chart { display:block; max-width:100%; height:auto; }
.col .body { display:flex; gap:16px; align-items:flex-start; flex-wrap:wrap; }
.col table { width:auto; min-width:200px; font-size:13px; }
.col td, .col th { padding:2px 8px 2px 0; border:0; }
.col th { text-transform:none; letter-spacing:0; font-weight:500; font-size:13px; }
.reason { color:var(--muted); }
.notes { margin:10px 0 0; padding-left:20px; color:#92400e; font-size:13px; }
.empty { margin-top:24px; padding:18px; background:var(--card); border:1px dashed #cbd5e1; border-radius:10px; }
"""


# -- the page ----------------------------------------------------------------------------


def render_report(deployment: str, *, settings: Settings | None = None, since_ms: int | None = None,
                  runs: int = 200) -> str:
    """Render ``deployment``'s monitoring history as a self-contained HTML page.

    Args:
        deployment: the deployment whose stored evaluations to draw.
        settings: the project (default: the current one).
        since_ms: only windows ending at or after this time (milliseconds since the epoch).
        runs: at most this many of the newest evaluations.

    Returns:
        The HTML document. A deployment without evaluations gives a page that says so.

    Raises:
        InvalidInputError: ``runs`` is below 1.
    """
    if runs < 1:
        raise InvalidInputError(f"runs must be at least 1, got {runs}")
    monitor = get_monitor(settings)
    windows = _windows(monitor.runs(deployment, runs), since_ms)
    alerts = monitor.alerts(deployment)
    now = now_ms()
    title = f"Monitoring · {deployment}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>",
    ]
    if not windows:
        parts.append(f"<header><h1>{escape(title)}</h1></header>")
        since = f" since {format_ms(since_ms)} UTC" if since_ms is not None else ""
        parts.append(
            f'<section id="empty" class="empty"><b>No monitoring runs yet</b> for {escape(deployment)}{since}. '
            f"Evaluate a window with <code>loopml monitor run {escape(deployment)}</code>, keep evaluating with "
            "<code>loopml monitor watch</code>, or evaluate past windows with <code>get_monitor().backfill(...)</code>; "
            "then render this report again.</section>"
        )
        if alerts:
            parts.append(_alerts_section(alerts, now))
    else:
        data = _Data(monitor, deployment, windows, _rules(monitor, deployment))
        parts += [
            _header(title, windows, alerts),
            _drift_section(data),
            _columns_section(data),
            _output_section(data),
            _performance_section(data),
            _service_section(data),
            _quality_section(data),
            _alerts_section(alerts, now),
        ]
    parts.append(f"<footer>Generated by loopml · monitoring report · {escape(format_ms(now))} UTC</footer>")
    parts.append("</main></body></html>")
    return "".join(parts)


def write_report(deployment: str, path: str | Path, *, settings: Settings | None = None, since_ms: int | None = None,
                 runs: int = 200) -> Path:
    """Render the report (see :func:`render_report`) and write it to ``path`` (UTF-8).

    Returns:
        The path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(deployment, settings=settings, since_ms=since_ms, runs=runs), encoding="utf-8")
    return out


# -- the stored data ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """One evaluated window."""

    start: int
    end: int
    status: str
    summary: dict[str, Any]

    @property
    def has_data(self) -> bool:
        return self.status != "no_data"

    def part(self, key: str) -> dict[str, Any]:
        return _dict(self.summary.get(key))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _windows(rows: list[dict[str, Any]], since_ms: int | None) -> list[_Window]:
    """Oldest first; a window evaluated more than once shows its newest evaluation."""
    seen: dict[int, _Window] = {}
    for row in rows:  # newest evaluation first
        end = int(row["window_end"])
        if end in seen or (since_ms is not None and end < since_ms):
            continue
        seen[end] = _Window(int(row["window_start"]), end, str(row["status"]), _dict(row.get("summary")))
    return [seen[end] for end in sorted(seen)]


def _rules(monitor: MonitorService, deployment: str) -> list[AlertRule]:
    try:
        return [r for r in monitor.config().alerts if r.applies_to(deployment)]
    except ConfigError:  # a broken [monitoring] table must not hide the history (evaluating reports it)
        return []


class _Data:
    """The windows, and the stored series read once per metric."""

    def __init__(self, monitor: MonitorService, deployment: str, windows: list[_Window],
                 rules: list[AlertRule]) -> None:
        self.monitor = monitor
        self.deployment = deployment
        self.windows = windows
        self.rules = rules
        self._cache: dict[tuple[str, str | None], dict[int, tuple[float | None, bool | None]]] = {}

    def _points(self, metric: str, column: str | None = None) -> dict[int, tuple[float | None, bool | None]]:
        key = (metric, column)
        if key not in self._cache:
            points = self.monitor.series(self.deployment, metric, column, since=self.windows[0].end)
            self._cache[key] = {int(p["window_end"]): (_number(p["value"]), p["flag"]) for p in points}
        return self._cache[key]

    def values(self, metric: str) -> list[float | None]:
        """The table-level metric per window (None: no value, or a window without data)."""
        points = self._points(metric)
        return [points.get(w.end, (None, None))[0] if w.has_data else None for w in self.windows]

    def flags(self, metric: str) -> list[bool]:
        points = self._points(metric)
        return [bool(points.get(w.end, (None, None))[1]) and w.has_data for w in self.windows]

    def column_flags(self, metric: str, window: _Window) -> dict[str, bool]:
        """Each column's flag of a per-column metric in ``window``."""
        points = self.monitor.series(self.deployment, metric, "*", since=window.end)
        return {str(p["column"]): bool(p["flag"]) for p in points
                if p["column"] is not None and int(p["window_end"]) == window.end}

    def latest(self, key: str) -> tuple[_Window, dict[str, Any]] | None:
        """The newest window whose summary has ``key``."""
        for w in reversed(self.windows):
            part = w.part(key)
            if part:
                return w, part
        return None

    def thresholds(self, metric: str) -> list[tuple[float, str]]:
        """Alert rules on the table-level ``metric``, as reference lines."""
        return [(r.threshold, f"alert {r.name} {r.op} {r.threshold:g}") for r in self.rules
                if r.metric == metric and r.column is None]


# -- formatting --------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    if v is None:
        return "–"
    if v in (0.0, 1.0):
        return f"{v:.0%}"
    if abs(v) < 0.001:
        return "<0.1%" if v > 0 else "−<0.1%"
    return f"{v:.1%}"


def _tick_format(span_ms: float) -> str:
    if span_ms < 20 * 60_000:
        return "%H:%M:%S"
    if span_ms < 7 * 86_400_000:
        return "%m-%d %H:%M"
    return "%Y-%m-%d"


def _time(ms: float, pattern: str) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(pattern)


def _nice(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least ``x`` (> 0)."""
    if x <= 0 or not math.isfinite(x):
        return 1.0
    base = 10.0 ** math.floor(math.log10(x))
    return next(float(m * base) for m in (1, 2, 2.5, 5, 10) if m * base >= x * (1 - 1e-12))


def _ticks(lo: float, hi: float, *, fixed: tuple[bool, bool] = (False, False)) -> tuple[float, float, list[float]]:
    """Round axis bounds around ``lo``..``hi`` and 3 to 6 ticks between them; ``fixed`` keeps either bound as given."""
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    step = _nice((hi - lo) / 4)
    low = lo if fixed[0] else math.floor(lo / step + 1e-9) * step
    high = hi if fixed[1] else math.ceil(hi / step - 1e-9) * step
    first = math.ceil(low / step - 1e-9)
    ticks = [round(k * step, 12) for k in range(first, math.floor(high / step + 1e-9) + 1)]
    return low, high, ticks


def _tick_label(v: float, percent: bool) -> str:
    return f"{round(v * 100, 6):g}%" if percent else f"{round(v, 10):g}"


def _badge(text: str, kind: str, tip: str = "") -> str:
    title = f' title="{escape(tip)}"' if tip else ""
    return f'<span class="badge {kind}"{title}>{escape(text)}</span>'


def _panel(title: str, body: str, note: str = "", *, full: bool = False) -> str:
    extra = f'<p class="muted">{escape(note)}</p>' if note else ""
    return f'<div class="panel{" full" if full else ""}"><h3>{escape(title)}</h3>{body}{extra}</div>'


# -- time axis ---------------------------------------------------------------------------


class _TimeAxis:
    """Window ends on x; each window owns the slot halfway to its neighbours' ends.

    Slots rather than ``[window_start, window_end]`` because windows may overlap
    (a 1 h window evaluated every 5 minutes).
    """

    def __init__(self, windows: Sequence[_Window], x0: float, x1: float) -> None:
        ends = [w.end for w in windows]
        n = len(ends)
        self.windows = windows
        self.x0, self.x1 = x0, x1
        self.lows: list[float] = []
        self.highs: list[float] = []
        for i, end in enumerate(ends):
            before = (end - ends[i - 1]) / 2 if i else None
            after = (ends[i + 1] - end) / 2 if i < n - 1 else None
            alone = max((windows[i].end - windows[i].start) / 2, 1.0)
            self.lows.append(end - (before if before is not None else after if after is not None else alone))
            self.highs.append(end + (after if after is not None else before if before is not None else alone))
        self.t0, self.t1 = self.lows[0], self.highs[-1]

    def x(self, t: float) -> float:
        return self.x0 + (t - self.t0) / (self.t1 - self.t0) * (self.x1 - self.x0)

    def slot(self, i: int) -> tuple[float, float]:
        return self.x(self.lows[i]), self.x(self.highs[i])

    def ticks(self, y: float) -> str:
        """The axis line at ``y`` and up to five window ends labelled below it."""
        n = len(self.windows)
        picks = sorted({round(k * (n - 1) / 4) for k in range(5)}) if n > 1 else [0]
        pattern = _tick_format(self.windows[-1].end - self.windows[0].end)
        out = [f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" stroke="#cbd5e1"/>']
        for i in picks:
            x = self.x(self.windows[i].end)
            anchor = "start" if x - self.x0 < 36 else "end" if self.x1 - x < 36 else "middle"
            out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + 4:.1f}" stroke="#cbd5e1"/>'
                       f'<text x="{x:.1f}" y="{y + 15:.1f}" font-size="10" fill="#64748b" text-anchor="{anchor}">'
                       f"{escape(_time(self.windows[i].end, pattern))}</text>")
        return "".join(out)

    def bands(self, top: float, height: float, marks: Sequence[bool] = (), mark_label: str = "") -> str:
        """Grey bands over windows without data (and tinted ones over marked windows)."""
        out = []
        for i, w in enumerate(self.windows):
            x0, x1 = self.slot(i)
            span = f"{format_ms(w.start)} – {format_ms(w.end)} UTC"
            if not w.has_data:
                out.append(f'<rect class="gap" x="{x0:.1f}" y="{top:.1f}" width="{max(x1 - x0, 1):.1f}" '
                           f'height="{height:.1f}" fill="{_GAP}"><title>no data: no requests in {escape(span)}'
                           "</title></rect>")
            elif i < len(marks) and marks[i]:
                out.append(f'<rect class="mark" x="{x0:.1f}" y="{top:.1f}" width="{max(x1 - x0, 1):.1f}" '
                           f'height="{height:.1f}" fill="{_MARK}"><title>{escape(mark_label)}: {escape(span)}'
                           "</title></rect>")
        return "".join(out)


# -- charts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    name: str
    values: list[float | None]
    colour: str
    flags: list[bool] | None = None


def _legend(items: Sequence[tuple[str, str, bool]], x: float, y: float) -> str:
    """Swatches and names in a row from ``x``: (name, colour, dashed)."""
    out = []
    for name, colour, dashed in items:
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        out.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 14:.1f}" y2="{y - 4:.1f}" stroke="{colour}" '
                   f'stroke-width="2.5"{dash}/><text x="{x + 18:.1f}" y="{y:.1f}" font-size="11" fill="#334155">'
                   f"{escape(name)}</text>")
        x += 30 + 6.2 * len(name)
    return "".join(out)


def _line_chart(windows: Sequence[_Window], lines: Sequence[_Line], *, label: str, width: int = _HALF,
                height: int = 190, percent: bool = False, y_min: float | None = 0.0, y_max: float | None = None,
                refs: Sequence[tuple[float, str]] = (), marks: Sequence[bool] = (), mark_label: str = "") -> str:
    """Lines over the windows' ends, broken where a window has no value; windows without data are grey bands."""
    left, right, top, bottom = 54, 14, 26, 24
    axis = _TimeAxis(windows, left, width - right)
    plot_h = height - top - bottom
    finite = [v for line in lines for v in line.values if v is not None]
    bounds = finite + [r for r, _ in refs]
    lo = y_min if y_min is not None else min(bounds + [0.0])
    hi = y_max if y_max is not None else max(bounds) * 1.05 if bounds and max(bounds) > lo else lo + 1.0
    lo, hi, ticks = _ticks(lo, hi, fixed=(y_min is not None, y_max is not None))

    def y(v: float) -> float:
        return top + plot_h * (1 - (min(max(v, lo), hi) - lo) / (hi - lo))

    def label_of(v: float) -> str:
        return _pct(v) if percent else fmt(v)

    parts = [axis.bands(top, plot_h, marks, mark_label)]
    for tick in ticks:
        parts.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - right}" y2="{y(tick):.1f}" '
                     f'stroke="#eef2f7"/><text x="{left - 6}" y="{y(tick) + 3:.1f}" font-size="10" fill="#64748b" '
                     f'text-anchor="end">{escape(_tick_label(tick, percent))}</text>')
    labels = []
    for value, text in refs:
        parts.append(f'<line class="ref" x1="{left}" y1="{y(value):.1f}" x2="{width - right}" y2="{y(value):.1f}" '
                     f'stroke="#475569" stroke-dasharray="5 4"><title>{escape(text)}</title></line>')
        labels.append(f'<text x="{width - right - 2}" y="{y(value) - 4:.1f}" font-size="10" fill="#334155" '
                      f'text-anchor="end" stroke="#fff" stroke-width="3" paint-order="stroke">{escape(text)}</text>')
    many = len(windows) > _POINTS_DRAWN
    for line in lines:
        segments: list[list[tuple[float, float]]] = [[]]
        dots = []
        for i, (w, v) in enumerate(zip(windows, line.values, strict=True)):
            if v is None:
                if segments[-1]:
                    segments.append([])
                continue
            px, py = axis.x(w.end), y(v)
            segments[-1].append((px, py))
            flagged = bool(line.flags and line.flags[i])
            alone = (i == 0 or line.values[i - 1] is None) and (i == len(windows) - 1 or line.values[i + 1] is None)
            if flagged or alone or not many:
                tip = f"{line.name} · {format_ms(w.end)} UTC: {label_of(v)}" + (" (flagged)" if flagged else "")
                dots.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{3.6 if flagged else 2.4}" '
                            f'fill="{_BAD if flagged else line.colour}"><title>{escape(tip)}</title></circle>')
        path = " ".join("M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in seg) for seg in segments if seg)
        if path:
            parts.append(f'<path d="{path}" fill="none" stroke="{line.colour}" stroke-width="1.8" '
                         'stroke-linejoin="round"/>')
        parts += dots
    parts += labels
    if not finite:
        parts.append(f'<text x="{(left + width - right) / 2:.0f}" y="{top + plot_h / 2:.0f}" font-size="12" '
                     'fill="#94a3b8" text-anchor="middle">no values in these windows</text>')
    parts.append(axis.ticks(top + plot_h))
    legend = [(line.name, line.colour, False) for line in lines]
    parts.append(_legend(legend, left, 14))
    return svg("".join(parts), width, height, label=label)


def _bar_chart(windows: Sequence[_Window], values: list[float | None], *, label: str, name: str,
               width: int = _HALF, height: int = 190, colour: str = "#94a3b8") -> str:
    """One bar per window (counts)."""
    left, right, top, bottom = 54, 14, 26, 24
    axis = _TimeAxis(windows, left, width - right)
    plot_h = height - top - bottom
    finite = [v for v in values if v is not None]
    _, hi, ticks = _ticks(0.0, max(finite) if finite and max(finite) > 0 else 1.0, fixed=(True, False))
    parts = [axis.bands(top, plot_h)]
    for tick in ticks:
        yy = top + plot_h * (1 - tick / hi)
        parts.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{width - right}" y2="{yy:.1f}" stroke="#eef2f7"/>'
                     f'<text x="{left - 6}" y="{yy + 3:.1f}" font-size="10" fill="#64748b" text-anchor="end">'
                     f"{escape(_tick_label(tick, False))}</text>")
    for i, (w, v) in enumerate(zip(windows, values, strict=True)):
        if v is None:
            continue
        x0, x1 = axis.slot(i)
        bw = max((x1 - x0) * 0.7, 1.0)
        bh = plot_h * max(v, 0.0) / hi
        tip = f"{name} · {format_ms(w.end)} UTC: {fmt(v)}"
        parts.append(f'<rect x="{(x0 + x1 - bw) / 2:.1f}" y="{top + plot_h - bh:.1f}" width="{bw:.1f}" '
                     f'height="{max(bh, 0.5):.1f}" fill="{colour}"><title>{escape(tip)}</title></rect>')
    parts.append(axis.ticks(top + plot_h))
    parts.append(_legend([(name, colour, False)], left, 14))
    return svg("".join(parts), width, height, label=label)


def _heat_strip(windows: Sequence[_Window], rows: Sequence[tuple[str, list[float | None], list[bool | None]]],
                *, label: str) -> str:
    """Columns × windows, coloured by effect size; drifted cells carry a dot, windows without data are grey."""
    label_w, right, top, row_h = 170, 14, 6, 16
    axis = _TimeAxis(windows, label_w, _WIDE - right)
    grid_h = row_h * len(rows)
    parts = []
    for r, (name, effects, drifted) in enumerate(rows):
        y = top + r * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" fill="#334155" text-anchor="end">'
                     f"{escape(clip(name, 26))}<title>{escape(name)}</title></text>")
        for i, w in enumerate(windows):
            x0, x1 = axis.slot(i)
            cw = max(x1 - x0, 1.0)
            effect, verdict = effects[i], drifted[i]
            when = f"{format_ms(w.end)} UTC"
            if not w.has_data:
                fill, tip = _GAP, f"{name} · {when}: no data"
            elif effect is None:
                fill, tip = _NO_VERDICT, f"{name} · {when}: no verdict (not enough data)"
            else:
                fill = sequential(effect / _EFFECT_SATURATION)
                tip = f"{name} · {when}: effect {fmt(effect)}" + (" · drifted" if verdict else "")
            parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{cw:.1f}" height="{row_h - 1}" fill="{fill}" '
                         f'stroke="#fff" stroke-width="0.5"><title>{escape(tip)}</title></rect>')
            if verdict and w.has_data:
                parts.append(f'<circle class="drifted" cx="{(x0 + x1) / 2:.1f}" cy="{y + (row_h - 1) / 2:.1f}" '
                             f'r="{min(3.0, cw / 3):.1f}" fill="#0f172a"><title>{escape(tip)}</title></circle>')
    parts.append(axis.ticks(top + grid_h + 2))
    ly = top + grid_h + 34
    stops = "".join(f'<stop offset="{k / 10:.1f}" stop-color="{sequential(k / 10)}"/>' for k in range(11))
    parts.append(
        f'<defs><linearGradient id="effect-scale" x1="0" x2="1" y1="0" y2="0">{stops}</linearGradient></defs>'
        f'<rect x="{label_w}" y="{ly}" width="160" height="10" fill="url(#effect-scale)" stroke="#cbd5e1"/>'
        f'<text x="{label_w}" y="{ly + 22}" font-size="10" fill="#64748b">0</text>'
        f'<text x="{label_w + 160}" y="{ly + 22}" font-size="10" fill="#64748b" text-anchor="end">'
        f"≥ {_EFFECT_SATURATION:g}</text>"
        f'<text x="{label_w + 170}" y="{ly + 9}" font-size="10" fill="#64748b">effect size</text>'
        f'<circle cx="{label_w + 250}" cy="{ly + 5}" r="3" fill="#0f172a"/>'
        f'<text x="{label_w + 258}" y="{ly + 9}" font-size="10" fill="#64748b">drifted</text>'
        f'<rect x="{label_w + 310}" y="{ly}" width="12" height="10" fill="{_NO_VERDICT}"/>'
        f'<text x="{label_w + 326}" y="{ly + 9}" font-size="10" fill="#64748b">no verdict</text>'
        f'<rect x="{label_w + 390}" y="{ly}" width="12" height="10" fill="{_GAP}" stroke="#cbd5e1"/>'
        f'<text x="{label_w + 406}" y="{ly + 9}" font-size="10" fill="#64748b">no data</text>'
    )
    return svg("".join(parts), _WIDE, ly + 30, label=label, cls="chart heat")


def _distribution(hist: Mapping[str, Any], name: str) -> str:
    """Reference against current: overlaid histogram (numeric) or paired bars (categorical)."""
    if "edges" in hist:
        return _numeric_distribution(hist, name)
    if "categories" in hist:
        return _categorical_distribution(hist, name)
    return empty_svg("no distribution stored (not enough data)", 360)


def _shares(values: Any, n: int) -> list[float] | None:
    if not isinstance(values, list) or len(values) != n:
        return None
    out = [_number(v) for v in values]
    return [v if v is not None else 0.0 for v in out]


def _numeric_distribution(hist: Mapping[str, Any], name: str) -> str:
    raw_edges = hist.get("edges")
    edges = [_number(e) for e in raw_edges] if isinstance(raw_edges, list) else []
    n = len(edges) - 1
    ref = _shares(hist.get("reference"), n) if n > 0 else None
    cur = _shares(hist.get("current"), n) if n > 0 else None
    if n <= 0 or ref is None or cur is None or any(e is None for e in edges):
        return empty_svg("no distribution stored", 360)
    bounds = [float(e) for e in edges if e is not None]
    below = _number(hist.get("current_below")) or 0.0
    above = _number(hist.get("current_above")) or 0.0
    width, height, left, right, top, bottom = 380, 180, 10, 10, 22, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    widths = [bounds[i + 1] - bounds[i] for i in range(n)]
    by_value = all(wd > 0 for wd in widths)  # else (a constant reference): equal-width bins
    side = plot_w / (n + 2) if below or above else 0.0
    inner0, inner1 = left + (side if below else 0.0), left + plot_w - (side if above else 0.0)
    span = bounds[-1] - bounds[0]

    def bx(i: int) -> float:  # left edge of bin i (i == n: the right end)
        if by_value:
            return inner0 + (bounds[i] - bounds[0]) / span * (inner1 - inner0)
        return inner0 + i / n * (inner1 - inner0)

    # heights are densities (share per unit of x), so wide bins do not look tall
    unit = [(bx(i + 1) - bx(i)) or 1.0 for i in range(n)]
    dens = [(r / unit[i], c / unit[i]) for i, (r, c) in enumerate(zip(ref, cur, strict=True))]
    side_dens = (below / side if side else 0.0, above / side if side else 0.0)
    peak = max([max(a, b) for a, b in dens] + list(side_dens)) or 1.0
    base = top + plot_h
    parts = []
    for i in range(n):
        x0, x1 = bx(i), bx(i + 1)
        closing = "]" if i == n - 1 else ")"
        tip = (f"[{fmt(bounds[i])}, {fmt(bounds[i + 1])}{closing}: reference {_pct(ref[i])}, "
               f"current {_pct(cur[i])}")
        for share_d, colour, opacity in ((dens[i][0], _REF, 0.55), (dens[i][1], _CUR, 0.5)):
            h = plot_h * share_d / peak
            parts.append(f'<rect x="{x0 + 0.3:.1f}" y="{base - h:.1f}" width="{max(x1 - x0 - 0.6, 0.5):.1f}" '
                         f'height="{h:.1f}" fill="{colour}" fill-opacity="{opacity}"/>')
        parts.append(f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 0.5):.1f}" height="{plot_h}" '
                     f'fill="transparent"><title>{escape(tip)}</title></rect>')
    for share, x0, text in ((below, left, "< min"), (above, left + plot_w - side, "> max")):
        if share and side:
            h = plot_h * (share / side) / peak
            tip = f"current values {'below the reference minimum' if text == '< min' else 'above the reference maximum'}: {_pct(share)}"
            parts.append(f'<rect class="outside" x="{x0 + 1:.1f}" y="{base - h:.1f}" width="{side - 2:.1f}" '
                         f'height="{h:.1f}" fill="{_BAD}" fill-opacity="0.75"><title>{escape(tip)}</title></rect>'
                         f'<text x="{x0 + side / 2:.1f}" y="{height - 4}" font-size="9" fill="{_BAD}" '
                         f'text-anchor="middle">{escape(text)}</text>')
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#cbd5e1"/>'
        f'<text x="{inner0:.1f}" y="{base + 13}" font-size="10" fill="#64748b">{escape(fmt(bounds[0]))}</text>'
        f'<text x="{inner1:.1f}" y="{base + 13}" font-size="10" fill="#64748b" text-anchor="end">'
        f"{escape(fmt(bounds[-1]))}</text>"
    )
    parts.append(_legend([("reference", _REF, False), ("current", _CUR, False)], left, 12))
    return svg("".join(parts), width, height, label=f"distribution of {name}: reference and current")


def _categorical_distribution(hist: Mapping[str, Any], name: str) -> str:
    cats = hist.get("categories")
    if not isinstance(cats, list) or not cats:
        return empty_svg("no categories stored", 360)
    ref = _shares(hist.get("reference"), len(cats))
    cur = _shares(hist.get("current"), len(cats))
    if ref is None or cur is None:
        return empty_svg("no categories stored", 360)
    rows = [("other" if c == OTHER else str(c), r, k) for c, r, k in zip(cats, ref, cur, strict=True)]
    if len(rows) > _MAX_CATEGORIES:
        top = sorted(range(len(rows)), key=lambda i: -max(rows[i][1], rows[i][2]))[: _MAX_CATEGORIES - 1]
        rest = [rows[i] for i in range(len(rows)) if i not in set(top)]
        rows = [rows[i] for i in sorted(top)]
        rows.append((f"other ({len(rest)} more)", sum(r[1] for r in rest), sum(r[2] for r in rest)))
    width, label_w, value_w, row_h, top_m = 380, 110, 92, 22, 20
    plot_w = width - label_w - value_w
    peak = max(max(r, k) for _, r, k in rows) or 1.0
    parts = [_legend([("reference", _REF, False), ("current", _CUR, False)], label_w, 12)]
    for i, (cat, r, k) in enumerate(rows):
        y = top_m + i * row_h
        tip = f"{cat}: reference {_pct(r)}, current {_pct(k)}"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" font-size="11" fill="#334155" text-anchor="end">'
            f"{escape(clip(cat, 16))}<title>{escape(cat)}</title></text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{max(plot_w * r / peak, 0.5):.1f}" height="7" fill="{_REF}">'
            f"<title>{escape(tip)}</title></rect>"
            f'<rect x="{label_w}" y="{y + 11}" width="{max(plot_w * k / peak, 0.5):.1f}" height="7" fill="{_CUR}">'
            f"<title>{escape(tip)}</title></rect>"
            f'<text x="{width - value_w + 6}" y="{y + 14}" font-size="10" fill="#64748b">'
            f"{escape(_pct(r))} → {escape(_pct(k))}</text>"
        )
    return svg("".join(parts), width, top_m + row_h * len(rows) + 4,
               label=f"categories of {name}: reference and current")


def _quality_chart(columns: Mapping[str, Mapping[str, Any]], flags: Mapping[str, Mapping[str, bool]]) -> str:
    """Per column: missing rate, out-of-range share (expected share ticked), unseen categories."""
    panels = (("missing_rate", "missing values"), ("out_of_range", "outside the reference range"),
              ("unseen_categories", "unseen categories"))
    label_w, row_h, top = 170, 18, 22
    panel_w = (_WIDE - label_w) / len(panels)
    bar_w = panel_w - 70
    scale = {key: max([_number(c.get(key)) or 0.0 for c in columns.values()] + [0.05]) for key, _ in panels}
    parts = []
    for j, (_key, title) in enumerate(panels):
        parts.append(f'<text x="{label_w + j * panel_w:.1f}" y="13" font-size="11" font-weight="600" '
                     f'fill="#475569">{escape(title)}</text>')
    for r, (name, entry) in enumerate(columns.items()):
        y = top + r * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" fill="#334155" text-anchor="end">'
                     f"{escape(clip(name, 26))}<title>{escape(name)}</title></text>")
        for j, (key, title) in enumerate(panels):
            x = label_w + j * panel_w
            v = _number(entry.get(key))
            if v is None:
                parts.append(f'<text x="{x:.1f}" y="{y + 13}" font-size="10" fill="#94a3b8">–'
                             f"<title>{escape(f'{name}: {title} not measured for this column')}</title></text>")
                continue
            flagged = flags.get(key, {}).get(name, False)
            tip = f"{name}: {title} {_pct(v)}" + (" (flagged)" if flagged else "")
            examples = entry.get("unseen_examples") if key == "unseen_categories" else None
            if isinstance(examples, list) and examples:
                tip += "; e.g. " + ", ".join(repr(str(e)) for e in examples[:5])
            bw = bar_w * v / scale[key]
            colour = _BAD if flagged else _WARN if key == "missing_rate" and v > 0 else "#64748b"
            parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{max(bw, 0.5):.1f}" height="{row_h - 7}" rx="2" '
                         f'fill="{colour}"><title>{escape(tip)}</title></rect>'
                         f'<text x="{x + bw + 4:.1f}" y="{y + 13}" font-size="10" fill="#64748b">'
                         f"{escape(_pct(v))}</text>")
            expected = _number(entry.get("out_of_range_expected")) if key == "out_of_range" else None
            if expected is not None and expected <= scale[key]:
                ex = x + bar_w * expected / scale[key]
                parts.append(f'<line x1="{ex:.1f}" y1="{y + 2}" x2="{ex:.1f}" y2="{y + row_h - 1}" stroke="#0f172a" '
                             f'stroke-dasharray="2 2"><title>{escape(f"expected by chance: {_pct(expected)}")}'
                             "</title></line>")
    return svg("".join(parts), _WIDE, top + row_h * len(columns) + 6, label="input quality per column")


def _alert_timeline(alerts: Sequence[Alert], now: int) -> str:
    """Each alert a bar from opened to resolved (or now); its message on hover."""
    rows = sorted(alerts, key=lambda a: (a.opened_at, a.id))[-_MAX_TIMELINE_ROWS:]
    label_w, right, top, row_h = 170, 14, 6, 20
    t0 = min(a.opened_at for a in rows)
    t1 = max([now] + [a.resolved_at or a.last_fired_at for a in rows])
    if t1 - t0 < 1000:
        t1 = t0 + 1000
    x0, x1 = label_w, _WIDE - right

    def x(t: float) -> float:
        return x0 + (t - t0) / (t1 - t0) * (x1 - x0)

    parts = []
    for r, a in enumerate(rows):
        y = top + r * row_h
        end = a.resolved_at if a.resolved_at is not None else now
        bx0, bx1 = x(a.opened_at), x(end)
        firing = a.state == "firing"
        until = f"resolved {format_ms(a.resolved_at)}" if a.resolved_at is not None else "still firing"
        tip = f"{a.rule} · opened {format_ms(a.opened_at)}, {until} UTC — {a.message}"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" font-size="11" fill="#334155" text-anchor="end">'
            f"{escape(clip(a.rule, 26))}<title>{escape(a.rule)}</title></text>"
            f'<rect class="alert" x="{bx0:.1f}" y="{y + 3}" width="{max(bx1 - bx0, 3):.1f}" height="{row_h - 6}" '
            f'rx="3" fill="{_BAD if firing else "#94a3b8"}"><title>{escape(tip)}</title></rect>'
        )
    y = top + row_h * len(rows) + 2
    pattern = _tick_format(t1 - t0)
    parts.append(f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#cbd5e1"/>')
    for k in range(5):
        t = t0 + (t1 - t0) * k / 4
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        parts.append(f'<text x="{x(t):.1f}" y="{y + 14}" font-size="10" fill="#64748b" text-anchor="{anchor}">'
                     f"{escape(_time(t, pattern))}</text>")
    return svg("".join(parts), _WIDE, y + 22, label="alert timeline")


# -- sections ----------------------------------------------------------------------------


def _header(title: str, windows: list[_Window], alerts: Sequence[Alert]) -> str:
    latest = windows[-1]
    model = next((w.part("model").get("uri") for w in reversed(windows) if w.part("model").get("uri")), None)
    sub = [f"model {escape(model)}" if model else "model unknown",
           f"latest window {escape(format_ms(latest.start))} – {escape(format_ms(latest.end))} UTC",
           f"{len(windows):,} windows since {escape(format_ms(windows[0].start))} UTC"]
    badges = []
    if not latest.has_data:
        badges.append(_badge("no data in the latest window", "unknown", "no requests were logged in this window"))
    drift = latest.part("drift")
    if drift:
        drifted = drift.get("drifted_columns") or []
        verdict = bool(drift.get("dataset_drift"))
        text = f"dataset drift: {'yes' if verdict else 'no'} ({len(drifted)} of {len(_dict(drift.get('columns')))} "
        text += "columns drifted)"
        badges.append(_badge(text, "bad" if verdict else "good", "drifted: " + ", ".join(map(str, drifted))))
    else:
        badges.append(_badge("dataset drift: no verdict", "unknown"))
    firing = sum(a.state == "firing" for a in alerts)
    badges.append(_badge(f"open alerts: {firing}", "bad" if firing else "good"))
    perf = latest.part("performance")
    if "concept_drift" in perf:
        concept = bool(perf["concept_drift"])
        badges.append(_badge(f"concept drift: {'yes' if concept else 'no'}", "bad" if concept else "good",
                             f"main metric {fmt(_number(perf.get('drop')))} below its baseline"))
    else:
        badges.append(_badge("concept drift: unknown", "unknown", str(perf.get("note") or "no labelled predictions")))
    out_drift = _dict(latest.part("outputs").get("drift"))
    if out_drift.get("drifted") is not None:
        badges.append(_badge(f"output drift: {'yes' if out_drift['drifted'] else 'no'}",
                             "bad" if out_drift["drifted"] else "good"))
    service = latest.part("service")
    model_part = latest.part("model")
    stats = [
        (fmt(service.get("requests")), "requests in the latest window"),
        (_pct(_number(drift.get("share_drifted"))) if drift else "–", "columns drifted"),
        (fmt(_number(service.get("latency_p99_ms"))) + " ms" if service.get("latency_p99_ms") is not None else "–",
         "latency p99"),
        (_pct(_number(service.get("error_rate"))), "error rate"),
    ]
    for key in ("accuracy", "rmse"):
        if _number(perf.get(key)) is not None:
            stats.append((fmt(_number(perf.get(key))), key))
    if model_part.get("registered_at"):
        age = (latest.end - int(model_part["registered_at"])) / 86_400_000
        stats.append((f"{max(age, 0):.1f} d", "model age at the window's end"))
    if _number(model_part.get("staleness_days")) is not None:
        stats.append((f"{model_part['staleness_days']:.1f} d", "training data staleness"))
    cards = "".join(f'<div class="stat"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for v, k in stats)
    notes = [str(n) for n in latest.summary.get("notes") or []]
    notes_html = ('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>") if notes else ""
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in (
        ("drift", "Drift over time"), ("columns", "Columns"), ("output", "Output"), ("performance", "Performance"),
        ("service", "Service"), ("quality", "Quality"), ("alerts", "Alerts")))
    return (f'<header id="summary"><h1>{escape(title)}</h1><p class="sub">{" · ".join(sub)}</p>'
            f'<div class="badges">{"".join(badges)}</div><div class="cards">{cards}</div>{notes_html}'
            f"<nav>{nav}</nav></header>")


def _drift_section(data: _Data) -> str:
    ws = data.windows
    share = _line_chart(
        ws, [_Line("share of columns drifted", data.values("drift.share"), _LINE[0], data.flags("drift.share"))],
        label="share of drifted input columns per window", width=_WIDE, height=210, percent=True, y_max=1.0,
        refs=[(DriftConfig().drift_share, f"dataset drift at {DriftConfig().drift_share:.0%}"),
              *data.thresholds("drift.share")],
    )
    # per-column values from the runs' summaries: one read, where series(..., "*") stops at 10,000 points
    names: dict[str, None] = {}
    for w in ws:
        names.update(dict.fromkeys(_dict(w.part("drift").get("columns"))))
    rows = []
    for name in names:
        cells = [_dict(_dict(w.part("drift").get("columns")).get(name)) for w in ws]
        rows.append((name, [_number(c.get("effect_size")) for c in cells], [c.get("drifted") for c in cells]))
    last = data.latest("drift")
    latest_drifted = set(last[1].get("drifted_columns") or []) if last else set()
    rows.sort(key=lambda r: (r[0] not in latest_drifted, -max([v for v in r[1] if v is not None] or [0.0])))
    shown = rows[:_MAX_HEAT_ROWS]
    if shown:
        more = f" {len(rows) - len(shown)} more columns are not shown." if len(rows) > len(shown) else ""
        heat = _panel("Effect size per column and window", _heat_strip(ws, shown, label="drift effect size per "
                      "column over windows"), "Colour: the column's effect size (KS D, Cramér's V, ...); a dot: "
                      "drifted in that window. Columns drifted in the latest window first, then by their largest "
                      f"effect.{more}", full=True)
    else:
        heat = _panel("Effect size per column and window", empty_svg("no drift measured yet", 360), full=True)
    return (f'<section id="drift"><h2>Drift over time</h2><div class="grid">'
            f'{_panel("Share of input columns drifted", share, "Red points: dataset drift in that window. Grey bands: windows without data.", full=True)}'
            f"{heat}</div></section>")


def _columns_section(data: _Data) -> str:
    last = data.latest("drift")
    if last is None:
        return ('<section id="columns"><h2>Latest window per column</h2>'
                '<p class="muted">No window with data has been evaluated for drift yet.</p></section>')
    window, drift = last
    cols = [_dict(c) for c in _dict(drift.get("columns")).values()]
    cols.sort(key=lambda c: (_verdict_rank(c.get("drifted")), -(_number(c.get("effect_size")) or 0.0)))
    cards = [_column_card(c, i) for i, c in enumerate(cols[:_MAX_COLUMN_CARDS])]
    more = (f'<p class="muted">{len(cols) - _MAX_COLUMN_CARDS} more columns are not shown.</p>'
            if len(cols) > _MAX_COLUMN_CARDS else "")
    return (f'<section id="columns"><h2>Latest window per column</h2><p class="sub">Window ending '
            f"{escape(format_ms(window.end))} UTC against the reference; drifted columns first.</p>"
            f'<div class="grid">{"".join(cards)}</div>{more}</section>')


def _verdict_rank(drifted: Any) -> int:
    return 0 if drifted is True else 1 if drifted is False else 2


def _verdict(drifted: Any) -> str:
    if drifted is True:
        return _badge("drifted", "bad")
    if drifted is False:
        return _badge("no drift", "good")
    return _badge("no verdict", "unknown")


def _column_card(c: Mapping[str, Any], i: int) -> str:
    name = str(c.get("column", ""))
    method = str(c.get("method", ""))
    effect, threshold = _number(c.get("effect_size")), _number(c.get("threshold"))
    rows = [
        ("method", _METHODS.get(method, method)),
        ("effect size", f"{fmt(effect)} (drifts from {fmt(threshold)})"),
        ("p-value", f"{fmt(_number(c.get('p_adjusted')))} adjusted ({fmt(_number(c.get('p_value')))} raw)"
         if c.get("p_value") is not None else "– (distance only)"),
        ("rows", f"{fmt(c.get('current_rows'))} now · {fmt(c.get('reference_rows'))} reference"),
        ("missing", _pct(_number(c.get("null_share")))),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return (f'<article class="panel col" id="col-{i}"><h3>{escape(name)} {_verdict(c.get("drifted"))}'
            f'<span class="muted" style="font-weight:400;font-size:12px">{escape(c.get("kind", ""))}</span></h3>'
            f'<div class="body">{_distribution(_dict(c.get("hist")), name)}<table>{table}</table></div>'
            f'<p class="reason">{escape(c.get("reason", ""))}</p></article>')


def _output_section(data: _Data) -> str:
    ws = data.windows
    last = data.latest("outputs")
    panels = []
    if last is not None:
        window, outputs = last
        drift = _dict(outputs.get("drift"))
        if drift:
            body = (f"{_distribution(_dict(drift.get('hist')), 'the prediction')}"
                    f"<p>{_verdict(drift.get('drifted'))} {escape(_METHODS.get(str(drift.get('method')), ''))} "
                    f"effect {escape(fmt(_number(drift.get('effect_size'))))}, "
                    f"p {escape(fmt(_number(drift.get('p_value'))))}</p>"
                    f'<p class="reason">{escape(drift.get("reason", ""))}</p>')
        else:
            body = empty_svg("no output reference: output drift is not measured", 360)
        panels.append(_panel(f"Predictions, window ending {format_ms(window.end)} UTC", body))
    else:
        panels.append(_panel("Predictions", empty_svg("no window with predictions yet", 360)))
    shares = [_dict(w.part("outputs").get("class_share")) for w in ws]
    if any(shares):
        # classification: each class's share per window from the summaries (output.mean is the share of
        # whichever class sorts first in that window, so it changes meaning when a class is absent)
        totals: dict[str, float] = {}
        for share in shares:
            for cls, v in share.items():
                totals[str(cls)] = totals.get(str(cls), 0.0) + (_number(v) or 0.0)
        classes = sorted(totals, key=lambda c: -totals[c])[: len(_LINE)]
        lines = [_Line(f"class {c}", [(_number(share.get(c)) or 0.0) if share and w.has_data else None
                                      for w, share in zip(ws, shares, strict=True)], _LINE[i])
                 for i, c in enumerate(classes)]
        more = f" {len(totals) - len(classes)} rarer classes are not drawn." if len(totals) > len(classes) else ""
        chart = _line_chart(ws, lines, label="share of each predicted class over time", percent=True, y_max=1.0)
        panels.append(_panel("Predicted classes over time", chart, f"Share of the window's predictions.{more}"))
    else:
        chart = _line_chart(ws, [_Line("mean prediction", data.values("output.mean"), _LINE[0])],
                            label="mean prediction over time", y_min=None, refs=data.thresholds("output.mean"))
        panels.append(_panel("Mean prediction over time", chart))
    effect = _line_chart(ws, [_Line("output drift effect", data.values("output.drift"), _LINE[1],
                                    data.flags("output.drift"))], label="output drift effect size over time",
                         width=_WIDE, refs=data.thresholds("output.drift"))
    panels.append(_panel("Output drift effect over time", effect, "Red points: the predictions drifted.", full=True))
    return f'<section id="output"><h2>Output</h2><div class="grid">{"".join(panels)}</div></section>'


def _performance_section(data: _Data) -> str:
    ws = data.windows
    task = next((w.part("performance").get("task") for w in reversed(ws) if w.part("performance").get("task")), None)
    names = ("rmse", "mae") if task == "regression" else ("accuracy", "f1")
    lines = [_Line(n, data.values(f"performance.{n}"), _LINE[i]) for i, n in enumerate(names)]
    baseline: dict[str, Any] = {}
    for w in reversed(ws):
        baseline = _dict(w.part("performance").get("baseline"))
        if baseline:
            break
    refs = [(v, f"baseline {k} {fmt(v)}") for k, raw in baseline.items() if (v := _number(raw)) is not None]
    for n in names:
        refs += data.thresholds(f"performance.{n}")
    concept = data.flags("performance.drop")
    perf = _line_chart(ws, lines, label="model performance from feedback labels over time", width=_WIDE, height=220,
                       y_min=0.0, y_max=1.0 if task != "regression" else None, refs=refs, marks=concept,
                       mark_label="concept drift")
    labelled = _bar_chart(ws, data.values("performance.labelled"), label="labelled predictions per window",
                          name="labelled predictions")
    drop = _line_chart(ws, [_Line("below baseline", data.values("performance.drop"), _LINE[2], concept)],
                       label="performance drop against the baseline", y_min=None, refs=[(0.0, "baseline")],
                       marks=concept, mark_label="concept drift")
    note = ("Red bands: concept drift (the main metric fell further below its baseline than "
            "performance_drop allows). Windows without enough labels have no point.")
    return (f'<section id="performance"><h2>Performance over time</h2><div class="grid">'
            f'{_panel("Performance on labelled predictions", perf, note, full=True)}'
            f'{_panel("Labelled predictions", labelled)}'
            f'{_panel("Drop below the baseline", drop, "Positive: worse than the baseline.")}</div></section>')


def _service_section(data: _Data) -> str:
    ws = data.windows
    latency = _line_chart(ws, [_Line("p50 ms", data.values("service.latency_p50"), _LINE[0]),
                               _Line("p99 ms", data.values("service.latency_p99"), _LINE[1])],
                          label="latency over time", width=_WIDE, refs=[*data.thresholds("service.latency_p50"),
                                                           *data.thresholds("service.latency_p99")])
    throughput = _line_chart(ws, [_Line("requests per second", data.values("service.throughput"), _LINE[2])],
                             label="throughput over time", refs=data.thresholds("service.throughput"))
    errors = _line_chart(ws, [_Line("error rate", data.values("service.error_rate"), _BAD)],
                         label="error rate over time", percent=True, refs=data.thresholds("service.error_rate"))
    return (f'<section id="service"><h2>Service</h2><div class="grid">{_panel("Latency", latency, full=True)}'
            f'{_panel("Throughput", throughput)}{_panel("Error rate", errors)}</div></section>')


def _quality_section(data: _Data) -> str:
    ws = data.windows
    panels = []
    last = data.latest("quality")
    if last is not None:
        window, quality = last
        columns = {str(k): _dict(v) for k, v in _dict(quality.get("columns")).items()}
        flags = {"out_of_range": data.column_flags("quality.out_of_range", window),
                 "unseen_categories": data.column_flags("quality.unseen_categories", window)}

        def worst(item: tuple[str, dict[str, Any]]) -> float:
            return -max(_number(item[1].get(k)) or 0.0 for k in ("missing_rate", "out_of_range", "unseen_categories"))

        ranked = sorted(columns.items(), key=worst)
        shown = dict(ranked[:_MAX_QUALITY_ROWS])
        more = f" {len(ranked) - len(shown)} more columns are not shown." if len(ranked) > len(shown) else ""
        body = _quality_chart(shown, flags) if shown else empty_svg("no input columns measured", 360)
        panels.append(_panel(f"Input quality per column, window ending {format_ms(window.end)} UTC", body,
                             "Red: flagged (more values outside the reference range than chance explains, or "
                             "categories the reference never had); amber: missing values. Dashed tick: the share expected outside the "
                             f"range by chance. Worst columns first.{more}", full=True))
    else:
        panels.append(_panel("Input quality per column", empty_svg("no window with inputs yet", 360), full=True))
    rates = _line_chart(ws, [_Line("rejected requests", data.values("quality.rejected_rate"), _BAD),
                             _Line("missing inputs", data.values("quality.missing_rate"), _LINE[0])],
                        label="rejected and missing rate over time", width=_WIDE, percent=True,
                        refs=[*data.thresholds("quality.rejected_rate"), *data.thresholds("quality.missing_rate")])
    panels.append(_panel("Rejected requests and missing input values over time", rates, full=True))
    return f'<section id="quality"><h2>Quality</h2><div class="grid">{"".join(panels)}</div></section>'


def _alerts_section(alerts: Sequence[Alert], now: int) -> str:
    if not alerts:
        return ('<section id="alerts"><h2>Alerts</h2><p class="muted">No alerts have fired for this deployment.'
                "</p></section>")
    chart = _alert_timeline(alerts, now)
    rows = []
    for a in alerts:  # newest first
        end = a.resolved_at if a.resolved_at is not None else now
        state = _badge(a.state, "bad" if a.state == "firing" else "good")
        rows.append(
            f"<tr><td>{escape(a.rule)}</td><td>{state}</td><td>{escape(format_ms(a.opened_at))}</td>"
            f"<td>{escape(format_ms(a.resolved_at)) if a.resolved_at is not None else '–'}</td>"
            f'<td class="n">{escape(_duration(end - a.opened_at))}</td><td class="n">{escape(fmt(a.value))}</td>'
            f"<td>{escape(a.message)}</td></tr>"
        )
    th = "".join(f"<th>{h}</th>" for h in ("rule", "state", "opened (UTC)", "resolved (UTC)", "open for", "value",
                                           "message"))
    table = f'<div class="wrap"><table><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    return (f'<section id="alerts"><h2>Alerts</h2><div class="grid">'
            f'{_panel("Alert timeline", chart, "Red: still firing (drawn up to now). Grey: resolved.", full=True)}'
            f"</div><h3 style=\"margin-top:14px\">All alerts</h3>{table}</section>")


def _duration(ms: float) -> str:
    s = max(ms, 0) / 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.0f} s"
