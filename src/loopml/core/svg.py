"""Building blocks of the self-contained HTML reports: escaping, number formatting, colours, inline SVG.

The reports (data profiles, deployment monitoring) are single HTML files with
inline CSS and SVG: no JavaScript, no network. Everything here returns plain
strings; every piece of text that reaches the page goes through :func:`escape`.
"""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["BASE_CSS", "clip", "diverging", "empty_svg", "escape", "fmt", "sequential", "short", "svg"]

#: page layout shared by the reports: typography, stat cards, tables, muted text, footer
BASE_CSS = """
:root { --fg:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f8fafc; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1160px; margin:0 auto; padding:28px 24px 48px; }
h1 { font-size:24px; margin:0 0 4px; } h2 { font-size:18px; margin:32px 0 12px; }
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
svg text { font-family:inherit; }
.muted { color:var(--muted); }
footer { margin-top:40px; color:var(--muted); font-size:12px; }
"""


def escape(text: Any) -> str:
    """``str(text)`` safe inside HTML text and quoted attribute values (``<``, ``&``, quotes escaped)."""
    return html.escape(str(text), quote=True)


def fmt(x: Any) -> str:
    """A value for people: thousands separators, 4 significant digits, ``–`` for None, ``NaN``/``∞`` spelled out."""
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


def short(n: int) -> str:
    """``1.2k``, ``3.4M``: a count for an axis label."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def clip(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= n else text[: n - 1] + "…"


def diverging(r: float) -> str:
    """Blue (−1) → near-white (0) → red (+1)."""
    r = max(-1.0, min(1.0, r))
    mid = (247, 247, 247)
    end = (178, 24, 43) if r > 0 else (33, 102, 172)
    t = abs(r)
    red, green, blue = (round(m + (e - m) * t) for m, e in zip(mid, end, strict=True))
    return f"#{red:02x}{green:02x}{blue:02x}"


def sequential(t: float) -> str:
    """Near-white (0) → orange → dark red (1); ``t`` is clipped to 0..1."""
    t = max(0.0, min(1.0, t)) if math.isfinite(t) else 0.0
    stops = ((0.0, (255, 247, 236)), (0.5, (252, 141, 89)), (1.0, (153, 0, 13)))
    for (t0, c0), (t1, c1) in zip(stops, stops[1:], strict=False):
        if t <= t1:
            u = (t - t0) / (t1 - t0)
            red, green, blue = (round(a + (b - a) * u) for a, b in zip(c0, c1, strict=True))
            return f"#{red:02x}{green:02x}{blue:02x}"
    return "#99000d"


def svg(body: str, width: float, height: float, *, label: str, cls: str = "chart") -> str:
    """An inline ``<svg>`` of ``width`` × ``height`` holding ``body``; ``label`` (escaped) names it for screen readers."""
    return (
        f'<svg class="{escape(cls)}" role="img" aria-label="{escape(label)}" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" xmlns="http://www.w3.org/2000/svg">'
        f"{body}</svg>"
    )


def empty_svg(message: str, width: int = 320) -> str:
    """A chart-sized placeholder saying ``message`` (escaped)."""
    return (
        f'<svg class="chart" role="img" width="{width}" height="40" viewBox="0 0 {width} 40" '
        f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="24" font-size="12" fill="#94a3b8">'
        f"{escape(message)}</text></svg>"
    )
