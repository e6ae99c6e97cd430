"""``loopml models``: registered models, their versions and aliases."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import LoopmlGroup, get_settings

__all__ = ["alias", "app", "list_models", "rollback", "show"]

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True, help="List registered models, inspect versions, move aliases.")


def _registry() -> Any:
    from loopml import registry

    return registry


def _aliases_text(aliases: dict[str, int]) -> Text:
    if not aliases:
        return r.text(None)
    out = Text()
    for i, (name, version) in enumerate(sorted(aliases.items())):
        if i:
            out.append(", ")
        out.append(f"@{name}", style="bold yellow")
        out.append(f"->v{version}")
    return out


@app.command("list")
def list_models(ctx: typer.Context) -> None:
    """List registered models with their latest version and aliases."""
    settings = get_settings(ctx)
    found = _registry().list_models(settings=settings)
    out = r.console()
    if not found:
        out.print(Text(f"No registered models in {settings.project_dir}.", style="yellow"))
        out.print("Register one with `loopml.models.register(model, \"name\")`, or try `loopml demo`.")
        return
    table = r.table()
    table.add_column("name", style="bold cyan")
    table.add_column("latest", justify="right")
    table.add_column("aliases")
    table.add_column("updated (UTC)", no_wrap=True)
    table.add_column("description", overflow="ellipsis", max_width=40)
    for m in found:
        latest = f"v{m.latest_version}" if m.latest_version is not None else None
        table.add_row(Text(m.name), r.text(latest), _aliases_text(dict(m.aliases or {})),
                      r.fmt_time(m.updated_at), r.text(m.description))
    out.print(table)
    out.print(Text(f"{len(found)} model{'s' if len(found) != 1 else ''}"))


def _signature_table(sig: Any) -> Table:
    table = r.table("Signature (latest version)")
    table.add_column("")
    table.add_column("column")
    table.add_column("dtype")
    table.add_column("nullable")
    for i, c in enumerate(sig.inputs or []):
        nullable = getattr(c, "nullable", None)
        table.add_row(Text("input" if i == 0 else "", style="bold"), Text(str(c.name)), Text(str(c.dtype)),
                      r.text(None if nullable is None else ("yes" if nullable else "no")))
    outputs = sig.outputs
    if isinstance(outputs, dict):
        if outputs.get("dtype") is not None or outputs.get("shape"):
            shape = outputs.get("shape") or []
            shape_text = f"shape (n, {', '.join(map(str, shape))})" if shape else "one value per row"
            table.add_row(Text("output", style="bold"), Text(shape_text), r.text(outputs.get("dtype")), Text(""))
    else:  # a list of column specs
        for i, c in enumerate(outputs or []):
            table.add_row(Text("output" if i == 0 else "", style="bold"), Text(str(c.name)), Text(str(c.dtype)), Text(""))
    return table


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registered model name.")],
) -> None:
    """Show a model: versions, aliases, signature and alias history."""
    settings = get_settings(ctx)
    reg = _registry()
    model = reg.get_model(name, settings=settings)
    versions = reg.list_versions(name, settings=settings)
    history = reg.alias_history(name, settings=settings)
    out = r.console()

    rows: list[tuple[str, Any]] = [
        ("model", Text(model.name, style="bold cyan")),
        ("description", model.description),
        ("created", r.fmt_time(model.created_at) + " UTC"),
        ("updated", r.fmt_time(model.updated_at) + " UTC"),
        ("latest version", f"v{model.latest_version}" if model.latest_version is not None else None),
        ("aliases", _aliases_text(dict(model.aliases or {}))),
    ]
    if model.tags:
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in sorted(model.tags.items()))))
    out.print(r.kv_table(rows))
    out.print()

    table = r.table("Versions")
    table.add_column("version", justify="right", style="bold")
    table.add_column("flavor")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("by")
    table.add_column("run", style="cyan")
    table.add_column("size", justify="right")
    table.add_column("sha256")
    table.add_column("aliases")
    for v in sorted(versions, key=lambda v: v.version, reverse=True):
        aliases = Text(", ".join(f"@{a}" for a in sorted(v.aliases or [])), style="bold yellow")
        table.add_row(f"v{v.version}", r.text(v.flavor), r.fmt_time(v.created_at), r.text(v.created_by),
                      r.short_id(v.run_id), r.fmt_bytes(v.size), r.short_hash(v.sha256), aliases)
    out.print(table if versions else Text("Versions: none", style="dim"))

    latest = max(versions, key=lambda v: v.version) if versions else None
    if latest is not None and latest.signature is not None:
        out.print(_signature_table(latest.signature))
    elif latest is not None:
        out.print(Text(f"Signature: none recorded for v{latest.version} (register with input_example= to record one)",
                       style="dim"))

    if history:
        h = r.table("Alias history")
        h.add_column("when (UTC)", no_wrap=True)
        h.add_column("alias", style="bold yellow")
        h.add_column("action")
        h.add_column("change")
        h.add_column("by")
        for c in sorted(history, key=lambda c: (c.changed_at, c.id), reverse=True):
            prev = f"v{c.previous_version}" if c.previous_version is not None else "-"
            new = f"v{c.version}" if c.version is not None else "-"
            h.add_row(r.fmt_time(c.changed_at), Text(f"@{c.alias}"), r.text(c.action), f"{prev} -> {new}",
                      r.text(c.changed_by))
        out.print(h)


@app.command()
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias to set, e.g. champion.")],
    version: Annotated[int, typer.Argument(help="Version the alias should point at.", min=1)],
) -> None:
    """Point ALIAS of model NAME at VERSION (the previous target is kept in the alias history)."""
    settings = get_settings(ctx)
    reg = _registry()
    before = reg.set_alias(name, alias_name, version, settings=settings)
    _print_move(name, alias_name, before, version)


@app.command()
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias_name: Annotated[str, typer.Option("--alias", "-a", help="Alias to move back.")] = "champion",
) -> None:
    """Move an alias back to the version it pointed at before its last change."""
    settings = get_settings(ctx)
    reg = _registry()
    before = dict(reg.get_model(name, settings=settings).aliases or {}).get(alias_name)
    after = reg.rollback_alias(name, alias_name, settings=settings)
    _print_move(name, alias_name, before, after, verb="rolled back")


def _print_move(name: str, alias_name: str, before: int | None, after: int, *, verb: str = "set") -> None:
    line = Text()
    line.append(f"{name}@{alias_name}", style="bold cyan")
    line.append(f" {verb}: ")
    if before is None:
        line.append("(unset)", style="dim")
    else:
        line.append(f"v{before}")
    line.append(" -> ")
    line.append(f"v{after}", style="bold green")
    if before == after:
        line.append("  (unchanged)", style="dim")
    r.console().print(line)
