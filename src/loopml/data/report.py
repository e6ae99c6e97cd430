"""A profile as one self-contained HTML page (a small exploratory data report).

Inline CSS and inline SVG generated here: no JavaScript, no network, so the
page can be attached to a dataset version, mailed, or opened offline. Every
piece of user text (title, column names, values, messages) is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loopml.data.models import Anomaly, ColumnProfile, Histogram, PiiFinding, Profile

__all__ = ["render_profile_html", "write_profile_html"]

_KIND_COLOURS = {
    "numeric": "#2563eb",
    "categorical": "#7c3aed",
    "string": "#0d9488",
    "boolean": "#ca8a04",
    "datetime": "#db2777",
    "other": "#64748b",
}
_BAR = "#3b82f6"
_TOP_BARS = 10  # values shown in a column's bar chart

_CSS = """
:root { --fg:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f8fafc; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1160px; margin:0 auto; padding:28px 24px 48px; }
h1 { font-size:24px; margin:0 0 4px; } h2 { font-size:18px; margin:32px 0 12px; }
h3 { font-size:15px; margin:0; display:flex; gap:8px; align-items:center; flex-wrap:wrap; }
.sub { color:var(--muted); margin:0; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin-top:20px; }
.stat { flex:1 1 130px; background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.stat b { display:block; font-size:20px; } .stat span { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; width:100%; background:var(--card); }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; text-transform:uppercase; letter-spacing:.03em; }
td.n { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.wrap { border:1px solid var(--line); border-radius:10px; overflow:auto; }
tbody tr:nth-child(even) { background:#fbfdff; }
a { color:#1d4ed8; text-decoration:none; } a:hover { text-decoration:underline; }
.kind { display:inline-block; padding:1px 8px; border-radius:999px; font-size:11px; font-weight:600; color:#fff; }
.pii { display:inline-block; padding:1px 8px; border-radius:999px; font-size:11px; font-weight:600;
  background:#fee2e2; color:#b91c1c; border:1px solid #fecaca; }
.sev-error { color:#b91c1c; font-weight:600; } .sev-warning { color:#b45309; font-weight:600; }
.columns { display:flex; flex-wrap:wrap; gap:14px; }
.col { flex:1 1 520px; min-width:0; background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.col .body { display:flex; gap:16px; align-items:flex-start; margin-top:10px; flex-wrap:wrap; }
.col table { width:auto; min-width:170px; font-size:13px; }
.col td, .col th { padding:2px 8px 2px 0; border:0; }
.col th { text-transform:none; letter-spacing:0; font-weight:500; font-size:13px; }
svg text { font-family:inherit; }
.muted { color:var(--muted); }
footer { margin-top:40px; color:var(--muted); font-size:12px; }
"""


def render_profile_html(
    profile: Profile,
    *,
    title: str,
    pii: Sequence[PiiFinding] | None = None,
    anomalies: Sequence[Anomaly] | None = None,
) -> str:
    """Render a profile as a self-contained HTML page.

    Args:
        profile: the profile to show.
        title: page title (escaped).
        pii: PII findings; flagged columns get a badge (kinds already in
            ``ColumnProfile.pii`` are shown too).
        anomalies: schema anomalies to list in a table.

    Returns:
        The HTML document as a string.
    """
    pii_by_column: dict[str, dict[str, PiiFinding | None]] = {}
    for name, col in profile.columns.items():
        for kind in col.pii:
            pii_by_column.setdefault(name, {})[kind] = None
    for finding in pii or []:
        pii_by_column.setdefault(finding.column, {})[finding.kind] = finding
    ids = {name: f"col-{i}" for i, name in enumerate(profile.columns)}

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="sub">{profile.num_rows:,} rows · {len(profile.columns):,} columns',
    ]
    if profile.sample_size is not None and profile.num_rows and profile.sample_size < profile.num_rows:
        parts.append(f" · quantiles and histograms from a uniform sample of {profile.sample_size:,} rows")
    parts.append("</p></header>")
    parts.append(_overview(profile, pii_by_column, anomalies))
    parts.append("<section><h2>Columns</h2>")
    parts.append(_summary_table(profile, ids, pii_by_column))
    parts.append("</section>")
    if anomalies:
        parts.append("<section><h2>Anomalies</h2>")
        parts.append(_anomaly_table(anomalies, ids))
        parts.append("</section>")
    parts.append("<section><h2>Correlations</h2>")
    parts.append(_heatmap(profile))
    parts.append("</section>")
    parts.append('<section><h2>Column details</h2><div class="columns">')
    for name, col in profile.columns.items():
        parts.append(_column_card(col, ids[name], pii_by_column.get(name, {})))
    parts.append("</div></section>")
    parts.append("<footer>Generated by loopml · data profile</footer></main></body></html>")
    return "".join(parts)


def write_profile_html(
    profile: Profile,
    path: str | Path,
    *,
    title: str = "Data profile",
    pii: Sequence[PiiFinding] | None = None,
    anomalies: Sequence[Anomaly] | None = None,
) -> Path:
    """Render a profile (see :func:`render_profile_html`) and write it to ``path`` (UTF-8).

    Returns:
        The path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_profile_html(profile, title=title, pii=pii, anomalies=anomalies), encoding="utf-8")
    return out


# -- sections ------------------------------------------------------------------------


def _overview(
    profile: Profile, pii_by_column: dict[str, dict[str, PiiFinding | None]], anomalies: Sequence[Anomaly] | None
) -> str:
    cells = sum(c.count + c.nulls for c in profile.columns.values())
    nulls = sum(c.nulls for c in profile.columns.values())
    kinds: dict[str, int] = {}
    for c in profile.columns.values():
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    stats = [
        (f"{profile.num_rows:,}", "rows"),
        (f"{len(profile.columns):,}", "columns"),
        (f"{nulls / cells:.1%}" if cells else "0%", "missing cells"),
    ]
    stats += [(str(n), f"{k} columns") for k, n in sorted(kinds.items())]
    if pii_by_column:
        stats.append((str(len(pii_by_column)), "columns with PII"))
    if anomalies:
        stats.append((str(len(anomalies)), "anomalies"))
    body = "".join(f'<div class="stat"><b>{_e(v)}</b><span>{_e(label)}</span></div>' for v, label in stats)
    return f'<div class="cards">{body}</div>'


def _summary_table(profile: Profile, ids: dict[str, str], pii: dict[str, dict[str, PiiFinding | None]]) -> str:
    head = ["column", "kind", "nulls", "distinct", "mean", "std", "min", "max"]
    rows = []
    for name, c in profile.columns.items():
        distinct = "–" if c.distinct is None else ("≈" if c.distinct_approx else "") + f"{c.distinct:,}"
        badges = "".join(f' <span class="pii">{_e(k)}</span>' for k in pii.get(name, {}))
        rows.append(
            "<tr>"
            f'<td><a href="#{ids[name]}">{_e(name)}</a>{badges}</td>'
            f"<td>{_kind_badge(c.kind)}</td>"
            f'<td class="n">{c.null_rate:.1%}</td>'
            f'<td class="n">{distinct}</td>'
            f'<td class="n">{_e(_fmt(c.mean))}</td>'
            f'<td class="n">{_e(_fmt(c.std))}</td>'
            f'<td class="n">{_e(_fmt(c.min))}</td>'
            f'<td class="n">{_e(_fmt(c.max))}</td>'
            "</tr>"
        )
    th = "".join(f"<th>{h}</th>" for h in head)
    return f'<div class="wrap"><table><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _anomaly_table(anomalies: Sequence[Anomaly], ids: dict[str, str]) -> str:
    rows = []
    for a in anomalies:
        if a.column is None:
            col = '<span class="muted">(table)</span>'
        elif a.column in ids:
            col = f'<a href="#{ids[a.column]}">{_e(a.column)}</a>'
        else:
            col = _e(a.column)
        examples = ", ".join(_e(_fmt(x)) for x in a.examples[:5])
        rows.append(
            f"<tr><td>{col}</td><td>{_e(a.kind)}</td>"
            f'<td class="sev-{_e(a.severity)}">{_e(a.severity)}</td>'
            f'<td class="n">{a.rows:,}</td><td>{_e(a.message)}</td><td>{examples}</td></tr>'
        )
    th = "".join(f"<th>{h}</th>" for h in ("column", "kind", "severity", "rows", "message", "examples"))
    return f'<div class="wrap"><table><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _column_card(c: ColumnProfile, anchor: str, pii: dict[str, PiiFinding | None]) -> str:
    badges = []
    for kind, finding in pii.items():
        tip = ""
        if finding is not None:
            tip = f"{finding.match_rate:.0%} of sampled values match"
            if finding.reason:
                tip += f"; {finding.reason}"
            if finding.examples:
                tip += "; e.g. " + ", ".join(finding.examples[:3])
        badges.append(f'<span class="pii" title="{_e(tip)}">PII: {_e(kind)}</span>')
    stats: list[tuple[str, str]] = [
        ("count", f"{c.count:,}"),
        ("nulls", f"{c.nulls:,} ({c.null_rate:.1%})"),
    ]
    if c.distinct is not None:
        stats.append(("distinct", ("≈" if c.distinct_approx else "") + f"{c.distinct:,}"))
    if c.kind == "numeric":
        stats += [("mean", _fmt(c.mean)), ("std", _fmt(c.std)), ("min", _fmt(c.min))]
        stats += [
            (f"p{_pct(q)}", _fmt(v)) for q, v in c.quantiles.items() if q in ("0.05", "0.25", "0.5", "0.75", "0.95")
        ]
        stats.append(("max", _fmt(c.max)))
    elif c.kind == "datetime":
        stats += [("min", _fmt(c.min)), ("max", _fmt(c.max))]
    table = "".join(f"<tr><th>{_e(k)}</th><td class='n'>{_e(v)}</td></tr>" for k, v in stats)
    if c.kind == "numeric" and c.histogram is not None and c.histogram.counts:
        chart = _histogram_svg(c.histogram, c.name)
    elif c.top:
        chart = _bars_svg(c.top, c.count, c.name)
    else:
        chart = _empty_svg("no distribution to plot" if c.count else "no values")
    return (
        f'<article class="col" id="{anchor}"><h3>{_e(c.name)} {_kind_badge(c.kind)}'
        f'<span class="muted" style="font-weight:400;font-size:12px">{_e(c.type)}</span>{"".join(badges)}</h3>'
        f'<div class="body"><table>{table}</table>{chart}</div></article>'
    )


# -- charts --------------------------------------------------------------------------


def _histogram_svg(h: Histogram, name: str) -> str:
    width, height, left, bottom, top = 320, 150, 40, 22, 8
    plot_w, plot_h = width - left - 6, height - bottom - top
    peak = max(h.counts) or 1
    n = len(h.counts)
    bar_w = plot_w / n
    bars = []
    for i, count in enumerate(h.counts):
        bh = plot_h * count / peak
        x = left + i * bar_w
        tip = f"[{_fmt(h.edges[i])}, {_fmt(h.edges[i + 1])}{']' if i == n - 1 else ')'}: {count:,}"
        bars.append(
            f'<rect x="{x + 0.5:.1f}" y="{top + plot_h - bh:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
            f'height="{bh:.1f}" fill="{_BAR}"><title>{_e(tip)}</title></rect>'
        )
    axis = (
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#cbd5e1"/>'
        f'<text x="{left}" y="{height - 6}" font-size="10" fill="#64748b">{_e(_fmt(h.edges[0]))}</text>'
        f'<text x="{left + plot_w}" y="{height - 6}" font-size="10" fill="#64748b" '
        f'text-anchor="end">{_e(_fmt(h.edges[-1]))}</text>'
        f'<text x="{left - 4}" y="{top + 8}" font-size="10" fill="#64748b" text-anchor="end">{_e(_short(peak))}</text>'
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" fill="#64748b" text-anchor="end">0</text>'
    )
    return (
        f'<svg class="chart" role="img" aria-label="histogram of {_e(name)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(bars)}{axis}</svg>'
    )


def _bars_svg(top: list[tuple[Any, int]], count: int, name: str) -> str:
    shown = top[:_TOP_BARS]
    rest = count - sum(c for _, c in shown)
    rows: list[tuple[str, int, bool]] = [(_label(v), c, False) for v, c in shown]
    if rest > 0:
        rows.append((f"other ({len(top) - len(shown)}+ values)" if len(top) > len(shown) else "other", rest, True))
    width, row_h, label_w, value_w = 320, 18, 110, 74
    plot_w = width - label_w - value_w
    height = row_h * len(rows) + 4
    peak = max(c for _, c, _ in rows) or 1
    items = []
    for i, (label, c, is_rest) in enumerate(rows):
        y = 2 + i * row_h
        bw = plot_w * c / peak
        share = c / count if count else 0.0
        items.append(
            f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" text-anchor="end" fill="#334155">'
            f"{_e(_clip(label, 18))}<title>{_e(label)}</title></text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{max(bw, 1):.1f}" height="{row_h - 6}" rx="2" '
            f'fill="{"#cbd5e1" if is_rest else _BAR}"><title>{_e(label)}: {c:,} ({share:.1%})</title></rect>'
            f'<text x="{label_w + bw + 4:.1f}" y="{y + 13}" font-size="10" fill="#64748b">{share:.1%}</text>'
        )
    return (
        f'<svg class="chart" role="img" aria-label="most frequent values of {_e(name)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(items)}</svg>'
    )


def _empty_svg(message: str) -> str:
    return (
        '<svg class="chart" role="img" width="320" height="40" viewBox="0 0 320 40" '
        f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="24" font-size="12" fill="#94a3b8">{_e(message)}</text></svg>'
    )


def _heatmap(profile: Profile) -> str:
    names = [n for n, c in profile.columns.items() if c.kind == "numeric" and n in profile.correlations]
    if len(names) < 2:
        return (
            '<p class="muted">No correlations: fewer than two numeric columns with values (or too many to compute).</p>'
        )
    n = len(names)
    cell = max(10.0, min(28.0, 640 / n))
    label_w = 150
    grid = cell * n
    legend_h = 46
    width = label_w + grid + 10
    height = label_w + grid + legend_h
    show_values = cell >= 24
    out = []
    for i, a in enumerate(names):
        y = label_w + i * cell
        out.append(
            f'<text x="{label_w - 6}" y="{y + cell / 2 + 4:.1f}" font-size="11" text-anchor="end" fill="#334155">'
            f"{_e(_clip(a, 20))}<title>{_e(a)}</title></text>"
        )
        x = label_w + i * cell + cell / 2
        out.append(
            f'<text transform="translate({x + 4:.1f},{label_w - 6}) rotate(-60)" font-size="11" fill="#334155">'
            f"{_e(_clip(a, 20))}<title>{_e(a)}</title></text>"
        )
        row = profile.correlations.get(a, {})
        for j, b in enumerate(names):
            r = row.get(b)
            fill = "#e5e7eb" if r is None or not math.isfinite(r) else _diverging(r)
            tip = f"{a} × {b}: " + ("n/a" if r is None else f"{r:.3f}")
            out.append(
                f'<rect x="{label_w + j * cell:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                f'fill="{fill}" stroke="#fff" stroke-width="1"><title>{_e(tip)}</title></rect>'
            )
            if show_values and r is not None:
                colour = "#fff" if abs(r) > 0.6 else "#1f2937"
                out.append(
                    f'<text x="{label_w + j * cell + cell / 2:.1f}" y="{y + cell / 2 + 3:.1f}" font-size="8" '
                    f'text-anchor="middle" fill="{colour}">{r:.2f}</text>'
                )
    # colour scale
    ly = label_w + grid + 16
    lw = min(grid, 240.0)
    stops = "".join(f'<stop offset="{k / 10:.1f}" stop-color="{_diverging(-1 + k / 5)}"/>' for k in range(11))
    out.append(
        f'<defs><linearGradient id="corr-scale" x1="0" x2="1" y1="0" y2="0">{stops}</linearGradient></defs>'
        f'<rect x="{label_w}" y="{ly}" width="{lw:.1f}" height="10" fill="url(#corr-scale)" stroke="#cbd5e1"/>'
        f'<text x="{label_w}" y="{ly + 24}" font-size="10" fill="#64748b">−1</text>'
        f'<text x="{label_w + lw / 2:.1f}" y="{ly + 24}" font-size="10" fill="#64748b" text-anchor="middle">0</text>'
        f'<text x="{label_w + lw:.1f}" y="{ly + 24}" font-size="10" fill="#64748b" text-anchor="end">+1</text>'
        f'<text x="{label_w + lw + 10:.1f}" y="{ly + 9}" font-size="10" fill="#64748b">Pearson r</text>'
    )
    return (
        f'<div class="wrap" style="background:#fff;padding:8px"><svg class="heatmap" role="img" '
        f'aria-label="correlation heatmap" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" xmlns="http://www.w3.org/2000/svg">{"".join(out)}</svg></div>'
    )


# -- formatting ----------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _kind_badge(kind: str) -> str:
    return f'<span class="kind" style="background:{_KIND_COLOURS.get(kind, "#64748b")}">{_e(kind)}</span>'


def _diverging(r: float) -> str:
    """Blue (−1) → near-white (0) → red (+1)."""
    r = max(-1.0, min(1.0, r))
    mid = (247, 247, 247)
    end = (178, 24, 43) if r > 0 else (33, 102, 172)
    t = abs(r)
    red, green, blue = (round(m + (e - m) * t) for m, e in zip(mid, end, strict=True))
    return f"#{red:02x}{green:02x}{blue:02x}"


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if x == 0:
            return "0"
        if abs(x) >= 1e6 or abs(x) < 1e-3:
            return f"{x:.3e}"
        return f"{x:,.4g}" if abs(x) >= 1000 else f"{x:.4g}"
    return str(x)


def _short(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _pct(q: str) -> str:
    value = float(q) * 100
    return f"{value:g}"


def _label(v: Any) -> str:
    if v == "":
        return '""'
    return str(v)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
