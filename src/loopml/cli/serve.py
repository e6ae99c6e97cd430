"""``loopml serve``: the HTTP prediction service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli._state import get_settings

if TYPE_CHECKING:
    from loopml.serving.app import ServingState

__all__ = ["serve"]


def serve(
    ctx: typer.Context,
    model_uri: Annotated[str | None, typer.Argument(help="Model to serve: models:/NAME/VERSION, models:/NAME@ALIAS "
                                                         "(followed when the alias moves) or models:/NAME/latest.")] = None,
    deployment: Annotated[str | None, typer.Option("--deployment", "-d", help="Serve this deployment "
                                                   "(see `loopml deploy`); changes apply without a restart.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    open_mode: Annotated[bool, typer.Option("--open", help="Serve without API keys (local use only).")] = False,
    max_batch: Annotated[int, typer.Option(help="Rows per model call at most (micro-batching).")] = 256,
    batch_wait_ms: Annotated[float, typer.Option(help="How long a batch may wait for requests in flight "
                                                      "(0: never wait; an idle server answers at once).")] = 0.0,
    no_batching: Annotated[bool, typer.Option("--no-batching", help="Call the model once per request.")] = False,
    max_body_mb: Annotated[float, typer.Option(help="Larger request bodies get HTTP 413.")] = 10.0,
    max_rows: Annotated[int, typer.Option(help="More rows in one request get HTTP 400.")] = 100_000,
    schema: Annotated[Path | None, typer.Option("--schema", help="Also refuse requests that break this data "
                                                "schema (YAML from `loopml data infer-schema`): ranges, categories, nulls.",
                                                exists=True, dir_okay=False)] = None,
    features: Annotated[list[str] | None, typer.Option("--features", help="Add these online features "
                                                       "(view:feature or view:*) to requests that carry entity keys; "
                                                       "a deployment declares its own with `loopml deploy features`.")
                        ] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not write the prediction log.")] = False,
    flush_interval: Annotated[float, typer.Option(help="Seconds between prediction-log writes (the most a crash "
                                                       "can lose).")] = 1.0,
) -> None:
    """Serve a model or a deployment over HTTP (MLflow /invocations, Open Inference V2, /metrics)."""
    from loopml.data.schema import Schema
    from loopml.errors import InvalidInputError
    from loopml.serving.app import ServeOptions
    from loopml.serving.batching import BatchConfig
    from loopml.serving.server import run_server

    if (model_uri is None) == (deployment is None):
        raise InvalidInputError("give a model URI (loopml serve models:/NAME@ALIAS) or --deployment NAME, not both")
    if max_batch < 1 or batch_wait_ms < 0 or max_body_mb <= 0 or max_rows < 1 or flush_interval <= 0:
        raise InvalidInputError("--max-batch and --max-rows must be >= 1, --batch-wait-ms >= 0, "
                                "--max-body-mb and --flush-interval > 0")
    options = ServeOptions(open_mode=open_mode, max_body_bytes=int(max_body_mb * 1024 * 1024), max_rows=max_rows,
                           batch=BatchConfig(max_batch_rows=max_batch, max_wait_ms=batch_wait_ms,
                                             enabled=not no_batching),
                           log_predictions=not no_log, flush_interval=flush_interval,
                           data_schema=Schema.load(schema) if schema is not None else None,
                           features=tuple(features or ()))
    run_server(get_settings(ctx), model_uri=model_uri, deployment=deployment, host=host, port=port, options=options,
               announce=_announce)


def _announce(state: ServingState, url: str) -> None:
    from rich.text import Text

    from loopml.cli._render import console

    router = state.router
    assert router is not None
    out = console()
    what = ", ".join(f"{s.model.uri} ({s.name} {s.weight:g}%)" for s in router.live)
    extra = "".join(f", shadow {s.model.uri}" for s in router.shadows)
    out.print(Text.assemble(("Serving ", "bold"), (what + extra, "cyan"), " on ", (url, "bold green")))
    out.print(f"  POST {url}/invocations · {url}/v2/models/{router.name}/infer · GET {url}/metrics · {url}/docs")
    if state.options.open_mode:
        out.print(Text("  OPEN MODE: no API key is needed; anyone who can reach this port can call every endpoint, "
                       "including /admin. Use API keys (`loopml keys create`) beyond your own machine.",
                       style="bold yellow"))
    else:
        out.print("  API keys required: Authorization: Bearer <key> (or X-API-Key)")
    if state.options.log_predictions:
        out.print(f"  Prediction log: predictions/{router.name}/ in the artifact store, flushed every "
                  f"{state.options.flush_interval:g} s")
