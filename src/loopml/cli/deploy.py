"""``loopml deploy``: deployments (single, canary, shadow, blue-green), their history and export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import LoopmlGroup, get_settings

if TYPE_CHECKING:
    from loopml.serving.deployments import Deployment, DeploymentService

__all__ = [
    "app", "canary", "create", "delete", "export", "history", "list_deployments", "promote", "remove_challenger",
    "rollback", "shadow", "show", "stage", "switch", "update", "weight",
]

app = typer.Typer(
    cls=LoopmlGroup,
    no_args_is_help=True,
    help="Deploy registry models: canary splits, shadows, blue-green switches, rollback, Kubernetes export.",
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Deployment name, e.g. iris-api.")]
ModelArg = Annotated[
    str, typer.Argument(metavar="MODEL_URI", help="models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME (latest).")
]

_ROLE_STYLES = {"live": "bold green", "shadow": "magenta", "standby": "yellow"}
_RECENT = 10


def _service(ctx: typer.Context) -> DeploymentService:
    from loopml.serving.deployments import get_deployments

    return get_deployments(get_settings(ctx))


# -- rendering -------------------------------------------------------------------


def _variants_table(dep: Deployment, title: str | None = "Variants") -> Table:
    table = r.table(title)
    table.add_column("variant", style="bold")
    table.add_column("model", style="cyan")
    table.add_column("version", justify="right")
    table.add_column("role")
    table.add_column("traffic", justify="right")
    for v in dep.variants:
        traffic = f"{v.weight:g}%" if v.role == "live" else ("copy" if v.role == "shadow" else "0%")
        table.add_row(Text(v.name), Text(v.model), f"v{v.version}", Text(v.role, style=_ROLE_STYLES.get(v.role, "")),
                      Text(traffic))
    return table


def _headline(dep: Deployment) -> Text:
    line = Text()
    line.append(dep.name, style="bold cyan")
    line.append(f"  revision {dep.revision}  ")
    line.append(dep.strategy, style="bold")
    if dep.sticky_header:
        line.append(f"  sticky by header {dep.sticky_header}", style="dim")
    return line


def _print_change(dep: Deployment, before: int | None, verb: str) -> None:
    out = r.console()
    line = Text()
    line.append(dep.name, style="bold cyan")
    if before is not None and before == dep.revision:
        line.append(f": unchanged (already so at revision {dep.revision})", style="yellow")
        out.print(line)
        return
    line.append(f" {verb}: revision ")
    if before is not None:
        line.append(f"{before} -> ")
    line.append(str(dep.revision), style="bold green")
    line.append(f" ({dep.strategy})")
    out.print(line)
    out.print(_variants_table(dep, title=None))
    if dep.sticky_header:
        out.print(Text(f"Requests with the same {dep.sticky_header} header always get the same variant.", style="dim"))


def _history_table(entries: list[dict[str, Any]], title: str) -> Table:
    table = r.table(title)
    table.add_column("rev", justify="right", style="bold")
    table.add_column("when (UTC)", no_wrap=True)
    table.add_column("action")
    table.add_column("by")
    table.add_column("configuration")
    table.add_column("rollback to", justify="right")
    for h in sorted(entries, key=lambda h: h["revision"], reverse=True):
        table.add_row(str(h["revision"]), r.fmt_time(h["changed_at"]), r.text(h["action"]), r.text(h["user"]),
                      Text(h["summary"]), r.text(h["previous"]))
    return table


# -- changes ---------------------------------------------------------------------


@app.command()
def create(
    ctx: typer.Context,
    name: NameArg,
    model_uri: ModelArg,
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="single, or blue-green (the model becomes the live blue color).")
    ] = "single",
) -> None:
    """Create deployment NAME serving MODEL_URI (aliases and 'latest' are pinned to a version now).

    Example: loopml deploy create iris-api models:/iris@champion
    """
    dep = _service(ctx).create(name, model_uri, strategy=strategy)
    _print_change(dep, None, "created")


@app.command()
def update(ctx: typer.Context, name: NameArg, model_uri: ModelArg) -> None:
    """Serve MODEL_URI in place of the primary (blue-green: the live color's model); challengers stay."""
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.update(name, model_uri), before, "updated")


@app.command()
def canary(
    ctx: typer.Context,
    name: NameArg,
    model_uri: ModelArg,
    weight: Annotated[float, typer.Option("--weight", "-w", help="Percent of traffic for the canary, between 0 and 100.")],
    sticky_header: Annotated[
        str | None,
        typer.Option("--sticky-header", help="Requests with the same value of this header get the same variant, e.g. X-User-Id."),
    ] = None,
) -> None:
    """Send WEIGHT% of traffic to MODEL_URI as a canary; the primary gets the rest.

    Replaces a canary or shadow already there. Example: loopml deploy canary iris-api models:/iris/4 --weight 10
    """
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.canary(name, model_uri, weight=weight, sticky_header=sticky_header), before, "canary")


@app.command()
def weight(
    ctx: typer.Context,
    name: NameArg,
    percent: Annotated[float, typer.Argument(metavar="PERCENT", help="New canary share of traffic, between 0 and 100.")],
) -> None:
    """Shift the canary's share of traffic to PERCENT (the primary gets the rest)."""
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.set_weight(name, percent), before, "weight")


@app.command()
def features(
    ctx: typer.Context,
    name: NameArg,
    refs: Annotated[list[str] | None, typer.Argument(metavar="VIEW:FEATURE...",
                                                     help="Online features to fetch for each request "
                                                          "(view:feature or view:*); none clears the list.")] = None,
) -> None:
    """Enrich requests from the online feature store: clients send entity keys, the server adds these features."""
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.set_features(name, refs or []), before, "features")


@app.command()
def shadow(ctx: typer.Context, name: NameArg, model_uri: ModelArg) -> None:
    """Give MODEL_URI a copy of every request; its answers are logged, never returned.

    Replaces a canary or shadow already there.
    """
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.shadow(name, model_uri), before, "shadow")


@app.command()
def promote(ctx: typer.Context, name: NameArg) -> None:
    """Make the canary or shadow the only model at 100% (blue-green: the staged color, dropping the other)."""
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.promote(name), before, "promoted")


@app.command("remove-challenger")
def remove_challenger(ctx: typer.Context, name: NameArg) -> None:
    """Drop the canary or shadow, all traffic back to the primary (blue-green: drop the staged color)."""
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.remove_challenger(name), before, "challenger removed")


@app.command()
def stage(ctx: typer.Context, name: NameArg, model_uri: ModelArg) -> None:
    """Blue-green: load MODEL_URI in the idle color, without traffic, ready for `switch`."""
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.stage(name, model_uri), before, "staged")


@app.command()
def switch(ctx: typer.Context, name: NameArg) -> None:
    """Blue-green: move all traffic to the staged color at once (switch again to go back)."""
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.switch(name), before, "switched")


@app.command()
def rollback(
    ctx: typer.Context,
    name: NameArg,
    steps: Annotated[int, typer.Option("--steps", "-n", min=1, help="How many changes to undo.")] = 1,
) -> None:
    """Bring back the configuration before the last change, as a new revision.

    Rolling back again goes further back (it does not undo the rollback).
    """
    svc = _service(ctx)
    before = svc.revision(name)
    _print_change(svc.rollback(name, steps), before, "rolled back")


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete deployment NAME and its history (servers following it stop serving it)."""
    svc = _service(ctx)
    dep = svc.get(name)
    if not yes:
        typer.confirm(f"Delete deployment {dep.name} (revision {dep.revision}) and its history?", abort=True)
    svc.delete(name)
    line = Text("Deleted deployment ")
    line.append(dep.name, style="bold cyan")
    line.append(f" (was at revision {dep.revision}: {dep.summary()})")
    r.console().print(line)


# -- reads -----------------------------------------------------------------------


@app.command("list")
def list_deployments(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the deployments as JSON.")] = False,
) -> None:
    """List deployments with their strategy, revision and models."""
    found = _service(ctx).list()
    if as_json:
        typer.echo(json.dumps([d.to_dict() for d in found], indent=2))
        return
    out = r.console()
    if not found:
        out.print(Text(f"No deployments in {get_settings(ctx).project_dir}.", style="yellow"))
        out.print("Create one with `loopml deploy create NAME models:/MODEL/VERSION`.")
        return
    table = r.table()
    table.add_column("name", style="bold cyan")
    table.add_column("strategy")
    table.add_column("revision", justify="right")
    table.add_column("variants")
    table.add_column("updated (UTC)", no_wrap=True)
    for d in found:
        table.add_row(Text(d.name), Text(d.strategy), str(d.revision),
                      Text(", ".join(v.describe() for v in d.variants)), r.fmt_time(d.updated_at))
    out.print(table)
    out.print(Text(f"{len(found)} deployment{'s' if len(found) != 1 else ''}"))


@app.command()
def show(
    ctx: typer.Context,
    name: NameArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the deployment and its recent history as JSON.")] = False,
) -> None:
    """Show a deployment: its variants and recent history."""
    svc = _service(ctx)
    dep = svc.get(name)
    recent = svc.history(name, limit=_RECENT)
    if as_json:
        typer.echo(json.dumps({**dep.to_dict(), "history": recent}, indent=2))
        return
    out = r.console()
    out.print(_headline(dep))
    out.print(Text(f"updated {r.fmt_time(dep.updated_at)} UTC", style="dim"))
    out.print()
    out.print(_variants_table(dep))
    out.print(_history_table(recent, f"Recent changes (last {_RECENT}; `loopml deploy history {name}` for all)"
                             if len(recent) == _RECENT else "History"))


@app.command()
def history(
    ctx: typer.Context,
    name: NameArg,
    limit: Annotated[int | None, typer.Option("--limit", "-l", min=1, help="Only the newest N changes.")] = None,
) -> None:
    """Every revision of a deployment, newest first, with what a rollback would return to."""
    entries = _service(ctx).history(name, limit=limit)
    r.console().print(_history_table(entries, f"History of {name}"))


@app.command()
def export(
    ctx: typer.Context,
    name: NameArg,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write to.", file_okay=False)] = Path("deploy"),
    image: Annotated[str, typer.Option(help="Image the Kubernetes Deployment runs.")] = "loopml-serve:latest",
    replicas: Annotated[int, typer.Option(help="Replicas to start with (the autoscaler's minimum).")] = 2,
    port: Annotated[int, typer.Option(help="Port the server listens on.")] = 8080,
    max_replicas: Annotated[int, typer.Option(help="The autoscaler's maximum.")] = 10,
    cpu_target: Annotated[int, typer.Option(help="Average CPU utilisation (percent) the autoscaler aims at.")] = 70,
) -> None:
    """Write a Dockerfile and Kubernetes manifests (Deployment, Service, autoscaler) serving NAME."""
    from loopml.serving.export import export as export_deployment
    from loopml.serving.export import secret_name

    dep = _service(ctx).get(name)
    files = export_deployment(dep, out_dir, image=image, replicas=replicas, port=port, max_replicas=max_replicas,
                              cpu_target=cpu_target, settings=get_settings(ctx))
    out = r.console()
    line = Text("Exported ")
    line.append(dep.name, style="bold cyan")
    line.append(f" (revision {dep.revision}) to {out_dir}:")
    out.print(line)
    for f in files:
        out.print(Text(f"  {f}"))
    secret = secret_name(dep.name)
    out.print()
    out.print(Text("Next:", style="bold"))
    for step in (
        f"docker build -t {image} {out_dir} && docker push {image}",
        f"kubectl create secret generic {secret} --from-literal=LOOPML_METADATA_URL=... "
        "--from-literal=LOOPML_ARTIFACT_ROOT=...",
        f"kubectl apply -f {out_dir / 'k8s'}",
    ):
        out.print(Text(f"  {step}"), soft_wrap=True)
