"""The ``loopml`` command: root options, command groups and the entry point.

Heavy modules (SQLAlchemy, pandas, scikit-learn) are imported inside the
commands, so ``loopml --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli import (
    batch,
    data,
    deploy,
    features,
    keys,
    lineage,
    models,
    monitor,
    pipeline,
    project,
    runs,
    schedule,
    serve,
)
from loopml.cli._state import CliState, LoopmlGroup, get_state

__all__ = ["app", "main"]

app = typer.Typer(
    name="loopml",
    cls=LoopmlGroup,
    help="loopml: track experiments, register models and ship them, from one package.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(schedule.app, name="trigger")
app.command("scheduler")(schedule.scheduler)
app.command("init")(project.init)
app.command("lineage")(lineage.lineage)
app.command("serve")(serve.serve)
app.add_typer(deploy.app, name="deploy")
app.add_typer(keys.app, name="keys")
app.command("batch")(batch.batch)
app.add_typer(monitor.app, name="monitor")
app.add_typer(features.app, name="features")


@app.callback()
def _root(
    ctx: typer.Context,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project", "-p",
            help="Project folder (default: the nearest folder with loopml.toml, else the current folder).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    ctx.obj = CliState(project=project_dir)


@app.command()
def demo(
    ctx: typer.Context,
    project_dir: Annotated[
        Path | None,
        typer.Option("--project", "-p", help="Folder for the demo project (default: ./demo-project).", file_okay=False),
    ] = None,
) -> None:
    """Train, compare, register and serve wine classifiers in a demo project (under a minute)."""
    from loopml import demo as demo_module

    target = project_dir or get_state(ctx).project or Path("demo-project")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        from rich.text import Text

        from loopml.cli._render import err_console

        err_console().print(Text("The demo needs scikit-learn: pip install 'loopml[sklearn]'", style="bold red"))
        raise typer.Exit(1) from None
    demo_module.run(target)


@app.command()
def version() -> None:
    """Print the loopml version."""
    from loopml import __version__

    typer.echo(f"loopml {__version__}")


def main() -> None:
    """Entry point of the ``loopml`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
