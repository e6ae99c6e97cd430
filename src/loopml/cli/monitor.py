"""``loopml monitor``: evaluate deployments, watch them, report, list alerts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli._state import LoopmlGroup, get_settings

if TYPE_CHECKING:
    from loopml.monitoring.alerts import Alert
    from loopml.monitoring.evaluate import WindowResult

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True,
                  help="Monitor deployments: drift, quality, performance from feedback, alerts.")


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:.4g}{unit}"


def _show(result: WindowResult, alerts: list[Alert]) -> None:
    from rich.text import Text

    from loopml.cli import _render as r
    from loopml.core import format_ms

    out = r.console()
    head = Text.assemble((f"{result.deployment}", "bold"), f"  {format_ms(result.window_start)} .. "
                         f"{format_ms(result.window_end)}  ", (f"{result.rows} rows", "cyan"))
    out.print(head)
    drift = result.summary.get("drift")
    if drift:
        t = r.table("Input drift (latest window)")
        for col in ("column", "method", "effect", "p (adjusted)", "verdict", "why"):
            t.add_column(col, justify="right" if col in ("effect", "p (adjusted)") else "left")
        rows = sorted(drift["columns"].values(), key=lambda c: (c["drifted"] is not True, -(c["effect_size"] or 0)))
        for c in rows[:20]:
            verdict = {True: Text("drifted", style="bold red"), False: Text("ok", style="green"),
                       None: Text("no verdict", style="dim")}[c["drifted"]]
            t.add_row(c["column"], c["method"], _fmt(c["effect_size"]), _fmt(c["p_adjusted"]), verdict,
                      Text(c["reason"], style="dim"))
        out.print(t)
        if len(rows) > 20:
            out.print(Text(f"  ... and {len(rows) - 20} more columns", style="dim"))
    kv = [
        ("drifted columns", f"{len(drift['drifted_columns'])} ({_fmt(drift['share_drifted'])})" if drift else "-"),
        ("missing values", _fmt(result.value("quality.missing_rate"))),
        ("rejected requests", _fmt(result.value("quality.rejected_rate"))),
        ("output drift", _fmt(result.value("output.drift")) + (" (drifted)" if result.flag("output.drift") else "")),
        ("requests", _fmt(result.value("service.requests"))),
        ("latency p50 / p99", f"{_fmt(result.value('service.latency_p50'), ' ms')} / "
                              f"{_fmt(result.value('service.latency_p99'), ' ms')}"),
        ("error rate", _fmt(result.value("service.error_rate"))),
        ("labelled", _fmt(result.value("performance.labelled"))),
    ]
    for metric in ("accuracy", "f1", "rmse", "mae"):
        v = result.value(f"performance.{metric}")
        if v is not None:
            kv.append((metric, _fmt(v)))
    drop = result.value("performance.drop")
    if drop is not None:
        kv.append(("below baseline", _fmt(drop) + (" (concept drift)" if result.flag("performance.drop") else "")))
    kv.append(("model age", _fmt(result.value("model.age_days"), " d")))
    kv.append(("data staleness", _fmt(result.value("model.staleness_days"), " d")))
    out.print(r.kv_table(kv))
    for note in result.notes:
        out.print(Text(f"  note: {note}", style="yellow"))
    for a in alerts:
        style = "bold red" if a.state == "firing" else "green"
        out.print(Text(f"  alert {a.state}: {a.rule}: {a.message}", style=style))


@app.command("run")
def run(
    ctx: typer.Context,
    deployment: Annotated[str, typer.Argument(help="Deployment (or model) name whose prediction log to evaluate.")],
    window: Annotated[str | None, typer.Option(help="Window length, e.g. 1h, 30m (default: [monitoring] window).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end as ISO time, e.g. 2026-11-23T12:00 (default: now).")] = None,
) -> None:
    """Evaluate one window now: store the results and apply the alert rules."""
    from loopml.monitoring.config import parse_duration
    from loopml.monitoring.service import get_monitor

    settings = get_settings(ctx)
    window_s = parse_duration(window, "--window") if window else None
    result, alerts = get_monitor(settings).run(deployment, end_ms=_parse_time(end), window_s=window_s)
    _show(result, alerts)


def _parse_time(value: str | None) -> int | None:
    if value is None:
        return None
    import datetime as dt

    from loopml.errors import InvalidInputError

    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{value!r} is not an ISO time such as 2026-11-23T12:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@app.command("watch")
def watch(
    ctx: typer.Context,
    deployment: Annotated[list[str] | None, typer.Argument(help="Deployments to watch (default: every deployment "
                                                                "and every one configured under [monitoring]).")] = None,
    interval: Annotated[str | None, typer.Option(help="Time between evaluations, e.g. 5m "
                                                      "(default: [monitoring] interval).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Evaluate once and exit.")] = False,
) -> None:
    """Evaluate on an interval until stopped (Ctrl-C); alerts fire as rules are breached."""
    from rich.text import Text

    from loopml.cli import _render as r
    from loopml.monitoring.config import parse_duration
    from loopml.monitoring.service import get_monitor

    settings = get_settings(ctx)
    interval_s = parse_duration(interval, "--interval") if interval else None
    out = r.console()

    def report(result: WindowResult, alerts: list[Alert]) -> None:
        drifted = result.summary.get("drift", {}).get("drifted_columns", [])
        line = Text.assemble((time.strftime("%H:%M:%S "), "dim"), (result.deployment, "bold"),
                             f"  {result.rows} rows, drifted: {', '.join(drifted) or 'none'}")
        out.print(line)
        for a in alerts:
            out.print(Text(f"  alert {a.state}: {a.message}", style="bold red" if a.state == "firing" else "green"))

    try:
        get_monitor(settings).watch(deployment or None, interval_s=interval_s, on_result=report, once=once)
    except KeyboardInterrupt:
        out.print("stopped")


@app.command("report")
def report(
    ctx: typer.Context,
    deployment: Annotated[str, typer.Argument(help="Deployment to report on.")],
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file to write "
                                                  "(default: monitoring-<deployment>.html).")] = None,
) -> None:
    """Write an HTML report with plots: drift per column, performance, service, alerts over time."""
    from loopml.cli import _render as r
    from loopml.monitoring.report import write_report

    settings = get_settings(ctx)
    path = write_report(deployment, out_path or Path(f"monitoring-{deployment}.html"), settings=settings)
    r.console().print(f"Wrote {path}")


@app.command("alerts")
def alerts(
    ctx: typer.Context,
    deployment: Annotated[str | None, typer.Argument(help="Only this deployment's alerts.")] = None,
    firing: Annotated[bool, typer.Option("--firing", help="Only alerts still firing.")] = False,
) -> None:
    """List alerts, newest first."""
    from rich.text import Text

    from loopml.cli import _render as r
    from loopml.core import format_ms
    from loopml.monitoring.service import get_monitor

    found = get_monitor(get_settings(ctx)).alerts(deployment, state="firing" if firing else None)
    t = r.table("Alerts")
    for col in ("id", "rule", "deployment", "state", "opened", "resolved", "message"):
        t.add_column(col)
    for a in found:
        t.add_row(str(a.id), a.rule, a.deployment,
                  Text(a.state, style="bold red" if a.state == "firing" else "green"), format_ms(a.opened_at),
                  format_ms(a.resolved_at) if a.resolved_at else "-", Text(a.message))
    r.console().print(t if found else Text("no alerts", style="dim"))


@app.command("history")
def history(
    ctx: typer.Context,
    deployment: Annotated[str, typer.Argument(help="Deployment.")],
    metric: Annotated[str, typer.Argument(help="Metric, e.g. drift.share, performance.accuracy "
                                                "(`loopml monitor metrics` lists them).")] = "drift.share",
    column: Annotated[str | None, typer.Option(help="Column, for per-column metrics.")] = None,
) -> None:
    """Print a metric's series over the evaluated windows."""
    from loopml.cli import _render as r
    from loopml.core import format_ms
    from loopml.errors import InvalidInputError
    from loopml.monitoring.metrics import METRICS
    from loopml.monitoring.service import get_monitor

    if metric not in METRICS:
        raise InvalidInputError(f"metric {metric!r} is not known; `loopml monitor metrics` lists them")
    points = get_monitor(get_settings(ctx)).series(deployment, metric, column)
    t = r.table(f"{deployment}: {metric}" + (f" [{column}]" if column else ""))
    t.add_column("window end")
    t.add_column("value", justify="right")
    t.add_column("flag")
    for p in points:
        t.add_row(format_ms(p["window_end"]), _fmt(p["value"]), "" if p["flag"] is None else str(p["flag"]))
    r.console().print(t)


@app.command("metrics")
def metrics() -> None:
    """List the metrics every evaluation stores (alert rules name them)."""
    from loopml.cli import _render as r
    from loopml.monitoring.metrics import METRICS

    t = r.table("Monitored metrics")
    t.add_column("metric")
    t.add_column("per column")
    t.add_column("meaning")
    for name, info in METRICS.items():
        t.add_row(name, "yes" if info.per_column else "", info.description + (f" ({info.unit})" if info.unit else ""))
    r.console().print(t)
