"""What the root command hands to its subcommands: the ``--project`` folder and its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from loopml.config import Settings

__all__ = ["CliState", "LoopmlGroup", "get_settings", "get_state"]


@dataclass
class CliState:
    """Options of the root command, shared by every subcommand."""

    project: Path | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """Settings of the project (``--project``, else resolved by :func:`loopml.config.load_settings`)."""
        if self._settings is None:
            from loopml.config import load_settings

            self._settings = load_settings(self.project)
        return self._settings


def get_state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = ctx.find_root().obj = CliState()
    return obj


def get_settings(ctx: typer.Context, *, existing: bool = True) -> Settings:
    """The project's settings.

    Args:
        existing: require an existing store, so that a read-only command run in the
            wrong folder says so instead of creating an empty ``.loopml/`` there.

    Raises:
        NotFoundError: ``existing`` and the project's SQLite database does not exist.
    """
    settings = get_state(ctx).settings()
    if existing:
        _check_store_exists(settings)
    return settings


def _check_store_exists(settings: Settings) -> None:
    from pathlib import Path

    from loopml.config import CONFIG_FILE
    from loopml.errors import NotFoundError

    prefix = "sqlite:///"
    url = settings.metadata_url
    if not url.startswith(prefix) or url == "sqlite:///:memory:":
        return  # a server database: connecting will tell
    db = Path(url[len(prefix):].split("?", 1)[0])
    if db.exists():
        return
    d = settings.project_dir
    if (d / CONFIG_FILE).is_file():
        why = f"{d} has a {CONFIG_FILE} but no database at {db} yet"
    else:
        why = f"{d} is not a loopml project (no {CONFIG_FILE} here or in a parent folder, no database at {db})"
    raise NotFoundError(
        f"{why}. Run `loopml init {d}` to create it, pass --project DIR to use another project, "
        "or log a run first",
        project_dir=str(d),
    )


class LoopmlGroup(typer.core.TyperGroup):
    """A command group that shows a :class:`~loopml.errors.LoopmlError` as a headline and message, exit code 1."""

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        from loopml.errors import LoopmlError

        try:
            return super().invoke(ctx)
        except LoopmlError as e:
            from loopml.cli._render import print_error

            print_error(e)
            raise typer.Exit(1) from None
