"""``loopml keys``: API keys for the prediction service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import LoopmlGroup, get_settings

if TYPE_CHECKING:
    from loopml.serving.auth import KeyService

__all__ = ["app", "create", "list_keys", "revoke"]

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True, help="Create, list and revoke API keys for `loopml serve`.")


def _service(ctx: typer.Context) -> KeyService:
    from loopml.serving.auth import get_keys

    return get_keys(get_settings(ctx))


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name for the key, e.g. the client that uses it.")],
    role: Annotated[
        list[str] | None,
        typer.Option("--role", "-r", metavar="ROLE", help="predict (call the model) or admin (also manage the server); repeatable.",
                     show_default="predict"),
    ] = None,
) -> None:
    """Create an API key and print it once.

    The key goes alone to standard output, so KEY=$(loopml keys create ci) captures it; notes go to standard error.
    """
    key, secret = _service(ctx).create(name, tuple(role or ("predict",)))
    err = r.err_console()
    line = Text("Created API key ")
    line.append(key.name, style="bold cyan")
    line.append(f" (id {key.id}, roles: {', '.join(key.roles)}):")
    err.print(line)
    typer.echo(secret)
    err.print(Text("Copy it now: it is not shown again (loopml keeps only its hash).", style="bold yellow"))
    err.print(Text("Clients send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.", style="dim"))


@app.command("list")
def list_keys(
    ctx: typer.Context,
    active: Annotated[bool, typer.Option("--active", help="Only keys that are not revoked.")] = False,
) -> None:
    """List API keys (never their secrets)."""
    settings = get_settings(ctx)
    from loopml.serving.auth import get_keys

    found = get_keys(settings).list(include_revoked=not active)
    out = r.console()
    if not found:
        out.print(Text(f"No {'active ' if active else ''}API keys in {settings.project_dir}.", style="yellow"))
        out.print("Create one with `loopml keys create NAME`.")
        return
    table = r.table()
    table.add_column("id", style="bold", no_wrap=True)
    table.add_column("name", style="cyan")
    table.add_column("roles")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("revoked (UTC)", no_wrap=True)
    for k in found:
        revoked = Text(r.fmt_time(k.revoked_at), style="red") if k.revoked_at is not None else r.text(None)
        table.add_row(Text(k.id), Text(k.name), Text(", ".join(k.roles)), r.fmt_time(k.created_at), revoked)
    out.print(table)
    n_revoked = sum(1 for k in found if k.revoked_at is not None)
    summary = f"{len(found)} key{'s' if len(found) != 1 else ''}"
    out.print(Text(summary + (f" ({n_revoked} revoked)" if n_revoked else "")))


@app.command()
def revoke(
    ctx: typer.Context,
    name_or_id: Annotated[str, typer.Argument(metavar="NAME_OR_ID", help="The key's name or id (see `loopml keys list`).")],
) -> None:
    """Revoke an API key: servers refuse it within their key cache TTL (2 s by default)."""
    svc = _service(ctx)
    before = svc.get(name_or_id)
    key = svc.revoke(name_or_id)
    out = r.console()
    line = Text()
    if before.revoked_at is not None:
        line.append(f"API key {key.name} ({key.id}) was already revoked at {r.fmt_time(key.revoked_at)} UTC.",
                    style="yellow")
        out.print(line)
        return
    line.append("Revoked API key ")
    line.append(key.name, style="bold cyan")
    line.append(f" ({key.id}).")
    out.print(line)
    out.print(Text("Running servers refuse it within their key cache TTL (2 s by default).", style="dim"))
