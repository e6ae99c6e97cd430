"""``loopml features``: apply definitions, list and show them, materialize, read online values, check skew."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import LoopmlGroup, get_settings

if TYPE_CHECKING:
    from loopml.features import FeatureStore

__all__ = ["app"]

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True,
                  help="Feature views: apply definitions, materialize to the online store, read features, check skew.")

_KIND = {"entity": "entity", "view": "view", "on_demand": "on-demand"}


def _store(ctx: typer.Context, *, existing: bool = True) -> FeatureStore:
    from loopml.features import get_feature_store

    return get_feature_store(get_settings(ctx, existing=existing))


def _ttl(us: int | None) -> str:
    if us is None:
        return "-"
    from datetime import timedelta

    return str(timedelta(microseconds=us))


def _parse_time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    from loopml.errors import InvalidInputError

    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{what} {value!r} is not an ISO date/time such as 2024-05-01T12:00:00") from None


@app.command("apply")
def apply(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A .py file or a module (importable from the project folder) "
                                               "defining Entity, FeatureView and OnDemandFeature objects.")],
) -> None:
    """Import definitions and store them; a changed definition becomes a new version."""
    from loopml.features import load_definitions

    settings = get_settings(ctx, existing=False)
    objects = load_definitions(target, settings.project_dir)
    results = _store(ctx, existing=False).apply(objects)
    table = r.table()
    table.add_column("kind")
    table.add_column("name", style="bold cyan")
    table.add_column("version", justify="right")
    table.add_column("status")
    styles = {"created": "bold green", "updated": "bold yellow", "unchanged": "dim"}
    for res in results:
        table.add_row(_KIND[res["kind"]], Text(res["name"]), f"v{res['version']}",
                      Text(res["status"], style=styles[res["status"]]))
    out = r.console()
    out.print(table)
    changed = sum(res["status"] != "unchanged" for res in results)
    out.print(f"{len(results)} definition{'s' if len(results) != 1 else ''}, {changed} new version{'s' if changed != 1 else ''}")


@app.command("list")
def list_definitions(ctx: typer.Context) -> None:
    """List entities, feature views and on-demand features (latest versions)."""
    store = _store(ctx)
    found = store.list()
    out = r.console()
    if not found:
        out.print(Text(f"No feature definitions in {store.settings.project_dir}.", style="yellow"))
        out.print("Define them in a .py file and run `loopml features apply FILE`.")
        return
    table = r.table()
    table.add_column("kind")
    table.add_column("name", style="bold cyan")
    table.add_column("version", justify="right")
    table.add_column("keys / inputs")
    table.add_column("features", overflow="ellipsis", max_width=50)
    table.add_column("ttl")
    table.add_column("materialized until (UTC)", no_wrap=True)
    for item in found:
        kind = item["kind"]
        if kind == "entity":
            row = [", ".join(item["join_keys"]), "", "", ""]
        elif kind == "view":
            until = item.get("materialized_until")
            row = [", ".join(item["join_keys"]), ", ".join(item["features"]), _ttl(item["ttl_us"]),
                   until[:19].replace("T", " ") if until else "-"]
        else:
            row = [", ".join(item["inputs"]), f"({item['dtype']})", "", ""]
        table.add_row(_KIND[kind], Text(item["name"]), f"v{item['version']}", *[Text(c) for c in row])
    out.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A feature view, entity or on-demand feature (NAME or NAME@VERSION).")],
) -> None:
    """Show one definition: its fields, versions and materialization state."""
    info = _store(ctx).describe(name)
    spec = info["spec"]
    out = r.console()
    rows: list[tuple[str, Any]] = [
        (_KIND[info["kind"]], Text(f"{info['name']} v{info['version']}", style="bold cyan")),
        ("created", f"{r.fmt_time(info['created_at'])} UTC by {info['created_by'] or '-'}"),
    ]
    if spec.get("description"):
        rows.append(("description", spec["description"]))
    if info["kind"] == "entity":
        rows.append(("join keys", ", ".join(spec["join_keys"])))
    elif info["kind"] == "view":
        rows += [
            ("entities", ", ".join(spec["entities"])),
            ("join keys", ", ".join(f"{k} ({spec['key_types'].get(k, '?')})" for k in spec["join_keys"])),
            ("source", spec["source"]),
            ("timestamp", f"{spec['timestamp']} ({spec['timestamp_type']})"),
            ("ttl", _ttl(spec.get("ttl_us"))),
        ]
    else:
        rows += [("inputs", ", ".join(spec["inputs"])), ("dtype", spec["dtype"]), ("function", spec["fn"]["name"])]
    out.print(r.kv_table(rows))
    if info["kind"] == "view":
        out.print()
        feats = r.table("Features")
        feats.add_column("feature", style="bold")
        feats.add_column("dtype")
        for f in spec["features"]:
            feats.add_row(Text(f["name"]), f["dtype"])
        out.print(feats)
        mats = info.get("materializations") or []
        if mats:
            out.print()
            t = r.table("Materializations")
            for col in ("online store", "version", "end (UTC)", "watermark (UTC)", "last run"):
                t.add_column(col)
            for m in mats:
                last = m.get("last") or {}
                summary = (f"{last.get('mode', '-')}: {last.get('written', 0)} written, {last.get('deleted', 0)} deleted"
                           if last else "-")
                t.add_row(Text(m["store"]), f"v{m['view_version']}", (m["end"] or "-")[:19].replace("T", " "),
                          (m["watermark"] or "-")[:19].replace("T", " "), summary)
            out.print(t)
    if info["kind"] == "on_demand" and spec["fn"].get("source"):
        out.print()
        out.print(r.section("Function"))
        out.print(Text(spec["fn"]["source"].rstrip()))
    out.print()
    vt = r.table("Versions")
    vt.add_column("version", justify="right", style="bold")
    vt.add_column("created (UTC)", no_wrap=True)
    vt.add_column("by")
    vt.add_column("digest")
    for v in reversed(info["versions"]):
        vt.add_row(f"v{v['version']}", r.fmt_time(v["created_at"]), r.text(v["created_by"]), r.short_hash(v["digest"]))
    out.print(vt)


@app.command("materialize")
def materialize(
    ctx: typer.Context,
    view: Annotated[list[str] | None, typer.Option("--view", "-v", help="A view to materialize (repeatable; default: all).")] = None,
    end: Annotated[str | None, typer.Option(help="Materialize as of this ISO time (default: now, UTC).")] = None,
) -> None:
    """Write the latest feature values per entity to the online store (incrementally)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    store = _store(ctx)
    when = _parse_time(end, "--end")
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("rows"), TimeElapsedColumn(), console=r.err_console(), transient=True) as progress:
        tasks: dict[str, Any] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"writing {name}", total=total)
            progress.update(tasks[name], completed=done, total=total)

        result = store.materialize(end=when, views=view or None, progress=report)
    out = r.console()
    table = r.table(f"Materialized as of {result['end'][:19].replace('T', ' ')} UTC into {result['store']}")
    for col in ("view", "mode", "rows read", "entities", "written", "deleted", "unchanged", "watermark (UTC)", "time"):
        table.add_column(col, justify="right" if col in ("rows read", "entities", "written", "deleted", "unchanged") else "left")
    for v in result["views"]:
        table.add_row(Text(v["view"], style="bold cyan"), Text(v["mode"], style="yellow" if v["mode"] == "full" else "green"),
                      f"{v['rows_scanned']:,}", f"{v['entities']:,}", f"{v['written']:,}", f"{v['deleted']:,}",
                      f"{v['unchanged']:,}", (v["watermark"] or "-")[:19].replace("T", " "), f"{v['seconds']:.2f}s")
    out.print(table)
    for v in result["views"]:
        if v["reason"]:
            out.print(Text(f"  {v['view']}: full rebuild because {v['reason']}", style="dim"))
    if not result["views"]:
        out.print(Text("No feature views to materialize; apply some first.", style="yellow"))


def _parse_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) and not isinstance(value, dict) else text


@app.command("get")
def get(
    ctx: typer.Context,
    features: Annotated[list[str], typer.Argument(help="Features: VIEW:FEATURE, VIEW:* or on-demand names.")],
    entity: Annotated[list[str], typer.Option("--entity", "-e", help="KEY=VALUE of the entity (repeatable for several "
                                                                    "keys; VALUE1,VALUE2 for several entities).")],
) -> None:
    """Read online feature values (for debugging)."""
    from loopml.errors import InvalidInputError

    columns: dict[str, list[Any]] = {}
    for item in entity:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--entity {item!r} must look like KEY=VALUE")
        columns[key] = [_parse_value(v) for v in value.split(",")]
    n = max(len(v) for v in columns.values())
    for key, given in columns.items():
        if len(given) == 1:
            columns[key] = given * n
        elif len(given) != n:
            raise InvalidInputError(f"--entity {key} has {len(given)} values, others have {n}")
    values = _store(ctx).get_online_features(columns, features)
    table = r.table()
    for key in columns:
        table.add_column(key, style="bold")
    for name in values:
        table.add_column(name)
    for i in range(n):
        table.add_row(*[Text(str(columns[k][i])) for k in columns],
                      *[r.text(None) if values[f][i] is None else Text(r.fmt_value(values[f][i])) for f in values])
    r.console().print(table)


@app.command("skew")
def skew(
    ctx: typer.Context,
    view: Annotated[str, typer.Argument(help="The feature view to check.")],
    sample: Annotated[int, typer.Option(help="How many entities to compare.")] = 1000,
    at: Annotated[str | None, typer.Option(help="Compare at this ISO time (default: the last materialization's end).")] = None,
) -> None:
    """Compare online values with point-in-time offline values for a sample of entities (exit 1 on mismatches)."""
    result = _store(ctx).check_skew(view, sample=sample, at=_parse_time(at, "--at"))
    out = r.console()
    ok = result["mismatched"] == 0
    out.print(r.kv_table([
        ("view", Text(f"{result['view']} v{result['version']}", style="bold cyan")),
        ("at", f"{result['at'][:19].replace('T', ' ')} UTC"),
        ("online store", result["store"]),
        ("entities compared", f"{result['entities']:,} x {result['features']} features"),
        ("mismatched values", Text(f"{result['mismatched']:,}", style="green" if ok else "bold red")),
        ("mismatched entities", f"{result['mismatched_entities']:,}"),
        ("missing online", f"{result['missing_online']:,}"),
    ]))
    if result["mismatches"]:
        table = r.table(f"Mismatches (first {len(result['mismatches'])})")
        for col in ("entity", "feature", "offline", "online"):
            table.add_column(col)
        for m in result["mismatches"]:
            table.add_row(Text(", ".join(f"{k}={v}" for k, v in m["entity"].items())), Text(m["feature"]),
                          r.text(None if m["offline"] is None else r.fmt_value(m["offline"])),
                          r.text(None if m["online"] is None else r.fmt_value(m["online"])))
        out.print(table)
    if not ok:
        raise typer.Exit(1)
