"""``loopml data``: register, inspect, profile, validate and scan datasets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli import _render as r
from loopml.cli._state import LoopmlGroup, get_settings

if TYPE_CHECKING:
    from loopml.config import Settings
    from loopml.data import DatasetVersion
    from loopml.data.models import Anomaly, PiiFinding, Profile

__all__ = ["app"]

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True,
                  help="Version datasets, profile them, infer and check schemas, find personal data.")


def _svc(settings: Settings) -> Any:
    from loopml.data import get_data

    return get_data(settings)


def _as_uri(ref: str) -> str:
    """``NAME`` is accepted for ``datasets:/NAME`` (the latest version)."""
    return ref if ref.startswith("datasets:/") else f"datasets:/{ref}"


def _parse_tags(tags: list[str] | None) -> dict[str, str]:
    from loopml.errors import InvalidInputError

    out = {}
    for t in tags or []:
        key, sep, value = t.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"tag {t!r} must look like KEY=VALUE")
        out[key] = value
    return out


def _count_rows(path: Path) -> int | None:
    """Rows of a file, cheaply, for a progress bar total (None when unknown)."""
    if path.suffix.lower() in (".parquet", ".pq") and path.is_file():
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:
            return None
    return None


@app.command("register")
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[Path, typer.Argument(help="A CSV/TSV or parquet file, or a folder of parquet files.")],
    source: Annotated[str | None, typer.Option(help="Where the data came from (default: the path).")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d", help="Free text.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="KEY=VALUE tag on the version (repeatable).")] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version, e.g. training.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV file.")] = "utf8",
) -> None:
    """Snapshot a file as the next version of a dataset (identical content is not stored twice)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    settings = get_settings(ctx, existing=False)
    svc = _svc(settings)
    total = _count_rows(path)
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("rows"), TimeElapsedColumn(), console=r.err_console(), transient=True) as progress:
        task = progress.add_task(f"reading {path.name}", total=total)
        result = svc.register(name, path, source=source, description=description, tags=_parse_tags(tag),
                              encoding=encoding, progress=lambda rows: progress.update(task, completed=rows))
    dv = result.version
    if alias:
        svc.set_alias(name, alias, dv.version)
        dv = svc.get_version(name, dv.version)
    out = r.console()
    if result.created:
        out.print(Text.assemble(("Registered ", "bold green"), (dv.uri, "bold"), f"  ({dv.num_rows:,} rows, "
                                f"{len(dv.columns)} columns, {r.fmt_bytes(dv.num_bytes)})"))
    else:
        out.print(Text.assemble(("Unchanged: ", "bold yellow"), "this content is already ", (dv.uri, "bold"),
                                " (same sha256); nothing stored"))
    if alias:
        out.print(f"alias @{alias} -> v{dv.version}")
    if result.pii:
        _print_pii(result.pii)


@app.command("list")
def list_datasets(ctx: typer.Context) -> None:
    """List datasets with their latest version."""
    settings = get_settings(ctx)
    found = _svc(settings).list_datasets()
    out = r.console()
    if not found:
        out.print(Text(f"No datasets in {settings.project_dir}.", style="yellow"))
        out.print("Register one with `loopml data register NAME FILE`.")
        return
    table = r.table()
    table.add_column("name", style="bold cyan")
    table.add_column("latest", justify="right")
    table.add_column("versions", justify="right")
    table.add_column("updated (UTC)", no_wrap=True)
    for d in found:
        latest = f"v{d['latest']}" if d["latest"] is not None else None
        table.add_row(Text(d["name"]), r.text(latest), r.text(d["versions"] or 0), r.fmt_time(d["updated_at"]))
    out.print(table)


def _columns_table(dv: DatasetVersion, profile: Profile | None) -> Table:
    table = r.table(title="columns")
    table.add_column("column", style="bold")
    table.add_column("type")
    if profile is not None:
        for head in ("kind", "nulls", "distinct", "mean", "min", "max", "PII"):
            table.add_column(head, justify="right" if head in ("nulls", "distinct", "mean") else "left")
    for c in dv.columns:
        row: list[Any] = [Text(c.name), Text(c.type)]
        p = profile.columns.get(c.name) if profile is not None else None
        if p is not None:
            row += [Text(p.kind), Text(f"{p.null_rate:.1%}"),
                    Text(("~" if p.distinct_approx else "") + (f"{p.distinct:,}" if p.distinct is not None else "-")),
                    Text(r.fmt_number(p.mean)), Text(r.fmt_value(p.min)), Text(r.fmt_value(p.max)),
                    Text(", ".join(p.pii), style="bold red")]
        table.add_row(*row)
    return table


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="datasets:/NAME[/VERSION|@ALIAS], or a dataset NAME.")],
) -> None:
    """Show a dataset version: metadata, versions, aliases and column statistics."""
    settings = get_settings(ctx)
    svc = _svc(settings)
    dv = svc.resolve(_as_uri(ref))
    out = r.console()
    out.print(r.kv_table([
        ("uri", dv.uri), ("rows", f"{dv.num_rows:,}"), ("size", r.fmt_bytes(dv.num_bytes)),
        ("sha256", dv.sha256), ("source", dv.source), ("description", dv.description),
        ("created", f"{r.fmt_time(dv.created_at)} by {dv.created_by or '-'}"),
        ("aliases", ", ".join(f"@{a}" for a in dv.aliases) or "-"),
        ("tags", ", ".join(f"{k}={v}" for k, v in dv.tags.items()) or "-"),
    ], title=f"dataset {dv.name}"))
    profile = svc.profile(dv) if dv.profile_key else None
    out.print(_columns_table(dv, profile))
    versions = svc.list_versions(dv.name)
    table = r.table(title="versions")
    for head in ("version", "rows", "sha256", "created (UTC)", "aliases", "source"):
        table.add_column(head)
    for v in versions:
        table.add_row(Text(f"v{v.version}", style="bold" if v.version == dv.version else ""), Text(f"{v.num_rows:,}"),
                      Text(r.short_hash(v.sha256)), Text(r.fmt_time(v.created_at)),
                      Text(", ".join(f"@{a}" for a in v.aliases)), r.text(v.source))
    out.print(table)


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. training.")],
    version: Annotated[int, typer.Argument(help="Version the alias should point at.")],
) -> None:
    """Point an alias of a dataset at a version."""
    old = _svc(get_settings(ctx)).set_alias(name, alias_name, version)
    r.console().print(f"{name}@{alias_name}: {'(new)' if old is None else f'v{old}'} -> v{version}")


@app.command("profile")
def profile(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="datasets:/NAME[/VERSION|@ALIAS], or a dataset NAME.")],
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="HTML report path (default: NAME-vN-profile.html).")] = None,
) -> None:
    """Write an HTML profile report (charts per column, correlation heatmap) and print a summary."""
    from loopml.data.report import write_profile_html

    svc = _svc(get_settings(ctx))
    dv = svc.resolve(_as_uri(ref))
    prof = svc.profile(dv)
    path = out_path or Path(f"{dv.name}-v{dv.version}-profile.html")
    write_profile_html(prof, path, title=f"{dv.uri} — {dv.num_rows:,} rows", pii=svc.pii(dv))
    out = r.console()
    out.print(_columns_table(dv, prof))
    out.print(Text.assemble(("Report: ", "bold green"), str(path.resolve())))


def _load_batch(svc: Any, ref: str) -> tuple[Any, str]:
    from loopml.data._io import to_table

    if ref.startswith("datasets:/"):
        dv = svc.resolve(ref)
        return svc.load_table(dv), dv.uri
    path = Path(ref)
    if not path.exists() and "/" not in ref and "." not in ref:
        dv = svc.resolve(_as_uri(ref))
        return svc.load_table(dv), dv.uri
    return to_table(path), str(path)


@app.command("infer-schema")
def infer_schema_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="datasets:/NAME[/VERSION|@ALIAS], or a dataset NAME.")],
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="Schema file (default: NAME.schema.yaml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing schema file.")] = False,
) -> None:
    """Infer a schema (types, nullability, ranges, categories, row counts) into an editable YAML file."""
    from loopml.data.schema import infer_schema
    from loopml.errors import AlreadyExistsError

    svc = _svc(get_settings(ctx))
    dv = svc.resolve(_as_uri(ref))
    path = out_path or Path(f"{dv.name}.schema.yaml")
    if path.exists() and not force:
        raise AlreadyExistsError(f"{path} already exists; pass --force to overwrite it, or --out another path")
    schema = infer_schema(svc.profile(dv))
    schema.save(path)
    r.console().print(Text.assemble(("Schema of ", "bold green"), dv.uri, " written to ", (str(path), "bold"),
                                    f" ({len(schema.columns)} columns). Edit it, commit it, then "
                                    f"`loopml data validate FILE --schema {path}`."))


def _print_anomalies(anomalies: list[Anomaly]) -> None:
    table = r.table(title="anomalies")
    for head in ("severity", "column", "kind", "rows", "message", "examples"):
        table.add_column(head, overflow="fold")
    for a in anomalies:
        style = "bold red" if a.severity == "error" else "yellow"
        table.add_row(Text(a.severity, style=style), r.text(a.column), Text(a.kind), Text(f"{a.rows:,}"),
                      Text(a.message), Text(", ".join(map(str, a.examples[:5]))))
    r.console().print(table)


@app.command("validate")
def validate_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="A CSV/parquet file, datasets:/NAME[/VERSION|@ALIAS], or a dataset NAME.")],
    schema_path: Annotated[Path, typer.Option("--schema", "-s", help="Schema file (YAML) to check against.")],
) -> None:
    """Check data against a schema; exits 1 when there are errors, so it can gate CI."""
    from loopml.data.schema import Schema
    from loopml.data.validation import has_errors, validate

    schema = Schema.load(schema_path)
    table, label = _load_batch(_svc(get_settings(ctx, existing=ref.startswith("datasets:/"))), ref)
    anomalies = validate(table, schema)
    out = r.console()
    if not anomalies:
        out.print(Text.assemble(("OK ", "bold green"), f"{label}: {table.num_rows:,} rows match {schema_path}"))
        return
    _print_anomalies(anomalies)
    errors = sum(1 for a in anomalies if a.severity == "error")
    warnings = len(anomalies) - errors
    out.print(Text.assemble((f"{errors} error(s)", "bold red" if errors else ""), f", {warnings} warning(s) in {label}"))
    if has_errors(anomalies):
        raise typer.Exit(1)


def _print_pii(findings: list[PiiFinding]) -> None:
    table = r.table(title="personal data")
    for head in ("column", "kind", "match rate", "examples (masked)", "reason"):
        table.add_column(head, overflow="fold")
    for f in findings:
        table.add_row(Text(f.column, style="bold"), Text(f.kind, style="bold red"), Text(f"{f.match_rate:.0%}"),
                      Text(", ".join(f.examples[:3])), Text(f.reason))
    r.console().print(table)


@app.command("pii")
def pii(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="A CSV/parquet file, datasets:/NAME[/VERSION|@ALIAS], or a dataset NAME.")],
) -> None:
    """Find columns that look like personal data (e-mails, phones, card numbers, IPs, names)."""
    from loopml.data.pii import scan_pii

    table, label = _load_batch(_svc(get_settings(ctx, existing=ref.startswith("datasets:/"))), ref)
    findings = scan_pii(table)
    if not findings:
        r.console().print(Text.assemble(("No personal data found ", "bold green"), f"in {label}"))
        return
    _print_pii(findings)


@app.command("skew")
def skew(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="Reference: datasets:/... or a dataset NAME (e.g. the training data).")],
    current: Annotated[str, typer.Argument(help="Current: datasets:/..., a dataset NAME, or a CSV/parquet file.")],
) -> None:
    """Compare two datasets' distributions column by column (training/serving skew)."""
    from loopml.data.profile import profile_table
    from loopml.data.skew import compare_profiles

    svc = _svc(get_settings(ctx))
    ref_profile = svc.profile(svc.resolve(_as_uri(reference)))
    if current.startswith("datasets:/") or not Path(current).exists():
        cur_profile = svc.profile(svc.resolve(_as_uri(current)))
    else:
        cur_profile = profile_table(_load_batch(svc, current)[0])
    findings = compare_profiles(ref_profile, cur_profile)
    table = r.table(title="distribution shift")
    for head in ("column", "kind", "metric", "value", "threshold", "shifted", "detail"):
        table.add_column(head)
    for f in findings:
        table.add_row(Text(f.column, style="bold"), Text(f.kind), Text(f.metric), Text(r.fmt_number(f.value)),
                      Text(r.fmt_number(f.threshold)), Text("yes" if f.drifted else "no", style="bold red" if f.drifted else "green"),
                      Text(f.detail))
    out = r.console()
    out.print(table)
    n = sum(1 for f in findings if f.drifted)
    out.print(Text(f"{n} of {len(findings)} column check(s) shifted beyond their threshold",
                   style="bold red" if n else "bold green"))
