"""``loopml pipeline``: list, run, inspect and resume pipelines."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import LoopmlGroup, get_settings

if TYPE_CHECKING:
    from loopml.pipelines import PipelineRun

__all__ = ["app"]

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True, help="List, run, inspect and resume pipelines.")

_STATUS_STYLE = {"done": "green", "cached": "cyan", "running": "yellow", "failed": "bold red", "skipped": "dim",
                 "pending": "dim", "finished": "green"}


def _parse_params(items: list[str] | None) -> dict[str, Any]:
    from loopml.errors import InvalidInputError

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"parameter {item!r} must look like KEY=VALUE")
        try:
            out[key] = json.loads(raw)  # numbers, true/false, lists
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _pipelines(ctx: typer.Context) -> tuple[Any, dict[str, Any]]:
    from loopml.pipelines.discovery import discover

    settings = get_settings(ctx, existing=False)
    return settings, discover(settings)


@app.command("list")
def list_pipelines(ctx: typer.Context) -> None:
    """List the pipelines defined by the modules loopml.toml lists under \\[pipelines]."""
    settings, found = _pipelines(ctx)
    out = r.console()
    if not found:
        out.print(Text("No pipelines found.", style="yellow"))
        out.print("Name the modules that define them in loopml.toml:\n  [pipelines]\n  modules = [\"pipelines.train\"]")
        return
    table = r.table()
    for head in ("name", "steps", "parameters", "description"):
        table.add_column(head)
    for name, pipe in sorted(found.items()):
        table.add_row(Text(name, style="bold cyan"), Text(" -> ".join(pipe.order)),
                      Text(", ".join(f"{k}={v!r}" for k, v in pipe.params.items())), r.text(pipe.description))
    out.print(table)


def _show(run: PipelineRun) -> None:
    out = r.console()
    out.print(r.kv_table([
        ("run", run.id), ("pipeline", run.pipeline), ("status", Text(run.status, style=_STATUS_STYLE.get(run.status, ""))),
        ("parameters", json.dumps(run.params)), ("seed", str(run.seed)), ("trigger", run.trigger or "-"),
        ("started (UTC)", r.fmt_time(run.started_at)),
        ("duration", r.fmt_duration(run.ended_at - run.started_at if run.ended_at else None)),
        ("git commit", run.git_commit or "-"), ("error", run.error or "-"),
    ], title="pipeline run"))
    table = r.table(title="steps")
    for head in ("step", "status", "attempts", "duration", "outputs", "why not cached"):
        table.add_column(head, overflow="fold")
    for s in run.steps:
        outputs = ", ".join(f"{k}:{v.get('uri') or r.short_hash(v.get('sha256'), 8)}" for k, v in (s.outputs or {}).items())
        table.add_row(Text(s.step, style="bold"), Text(s.status, style=_STATUS_STYLE.get(s.status, "")),
                      Text(str(s.attempts)), Text(r.fmt_duration(s.duration_ms)), Text(outputs),
                      Text(s.cache_miss or ("-" if s.status != "cached" else f"reused step record {s.cached_from}")))
    out.print(table)
    for s in run.steps:
        if s.status == "failed" and s.error:
            out.print(Text(f"\n{s.step} failed:", style="bold red"))
            out.print(Text(s.error.rstrip()))


def _live_progress(order: list[str]) -> tuple[Any, Any]:
    from rich.live import Live

    states = dict.fromkeys(order, "pending")

    def render() -> Any:
        table = r.table()
        table.add_column("step")
        table.add_column("state")
        for name, state in states.items():
            table.add_row(Text(name), Text(state, style=_STATUS_STYLE.get(state, "")))
        return table

    live = Live(render(), console=r.err_console(), refresh_per_second=8, transient=True)

    def update(step: str, status: str) -> None:
        states[step] = status
        live.update(render())

    return live, update


def _run_live(order: list[str], start: Any) -> None:
    """Run ``start(progress)`` under a live view of step states, show the result, exit 1 unless it finished."""
    live, update = _live_progress(order)
    with live:
        result = start(update)
    _show(result)
    if result.status != "finished":
        raise typer.Exit(1)


@app.command("run")
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name (see `loopml pipeline list`).")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE parameter (repeatable).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step, reusing nothing.")] = False,
    workers: Annotated[int, typer.Option(help="Run up to this many independent steps at once.")] = 1,
    executor: Annotated[str, typer.Option(help="local (in this process), processes (a child process per step) or ray "
                                                      "(a Ray task per step; see ray_address).")] = "local",
    seed: Annotated[int | None, typer.Option(help="The run's seed (default: random).")] = None,
) -> None:
    """Run a pipeline now, showing each step's state; exits 1 if a step fails."""
    from loopml.errors import NotFoundError

    settings, found = _pipelines(ctx)
    pipe = found.get(name)
    if pipe is None:
        raise NotFoundError(f"no pipeline called {name!r}; known: {', '.join(sorted(found)) or 'none'}")
    params = _parse_params(param)
    _run_live(pipe.order, lambda update: pipe.run(settings=settings, cache=not no_cache, workers=workers,
                                                  executor=executor, seed=seed, trigger="cli", progress=update, **params))


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Pipeline run id (or a unique prefix).")],
) -> None:
    """Show a pipeline run: parameters, each step's state, outputs and why it was not cached."""
    from loopml.pipelines import get_pipelines

    _show(get_pipelines(get_settings(ctx)).get_run(run_id))


@app.command("runs")
def runs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only runs of this pipeline.")] = None,
    limit: Annotated[int, typer.Option("--max", help="How many runs to show.")] = 20,
) -> None:
    """List recent pipeline runs."""
    from loopml.pipelines import get_pipelines

    found = get_pipelines(get_settings(ctx)).list_runs(name, limit)
    table = r.table()
    for head in ("id", "pipeline", "status", "started (UTC)", "duration", "trigger", "error"):
        table.add_column(head, overflow="fold")
    for x in found:
        table.add_row(Text(r.short_id(x["id"])), Text(x["pipeline"]), Text(x["status"], style=_STATUS_STYLE.get(x["status"], "")),
                      Text(r.fmt_time(x["started_at"])),
                      Text(r.fmt_duration(x["ended_at"] - x["started_at"] if x["ended_at"] else None)),
                      r.text(x["trigger"]), r.text(x["error"]))
    r.console().print(table)


@app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Id of the run that stopped (killed or failed).")],
    workers: Annotated[int, typer.Option(help="Run independent steps on this many threads.")] = 1,
) -> None:
    """Continue a stopped run: finished steps are kept, the rest run."""
    from loopml.pipelines import get_pipelines

    settings, _ = _pipelines(ctx)
    svc = get_pipelines(settings)
    old = svc.get_run(run_id)
    _run_live([s.step for s in old.steps], lambda update: svc.resume(old.id, workers=workers, progress=update))


@app.command("reproduce")
def reproduce(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="The model version to reproduce, e.g. models:/pumpkins/3.")],
) -> None:
    """Re-run the pipeline run that produced a model version (cache off) and compare content hashes."""
    from loopml.pipelines.reproduce import reproduce as do_reproduce

    settings, _ = _pipelines(ctx)
    result = do_reproduce(uri, settings=settings)
    out = r.console()
    out.print(r.kv_table([
        ("original", f"{result.original}  sha256 {r.short_hash(result.original_sha256)}"),
        ("reproduced", f"{result.reproduced or '-'}  sha256 {r.short_hash(result.reproduced_sha256)}"),
        ("pipeline runs", f"{result.pipeline_run} -> {result.new_run}"),
        ("code commit", f"recorded {result.recorded_commit or '-'}, now {result.current_commit or '-'}"),
    ], title="reproduction"))
    out.print(Text(("MATCH: " if result.match else "DIFFERENT: ") + result.detail,
                   style="bold green" if result.match else "bold red"))
    if not result.match:
        raise typer.Exit(1)
