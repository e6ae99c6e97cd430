"""``loopml init``: set up a project folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import get_state
from loopml.project import GITIGNORE_ENTRY, InitResult, init_project

__all__ = ["init", "print_init_result"]


def print_init_result(res: InitResult, out: Console, *, next_steps: bool = True) -> None:
    out.print(Text.assemble(("Initialised loopml project in ", "bold green"), (str(res.project_dir), "bold")))
    rows = [
        (res.config_file.name, f"{res.config_action}  ({res.config_file})"),
        (".gitignore", f"{res.gitignore_action}  (ignores {GITIGNORE_ENTRY})"),
        ("metadata", res.metadata_url),
        ("artifacts", res.artifact_root),
    ]
    out.print(r.kv_table(rows))
    if not next_steps:
        return
    try:
        shown = str(res.project_dir.relative_to(Path.cwd()))
    except ValueError:
        shown = str(res.project_dir)
    here = shown == "."
    p = "" if here else f"-p {shown} "
    steps = Text()
    steps.append("1. Log a run from Python" + ("" if here else f" (working in {shown})") + ":\n", style="bold")
    steps.append(
        "     import loopml\n"
        "     with loopml.start_run(\"my-experiment\") as run:\n"
        "         run.log_param(\"lr\", 0.01)\n"
        "         run.log_metric(\"loss\", 0.3)\n"
    )
    steps.append("2. List and inspect runs:\n", style="bold")
    steps.append(f"     loopml {p}runs list\n     loopml {p}runs show <run id>\n")
    steps.append("3. See the whole loop on a toy dataset: ", style="bold")
    steps.append("loopml demo")
    out.print(Panel(steps, title="Next steps", title_align="left", expand=False))


def init(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Argument(help="Project folder, created if needed (default: --project, else the current folder)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing loopml.toml.")] = False,
) -> None:
    """Create a loopml project: loopml.toml, a .gitignore entry and the local store."""
    target = directory or get_state(ctx).project or Path.cwd()
    res = init_project(target, force=force)
    print_init_result(res, r.console())
