"""``loopml trigger`` and ``loopml scheduler``: pipelines that start themselves."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import LoopmlGroup, get_settings
from loopml.cli.pipeline import _parse_params

__all__ = ["app", "scheduler"]

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True,
                  help="Start pipelines on a schedule, on new data versions or on events.")


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Trigger name.")],
    pipeline: Annotated[str, typer.Option("--pipeline", help="Pipeline to run.")],
    cron: Annotated[str | None, typer.Option(help="Cron expression (UTC), e.g. '0 6 * * 1'.")] = None,
    on_dataset: Annotated[str | None, typer.Option(help="Run when this dataset gets a new version.")] = None,
    on_event: Annotated[str | None, typer.Option(help="Run on events of this kind, e.g. alert.raised.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE pipeline parameter.")] = None,
) -> None:
    """Save a trigger (exactly one of --cron, --on-dataset, --on-event)."""
    from loopml.errors import InvalidInputError
    from loopml.pipelines.triggers import get_triggers

    given = [(k, v) for k, v in (("cron", cron), ("dataset", on_dataset), ("event", on_event)) if v]
    if len(given) != 1:
        raise InvalidInputError("give exactly one of --cron, --on-dataset or --on-event")
    kind, spec = given[0]
    svc = get_triggers(get_settings(ctx))
    trig = svc.add(name, pipeline, kind, spec, _parse_params(param))
    nxt = svc.next_fire_time(trig)
    r.console().print(Text.assemble(("Saved trigger ", "bold green"), (trig.name, "bold"),
                                    f": {kind} {spec!r} -> pipeline {pipeline}",
                                    f" (next: {r.fmt_time(nxt)} UTC)" if nxt else ""))


@app.command("list")
def list_triggers(ctx: typer.Context) -> None:
    """List triggers with their next firing and how often they fired."""
    from loopml.pipelines.triggers import get_triggers

    svc = get_triggers(get_settings(ctx))
    table = r.table()
    for head in ("name", "pipeline", "kind", "spec", "enabled", "next firing (UTC)", "fired"):
        table.add_column(head)
    for trig in svc.list_all():
        nxt = svc.next_fire_time(trig)
        table.add_row(Text(trig.name, style="bold cyan"), Text(trig.pipeline), Text(trig.kind), Text(trig.spec),
                      Text("yes" if trig.enabled else "no"), Text(r.fmt_time(nxt) if nxt else "on arrival"),
                      Text(str(len(svc.firings(trig.name)))))
    r.console().print(table)


@app.command("remove")
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Trigger name.")]) -> None:
    """Delete a trigger."""
    from loopml.pipelines.triggers import get_triggers

    get_triggers(get_settings(ctx)).remove(name)
    r.console().print(f"Removed trigger {name}")


def scheduler(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Evaluate triggers one round and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between rounds.")] = 5.0,
) -> None:
    """Run the scheduler: evaluate triggers from the store and start their pipelines."""
    from loopml.pipelines.triggers import Scheduler

    sched = Scheduler(get_settings(ctx))
    out = r.console()

    def report(fired: list) -> None:  # type: ignore[type-arg]
        for f in fired:
            out.print(Text.assemble(("fired ", "bold green"),
                                    f"{f.trigger} ({f.fire_key}) -> pipeline run {f.run_id or 'not started'}"))

    if once:
        report(sched.run_once())
        sched.release()
        return
    out.print(Text(f"Scheduler {sched.holder} evaluating triggers every {interval:g} s; Ctrl-C to stop", style="bold"))
    try:
        sched.run_forever(interval, on_round=report)
    except KeyboardInterrupt:
        out.print("stopped")
