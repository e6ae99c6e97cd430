"""``loopml lineage``: what a model or dataset version was made from, or what was made from it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text
from rich.tree import Tree

from loopml.cli import _render as r
from loopml.cli._state import get_settings

if TYPE_CHECKING:
    from loopml.pipelines.lineage import LineageEdge, LineageGraph, LineageNode

__all__ = ["lineage", "render_tree"]

_KIND_STYLE = {"model_version": "bold cyan", "dataset_version": "bold green", "run": "bold magenta",
               "step": "bold yellow", "pipeline_run": "bold blue", "deployment": "bold red"}
# how a child relates to its parent, read from the parent: "models:/a/1 <- produced by run 1a2b3c4d"
_UPSTREAM_PHRASE = {"produced": "produced by", "reused": "returned from cache by", "used_by": "uses",
                    "input_to": "input from", "ran": "ran in"}
_DOWNSTREAM_PHRASE = {"produced": "produced", "reused": "returned from cache", "used_by": "used by",
                      "input_to": "feeds", "ran": "ran"}
# a step's pipeline run comes first, so it is expanded under the nearest step and left out under the others
_ORDER = {"pipeline_run": 0, "model_version": 1, "run": 2, "step": 3, "dataset_version": 4, "deployment": 5}


def _describe(node: LineageNode) -> Text:
    """One line for a node: its id or short name, then short ids, times and hashes."""
    a = node.attrs
    style = _KIND_STYLE.get(node.kind, "bold")
    out = Text()
    details: list[str] = []
    if node.kind in ("model_version", "dataset_version"):
        out.append(node.id, style=style)
        if node.kind == "model_version":
            details.append(str(a.get("flavor") or "-"))
        elif a.get("num_rows") is not None:
            details.append(f"{a['num_rows']} rows")
        details.append(f"sha256 {r.short_hash(a.get('sha256'))}")
        details.append(r.fmt_time(a.get("created_at")))
        details += [f"@{alias}" for alias in a.get("aliases") or []]
    elif node.kind == "run":
        out.append("run ", style=style)
        out.append(r.short_id(a.get("id")), style=style)
        if a.get("name"):
            out.append(f" {a['name']}")
        details += [str(a.get("status") or "-"), f"experiment {a.get('experiment') or '-'}",
                    r.fmt_time(a.get("start_time"))]
        if a.get("git_commit"):
            details.append(f"git {str(a['git_commit'])[:8]}{' (dirty)' if a.get('git_dirty') else ''}")
        unregistered = [d for d in a.get("datasets") or [] if not str(d.get("path") or "").startswith("datasets:/")]
        details += [f"data {d.get('name')} {r.short_hash(d.get('digest'))}" for d in unregistered]
    elif node.kind == "step":
        out.append("step ", style=style)
        out.append(node.label, style=style)
        out.append(f" of pipeline run {r.short_id(a.get('pipeline_run_id'))}")
        details += [str(a.get("status") or "-"), r.fmt_time(a.get("started_at"))]
        if a.get("code_hash"):
            details.append(f"code {r.short_hash(a['code_hash'])}")
    elif node.kind == "pipeline_run":
        out.append("pipeline run ", style=style)
        out.append(r.short_id(a.get("id")), style=style)
        out.append(f" {node.label}")
        details += [str(a.get("status") or "-"), r.fmt_time(a.get("started_at"))]
        if a.get("params"):
            details.append(f"params {json.dumps(a['params'], sort_keys=True, default=str)}")
        if a.get("git_commit"):
            details.append(f"git {str(a['git_commit'])[:8]}")
    else:
        out.append(node.id, style=style)
    if a.get("missing"):
        details = ["record missing"]
    if details:
        out.append("  " + " · ".join(details), style="dim")
    return out


def render_tree(graph: LineageGraph) -> Tree:
    """The graph as a tree rooted at ``graph.root``; a node reached twice is expanded once."""
    upstream = graph.direction == "upstream"
    phrases = _UPSTREAM_PHRASE if upstream else _DOWNSTREAM_PHRASE
    expanded: set[str] = set()

    def children(node_id: str) -> list[tuple[LineageEdge, str]]:
        pairs = ([(e, e.source) for e in graph.edges_to(node_id)] if upstream
                 else [(e, e.target) for e in graph.edges_from(node_id)])
        return sorted(pairs, key=lambda p: (_ORDER.get(graph.nodes[p[1]].kind, 9), p[1]))

    def grow(branch: Tree, node_id: str) -> None:
        expanded.add(node_id)
        for edge, child in children(node_id):
            line = Text(phrases.get(edge.relation, edge.relation), style="italic")
            if edge.attrs.get("input"):
                line.append(f" ({edge.attrs['input']})", style="italic")
            line.append("  ")
            line.append_text(_describe(graph.nodes[child]))
            if child in expanded:
                if graph.nodes[child].kind == "pipeline_run":
                    continue  # the step's line names its pipeline run already
                line.append("  (shown above)", style="dim")
                branch.add(line)
                continue
            grow(branch.add(line), child)

    tree = Tree(_describe(graph.nodes[graph.root]))
    grow(tree, graph.root)
    return tree


def lineage(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(
        help="models:/NAME/N (or @ALIAS), datasets:/NAME/N, run:ID, pipeline_run:ID or step:PIPELINE_RUN_ID/STEP.",
    )],
    downstream: Annotated[bool, typer.Option(
        "--downstream", help="Show what was made from URI instead of what it was made from.",
    )] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the graph as JSON (nodes and edges).")] = False,
    depth: Annotated[int, typer.Option(help="How many links away from URI to follow.", min=0)] = 10,
) -> None:
    """Show the lineage of a model or dataset version: runs, pipeline steps and data it came from, or what used it."""
    from loopml.pipelines.lineage import lineage as build

    graph = build(uri, direction="downstream" if downstream else "upstream", settings=get_settings(ctx), depth=depth)
    if as_json:
        typer.echo(json.dumps(graph.to_dict(), indent=2, default=str))
        return
    out = r.console()
    out.print(render_tree(graph))
    out.print(Text("Times are UTC.", style="dim"))
    if len(graph.nodes) == 1:
        what = "nothing was recorded as made from it" if downstream else "no run, step or dataset is recorded for it"
        out.print(Text(f"\n{graph.root}: {what}.", style="yellow"))
    if graph.truncated:
        out.print(Text(f"\nStopped {depth} links away; pass --depth to follow more.", style="yellow"))
