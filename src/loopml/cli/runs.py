"""``loopml runs``: list, show and compare tracked runs."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import LoopmlGroup, get_settings

if TYPE_CHECKING:
    from loopml.tracking import Run, TrackingService

__all__ = ["app", "compare", "list_runs", "lower_is_better", "resolve_run_id", "show"]

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True, help="List, inspect and compare tracked runs.")

#: most param and metric columns ``runs list`` shows (each); the rest are counted in the footer
MAX_PARAM_COLUMNS = 6
MAX_METRIC_COLUMNS = 6
MIN_PREFIX = 4
_HEX = re.compile(r"^[0-9a-f]+$")
_LOWER_IS_BETTER = re.compile(r"(loss|err|mse|mae|rmse|mape|latency|time|duration|perplexity|cost)", re.I)


def _service(ctx: typer.Context) -> TrackingService:
    from loopml.tracking import get_tracking

    return get_tracking(get_settings(ctx))


def resolve_run_id(service: TrackingService, run_id: str) -> str:
    """The full id of the run whose id is ``run_id`` or starts with it (at least 4 characters).

    Raises:
        InvalidInputError: the prefix is too short or matches several runs.
        RunNotFoundError: no run id starts with it.
    """
    from loopml.errors import InvalidInputError, RunNotFoundError

    prefix = run_id.strip().lower()
    if len(prefix) < MIN_PREFIX:
        raise InvalidInputError(
            f"run id {run_id!r} is too short; give the full id or a unique prefix of at least {MIN_PREFIX} characters",
            run_id=run_id,
        )
    if not _HEX.match(prefix):
        raise RunNotFoundError(
            f"run {run_id!r} does not exist: run ids are hexadecimal; list runs with `loopml runs list`",
            run_id=run_id,
        )
    if len(prefix) == 32:
        return service.get_run(prefix).id  # raises RunNotFoundError
    page = service.search_runs(None, f"id like '{prefix}%'", ["start_time DESC"], 5)
    if page.total == 0:
        raise RunNotFoundError(
            f"no run id starts with {prefix!r} in {service.backend.settings.project_dir}; "
            "list runs with `loopml runs list`",
            run_id=run_id,
        )
    if page.total > 1:
        shown = ", ".join(run.id[:12] for run in page.runs)
        more = f" and {page.total - len(page.runs)} more" if page.total > len(page.runs) else ""
        raise InvalidInputError(
            f"run id prefix {prefix!r} is ambiguous: it matches {page.total} runs ({shown}{more}); "
            "give more characters",
            run_id=run_id,
        )
    return page.runs[0].id


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better, guessed from its name (loss, error, rmse, ...)."""
    return bool(_LOWER_IS_BETTER.search(metric))


def _rank(keys_per_run: list[Sequence[str]], prefer: set[str]) -> list[str]:
    """Keys by priority: those named in the filter or order-by first, then the most common, then by name."""
    counts = Counter(k for keys in keys_per_run for k in keys)
    return sorted(counts, key=lambda k: (k not in prefer, -counts[k], k))


def _interleave(a: list[Any], b: list[Any]) -> list[Any]:
    out: list[Any] = []
    for i in range(max(len(a), len(b))):
        out += b[i:i + 1] + a[i:i + 1]
    return out


_GAP = 3  # characters between two table columns (padding and divider)
_FLEX_MIN = 12  # flexible columns (names, params) shrink to this width before others are dropped


@dataclass
class _Col:
    header: str | Text
    cells: list[Text]
    flex: bool = False
    justify: Literal["left", "right"] = "left"

    def content(self) -> int:
        """Width of the widest cell or the header."""
        return max([cell_len(str(self.header))] + [c.cell_len for c in self.cells])

    def need(self) -> int:
        """Width this column needs: its content, or for a flexible column at most ``_FLEX_MIN``."""
        return min(self.content(), _FLEX_MIN) if self.flex else self.content()


def _mentioned(entity: str, texts: Sequence[str]) -> set[str]:
    """Keys referenced as ``params.x`` / ``metrics.x`` in a filter or order-by."""
    pat = re.compile(rf"\b{entity}s?\.(?:`([^`]+)`|\"([^\"]+)\"|([\w\-/:.]+))")
    found = set()
    for t in texts:
        for m in pat.finditer(t):
            found.add(next(g for g in m.groups() if g))
    return found


@app.command("list")
def list_runs(
    ctx: typer.Context,
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Only runs of this experiment (repeatable).")
    ] = None,
    filter: Annotated[
        str | None,
        typer.Option("--filter", "-f", help="Filter, e.g. \"metrics.accuracy > 0.9 and params.model = 'rf'\"."),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", "-o", help="Sort key, e.g. 'metrics.accuracy DESC' (repeatable)."),
    ] = None,
    max_results: Annotated[int, typer.Option("--max", "-n", min=1, help="Runs per page.")] = 50,
    page_token: Annotated[str | None, typer.Option("--page-token", help="Token printed under the previous page.")] = None,
) -> None:
    """List runs, newest first, with their params and latest metrics."""
    svc = _service(ctx)
    order = list(order_by) if order_by else ["start_time DESC"]
    page = svc.search_runs(list(experiment) if experiment else None, filter, order, max_results, page_token)
    out = r.console()
    if not page.runs:
        where = " matching the filter" if filter else ""
        out.print(Text(f"No runs{where} in {svc.backend.settings.project_dir}.", style="yellow"))
        if not filter and not experiment and page_token is None:
            out.print("Log one with `loopml.start_run(...)`, or try `loopml demo`.")
        return

    experiments = {run.experiment for run in page.runs}
    query = [filter or "", *order]
    params = _rank([list(run.params) for run in page.runs], _mentioned("param", query))
    metrics = _rank([list(run.metrics) for run in page.runs], _mentioned("metric", query))

    base = [
        _Col("id", [Text(r.short_id(run.id), style="cyan") for run in page.runs]),
        _Col("name", [r.text(run.name) for run in page.runs], flex=True),
    ]
    if len(experiments) > 1:
        base.append(_Col("experiment", [r.text(run.experiment) for run in page.runs], flex=True))
    base += [
        _Col("status", [r.status_text(run.status) for run in page.runs]),
        _Col("start (UTC)", [Text(r.fmt_time(run.start_time)) for run in page.runs]),
        _Col("duration", [Text(r.fmt_duration(run.duration_ms)) for run in page.runs], justify="right"),
    ]
    param_cols = {k: _Col(Text(k, style="bold magenta"),
                          [r.text(r.fmt_value(run.params[k])) if k in run.params else r.text(None) for run in page.runs],
                          flex=True)
                  for k in params[:MAX_PARAM_COLUMNS]}
    metric_cols = {k: _Col(Text(k, style="bold green"),
                           [r.text(r.fmt_number(run.metrics[k].value)) if k in run.metrics else r.text(None)
                            for run in page.runs], justify="right")
                   for k in metrics[:MAX_METRIC_COLUMNS]}
    # Add param and metric columns, best-ranked first and alternating, while they fit the terminal.
    order_keys = [("metric", k) for k in metrics[:MAX_METRIC_COLUMNS]]
    order_keys = _interleave([("param", k) for k in params[:MAX_PARAM_COLUMNS]], order_keys)
    width = sum(c.need() for c in base) + _GAP * (len(base) - 1)
    shown: set[tuple[str, str]] = set()
    for kind, k in order_keys:
        col = param_cols[k] if kind == "param" else metric_cols[k]
        if width + _GAP + col.need() <= out.width:
            width += _GAP + col.need()
            shown.add((kind, k))
    cols = base + [param_cols[k] for k in params if ("param", k) in shown] \
        + [metric_cols[k] for k in metrics if ("metric", k) in shown]
    hidden_params = len(params) - sum(1 for kind, _ in shown if kind == "param")
    hidden_metrics = len(metrics) - sum(1 for kind, _ in shown if kind == "metric")

    title = None
    if len(experiments) == 1:
        title = Text.assemble("experiment ", (next(iter(experiments)), "bold"))
    table = r.table(title)
    # Fixed widths: every column gets what it needs; spare room widens truncated flexible columns.
    spare = out.width - (sum(c.need() for c in cols) + _GAP * (len(cols) - 1))
    for c in cols:
        w = c.need()
        if c.flex and spare > 0:
            extra = min(spare, c.content() - w)
            w, spare = w + extra, spare - extra
        table.add_column(c.header, justify=c.justify, no_wrap=True, overflow="ellipsis", width=max(w, 1))
    for i in range(len(page.runs)):
        table.add_row(*[c.cells[i] for c in cols])
    out.print(table)

    footer = Text(f"{len(page.runs)} of {page.total} run{'s' if page.total != 1 else ''}")
    hidden = []
    if hidden_params:
        hidden.append(f"{hidden_params} param")
    if hidden_metrics:
        hidden.append(f"{hidden_metrics} metric")
    if hidden:
        footer.append(f"; {' and '.join(hidden)} column(s) not shown (see `loopml runs show ID`)", style="dim")
    out.print(footer)
    if page.next_page_token:
        out.print(Text.assemble("Next page: ", ("--page-token ", "bold"), (page.next_page_token, "bold cyan")))


@app.command()
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id, or a unique prefix of at least 4 characters.")],
) -> None:
    """Show everything recorded about one run."""
    svc = _service(ctx)
    run = svc.get_run(resolve_run_id(svc, run_id))
    history = svc.metric_history(run.id)
    points = Counter(m.key for m in history)
    out = r.console()
    out.print(_run_header(run))
    out.print()
    out.print(_system_table(run))
    out.print()

    params = r.table("Params")
    params.add_column("key", style="magenta")
    params.add_column("value", overflow="fold")
    for k in sorted(run.params):
        params.add_row(Text(k), r.text(r.fmt_value(run.params[k])))
    out.print(params if run.params else Text("Params: none", style="dim"))
    out.print()

    tags = r.table("Tags")
    tags.add_column("key", style="blue")
    tags.add_column("value", overflow="fold")
    for k in sorted(run.tags):
        tags.add_row(Text(k), Text(run.tags[k]))
    out.print(tags if run.tags else Text("Tags: none", style="dim"))
    out.print()

    metrics = r.table("Metrics")
    metrics.add_column("key", style="green")
    metrics.add_column("latest", justify="right")
    metrics.add_column("step", justify="right")
    metrics.add_column("points", justify="right")
    metrics.add_column("logged (UTC)")
    for k in sorted(run.metrics):
        m = run.metrics[k]
        metrics.add_row(Text(k), r.fmt_number(m.value), str(m.step), str(points.get(k, 1)), r.fmt_time(m.timestamp))
    out.print(metrics if run.metrics else Text("Metrics: none", style="dim"))
    out.print()

    if run.datasets:
        ds = r.table("Datasets")
        for col in ("name", "context", "rows", "columns", "digest", "path"):
            ds.add_column(col, justify="right" if col in ("rows", "columns") else "left")
        for d in run.datasets:
            ds.add_row(Text(d.name), r.text(d.context), r.text(d.num_rows), r.text(len(d.schema) if d.schema else None),
                       r.short_hash(d.digest), r.text(d.path))
        out.print(ds)
    else:
        out.print(Text("Datasets: none", style="dim"))
    out.print()

    if run.artifacts:
        arts = r.table("Artifacts")
        arts.add_column("path", overflow="fold")
        arts.add_column("size", justify="right")
        arts.add_column("sha256")
        for a in run.artifacts:
            arts.add_row(Text(a.path), r.fmt_bytes(a.size), r.short_hash(a.sha256))
        out.print(arts)
    else:
        out.print(Text("Artifacts: none", style="dim"))


def _run_header(run: Run) -> Table:
    rows: list[tuple[str, Any]] = [
        ("run", Text(run.id, style="bold cyan")),
        ("name", run.name),
        ("experiment", Text.assemble(run.experiment, (f"  (id {run.experiment_id})", "dim"))),
        ("status", r.status_text(run.status)),
        ("started", r.fmt_time(run.start_time) + " UTC"),
        ("ended", r.fmt_time(run.end_time) + (" UTC" if run.end_time else "")),
        ("duration", r.fmt_duration(run.duration_ms)),
        ("user", run.user),
    ]
    if run.parent_run_id:
        rows.append(("parent run", run.parent_run_id))
    return r.kv_table(rows)


def _system_table(run: Run) -> Table:
    sysinfo = run.system or {}
    if run.git_commit:
        git = Text(run.git_commit[:12])
        if run.git_dirty:
            git.append("  (dirty: uncommitted changes)", style="yellow")
        elif run.git_dirty is False:
            git.append("  (clean)", style="dim")
    else:
        git = Text("not a git work tree", style="dim")
    python = sysinfo.get("python")
    if python and sysinfo.get("implementation"):
        python = f"{python} ({sysinfo['implementation']})"
    packages = sysinfo.get("packages") or {}
    rows: list[tuple[str, Any]] = [
        ("git commit", git),
        ("python", python),
        ("platform", sysinfo.get("platform")),
        ("host", run.host),
        ("packages", ", ".join(f"{k} {v}" for k, v in sorted(packages.items())) or None),
    ]
    if sysinfo.get("entrypoint"):
        rows.append(("entry point", sysinfo["entrypoint"]))
    return r.kv_table(rows, title="System")


@app.command()
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN_ID", help="Two or more run ids or unique prefixes.")],
) -> None:
    """Compare runs side by side: differing rows highlighted, best metric value starred."""
    if len(run_ids) < 2:
        raise typer.BadParameter("give at least two run ids to compare", param_hint="RUN_IDS")
    svc = _service(ctx)
    ids: list[str] = []
    for rid in run_ids:
        full = resolve_run_id(svc, rid)
        if full not in ids:
            ids.append(full)
    if len(ids) < 2:
        raise typer.BadParameter("these ids name the same run; give at least two different runs", param_hint="RUN_IDS")
    runs = [svc.get_run(i) for i in ids]

    table = r.table(box=box.SIMPLE_HEAD)
    table.add_column("", no_wrap=True, width=1)
    table.add_column("field", no_wrap=True)
    for run in runs:
        header = Text(r.short_id(run.id), style="bold cyan")
        if run.name:
            header.append("\n" + run.name, style="bold")
        table.add_column(header, overflow="fold")

    def add(label: Text, values: list[str], *, section_end: bool = False, cells: list[Text] | None = None) -> None:
        differ = len(set(values)) > 1
        marker = Text("≠", style="bold yellow") if differ else Text("")
        row = cells if cells is not None else [Text(v) for v in values]
        table.add_row(marker, label, *row, style="on grey23" if differ else None, end_section=section_end)

    add(Text("experiment"), [run.experiment for run in runs])
    add(Text("status"), [run.status.value for run in runs],
        cells=[r.status_text(run.status) for run in runs])
    add(Text("start (UTC)"), [r.fmt_time(run.start_time) for run in runs])
    add(Text("duration"), [r.fmt_duration(run.duration_ms) for run in runs], section_end=True)

    param_keys = sorted({k for run in runs for k in run.params})
    for i, k in enumerate(param_keys):
        values = [r.fmt_value(run.params[k]) if k in run.params else "-" for run in runs]
        add(Text(f"params.{k}", style="magenta"), values, section_end=i == len(param_keys) - 1)

    metric_keys = sorted({k for run in runs for k in run.metrics})
    for k in metric_keys:
        nums = [run.metrics[k].value if k in run.metrics else None for run in runs]
        finite = [v for v in nums if v is not None and v == v and v not in (float("inf"), float("-inf"))]
        best = (min(finite) if lower_is_better(k) else max(finite)) if finite else None
        values = [r.fmt_number(v) for v in nums]
        cells = []
        for v, shown in zip(nums, values, strict=True):
            if best is not None and v == best and len(runs) > 1 and len(set(finite)) > 1:
                cells.append(Text(f"{shown} ★", style="bold green"))
            else:
                cells.append(Text(shown))
        direction = "↓" if lower_is_better(k) else "↑"
        add(Text.assemble((f"metrics.{k}", "green"), (f" {direction}", "dim")), values, cells=cells)

    out = r.console()
    out.print(table)
    out.print(Text("≠ values differ   ★ best value (↑ higher is better, ↓ lower is better, guessed from the name)",
                   style="dim"))
