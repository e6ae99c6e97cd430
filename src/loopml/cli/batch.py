"""``loopml batch``: score a parquet or CSV file with a registry model."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import ProgressColumn, Task
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import get_settings

__all__ = ["batch"]


class Executor(StrEnum):
    """Where the chunks are scored (see :func:`loopml.serving.batch.score_file`)."""

    local = "local"
    processes = "processes"
    ray = "ray"


class _RowsPerSecond(ProgressColumn):
    """The scoring speed, ``12,345 rows/s``."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s", style="cyan")


def batch(
    ctx: typer.Context,
    model_uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME.")],
    src: Annotated[Path, typer.Argument(help="Input: a .parquet or .csv file, or a folder of parquet files.")],
    dst: Annotated[Path, typer.Argument(help="Output: a .parquet or .csv file (with --executor ray, a folder of "
                                             "parquet part files).")],
    id_column: Annotated[str | None, typer.Option(help="Input column copied to the output to join on "
                                                       "(default: a new row_id column, the input row number).")] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk: the unit of validation, scoring and "
                                                        "memory.")] = 50_000,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes or Ray actors (default: one per "
                                                            "CPU).")] = None,
    executor: Annotated[Executor, typer.Option(help="local (this process), processes (a process pool) or ray "
                                                    "(Ray Data actors; see ray_address).")] = Executor.processes,
    proba: Annotated[bool, typer.Option("--proba", help="Also write one proba_<class> column per class.")] = False,
    output_column: Annotated[str, typer.Option(help="Name of the prediction column.")] = "prediction",
) -> None:
    """Score every row of a file with a registry model, in chunks; rows keep their input order."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    from loopml.serving.batch import score_file

    settings = get_settings(ctx)
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed:,.0f}/{task.fields[total_text]} rows"), _RowsPerSecond(),
               TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=r.err_console(), transient=True) as progress:
        task = progress.add_task(f"scoring {src.name}", total=None, total_text="?")

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None, total_text=f"{total:,}" if total else "?")

        result = score_file(model_uri, src, dst, id_column=id_column, chunk_rows=chunk_rows, workers=workers,
                            executor=executor.value, output_column=output_column, proba=proba, settings=settings,
                            progress=update)
    r.console().print(Text.assemble(
        ("Scored ", "bold green"), (f"{result.rows:,}", "bold"), " rows with ", (result.model_uri, "bold"),
        f" in {r.fmt_duration(int(result.seconds * 1000))} ({result.rows_per_second:,.0f} rows/s, "
        f"{result.chunks:,} chunks, {result.executor}) -> ", (str(result.output), "bold"),
    ), soft_wrap=True)
