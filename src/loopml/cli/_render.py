"""Shared Rich rendering helpers for the command line.

Consoles are created per call, so that they pick up the current
``sys.stdout``/``sys.stderr`` (the test runner swaps them) and ``COLUMNS``.
User-supplied text is always wrapped in :class:`rich.text.Text`, never parsed
as Rich markup, so a run called ``[red]x`` prints as written.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from loopml.errors import LoopmlError

__all__ = [
    "console",
    "err_console",
    "fmt_bytes",
    "fmt_duration",
    "fmt_number",
    "fmt_time",
    "fmt_value",
    "kv_table",
    "print_error",
    "section",
    "short_hash",
    "table",
    "short_id",
    "status_text",
    "text",
]

STATUS_STYLES = {
    "running": "bold cyan",
    "finished": "green",
    "failed": "bold red",
    "killed": "yellow",
}


#: width used when output is not a terminal (a pipe, a file, a test runner) and COLUMNS is unset
PIPE_WIDTH = 200


def console() -> Console:
    """A console on the current standard output.

    When the output is not a terminal, lines are up to :data:`PIPE_WIDTH`
    wide instead of Rich's default 80, so ``loopml runs list > runs.txt`` keeps
    every column.
    """
    out = Console(highlight=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPE_WIDTH
    return out


def err_console() -> Console:
    """A console on the current standard error."""
    return Console(stderr=True, highlight=False)


def print_error(error: LoopmlError) -> None:
    """Print a loopml error as a red headline with its code, then its message (no traceback)."""
    out = err_console()
    headline = Text("Error", style="bold red")
    headline.append(f" [{error.code}]", style="red")
    out.print(headline)
    out.print(Text(error.message), soft_wrap=True)
    problems = getattr(error, "problems", None)
    if problems:
        for p in problems:
            out.print(Text(f"  - {p}"), soft_wrap=True)


def text(value: Any, style: str = "") -> Text:
    """``value`` as literal text (no markup); None becomes a dim ``-``."""
    if value is None:
        return Text("-", style="dim")
    return Text(str(value), style=style)


def short_id(run_id: str | None) -> str:
    """The first 8 characters of an id, enough to pass back to ``runs show``."""
    return "-" if not run_id else run_id[:8]


def short_hash(digest: str | None, n: int = 12) -> str:
    return "-" if not digest else digest[:n]


def fmt_time(ms: int | None) -> str:
    from loopml.core import format_ms

    return format_ms(ms)


def fmt_duration(ms: int | None) -> str:
    """``850ms``, ``4.2s``, ``3m 04s``, ``2h 05m``; ``-`` for None."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def fmt_number(value: float | int | None) -> str:
    """A metric value with up to 6 significant digits; ``nan``/``inf`` as such."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def fmt_value(value: Any) -> str:
    """A param value as logged: strings as they are, anything else as JSON (``10.0`` stays ``10.0``)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # unreachable


def status_text(status: Any) -> Text:
    value = getattr(status, "value", status)
    return Text(str(value), style=STATUS_STYLES.get(str(value), ""))


def table(title: str | Text | None = None, **kwargs: Any) -> Table:
    """A table in the house style: a rule under the header, no outer frame, title on the left."""
    opts: dict[str, Any] = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "header_style": "bold",
                            "title_justify": "left", "title_style": "bold"}
    opts.update(kwargs)
    return Table(title=title, **opts)


def kv_table(rows: list[tuple[str, Any]], *, title: str | None = None) -> Table:
    """A two-column key/value table without a header."""
    table = Table(title=title, show_header=False, box=None, pad_edge=False, title_justify="left",
                  title_style="bold")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else text(value))
    return table


def section(title: str) -> Text:
    return Text(title, style="bold underline")
