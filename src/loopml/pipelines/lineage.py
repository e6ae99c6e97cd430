"""Lineage: what a model or dataset version was made from, and what was made from it.

:func:`lineage` walks the records the other parts already keep — tracking runs
and the datasets they logged, model versions and the run that registered them,
pipeline runs, their steps, the steps' input hashes and the registered
versions they returned — and returns a :class:`LineageGraph`.

Nodes (:data:`NODE_KINDS`), by id:

============== ======================================= ==========================================
kind           id                                      from
============== ======================================= ==========================================
model_version  ``models:/NAME/N``                      ``model_versions``
dataset_version ``datasets:/NAME/N``                   ``dataset_versions``
run            ``run:RUN_ID``                          ``runs`` (a tracking run)
step           ``step:PIPELINE_RUN_ID/STEP``           ``step_runs``
pipeline_run   ``pipeline_run:PIPELINE_RUN_ID``        ``pipeline_runs``
deployment     ``deployment:NAME``                     reserved: deployments do not exist yet
============== ======================================= ==========================================

The ``deployment`` kind is reserved so that graphs, their JSON form and the
renderers already accept it: when serving records deployments, a deployment
will hang downstream of the model versions it serves (relation ``serves``)
without changing anything here but one more expansion rule.

Edges point downstream: ``source`` is upstream of ``target``. Relations
(:data:`RELATIONS`), read "source RELATION target":

* ``used_by`` — a tracking run logged the dataset version; a model version
  lists it in its ``datasets`` (when its run did not log it already); a step
  returned a version that existed before it started (it looked it up); a
  step took as input another step's output that is a version made there.
* ``produced`` — a tracking run registered the model version; a step created
  the version while it ran (its creation time falls inside the step's).
* ``reused`` — a cached step returned a version that the execution it reused
  had produced.
* ``input_to`` — a step's output is another step's input in the same
  pipeline run (matched by name and sha256; the edge's ``attrs["input"]``
  names it).
* ``ran`` — the pipeline run ran the step.

Reads go through one read transaction on the metadata store, so a graph is
a consistent snapshot even while pipelines keep running.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

import sqlalchemy as sa

from loopml import data, registry
from loopml.config import Settings
from loopml.errors import InvalidInputError, InvalidUriError, NotFoundError
from loopml.pipelines.pipeline import get_pipelines
from loopml.storage import _schema as t
from loopml.storage import get_backend
from loopml.storage.base import MetadataStore
from loopml.tracking import get_run

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "NODE_KINDS",
    "RELATIONS",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "SqlLineageRepository",
    "lineage",
]

#: Kinds of nodes, upstream-most first; ``deployment`` is reserved (see the module docstring).
NODE_KINDS: tuple[str, ...] = ("dataset_version", "pipeline_run", "step", "run", "model_version", "deployment")
#: Relations of edges (source is upstream of target).
RELATIONS: tuple[str, ...] = ("used_by", "produced", "reused", "input_to", "ran")

Direction = Literal["upstream", "downstream"]

_VERSION_URI = re.compile(r"^(?P<scheme>models|datasets):/(?P<name>[^/@]+)/(?P<version>[1-9][0-9]*)$")
_STEP_COLUMNS = ("id", "run_id", "step", "status", "attempts", "code_hash", "input_hashes", "params", "outputs",
                 "cached_from", "started_at", "ended_at", "error")


# -- the graph -------------------------------------------------------------------------


@dataclass
class LineageNode:
    """A record in the graph.

    Attributes:
        id: ``models:/NAME/N``, ``datasets:/NAME/N``, ``run:ID``, ``step:PIPELINE_RUN_ID/STEP``,
            ``pipeline_run:ID`` (``deployment:NAME`` later).
        kind: one of :data:`NODE_KINDS`.
        label: a short human name (``wine v1``, a run's name, a step's name).
        attrs: the record's details (times in ms since the epoch, hashes, parameters, status);
            ``missing: True`` when the id is referenced but its record is gone.
    """

    id: str
    kind: str
    label: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "label": self.label, "attrs": self.attrs}


@dataclass(frozen=True)
class LineageEdge:
    """``source`` is upstream of ``target``; ``relation`` is one of :data:`RELATIONS`."""

    source: str
    target: str
    relation: str
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "target": self.target, "relation": self.relation}
        if self.attrs:
            out["attrs"] = self.attrs
        return out


@dataclass
class LineageGraph:
    """Nodes and edges reached from ``root`` in one ``direction``.

    Attributes:
        truncated: the walk stopped at its depth limit with nodes left to expand.
    """

    root: str
    direction: str
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: ``{"root", "direction", "truncated", "nodes": [...], "edges": [...]}``."""
        return {
            "root": self.root,
            "direction": self.direction,
            "truncated": self.truncated,
            "nodes": [n.to_dict() for n in self.nodes.values()],
            "edges": [e.to_dict() for e in self.edges],
        }

    def _check(self, node_id: str) -> None:
        if node_id not in self.nodes:
            raise KeyError(f"{node_id!r} is not in this lineage graph (root {self.root!r})")

    def edges_to(self, node_id: str) -> list[LineageEdge]:
        """Edges whose target is ``node_id`` (its direct upstream)."""
        self._check(node_id)
        return [e for e in self.edges if e.target == node_id]

    def edges_from(self, node_id: str) -> list[LineageEdge]:
        """Edges whose source is ``node_id`` (its direct downstream)."""
        self._check(node_id)
        return [e for e in self.edges if e.source == node_id]

    def _reach(self, node_id: str, upstream: bool) -> list[LineageNode]:
        self._check(node_id)
        step: dict[str, list[str]] = {}
        for e in self.edges:
            a, b = (e.target, e.source) if upstream else (e.source, e.target)
            step.setdefault(a, []).append(b)
        seen, order, queue = {node_id}, [], deque([node_id])
        while queue:
            for nxt in step.get(queue.popleft(), []):
                if nxt not in seen:
                    seen.add(nxt)
                    order.append(self.nodes[nxt])
                    queue.append(nxt)
        return order

    def upstream_of(self, node_id: str) -> list[LineageNode]:
        """Every node in the graph that ``node_id`` was made from, nearest first.

        Raises:
            KeyError: ``node_id`` is not in the graph.
        """
        return self._reach(node_id, upstream=True)

    def downstream_of(self, node_id: str) -> list[LineageNode]:
        """Every node in the graph made from ``node_id``, nearest first.

        Raises:
            KeyError: ``node_id`` is not in the graph.
        """
        return self._reach(node_id, upstream=False)

    def of_kind(self, kind: str) -> list[LineageNode]:
        """The nodes of one kind (see :data:`NODE_KINDS`)."""
        return [n for n in self.nodes.values() if n.kind == kind]


# -- reading the records -----------------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _contains_string(column: Any, value: str) -> Any:
    """A cheap pre-filter: the JSON column's text contains ``"value"`` (callers check exactly)."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.cast(column, sa.Text).like(f'%"{escaped}"%', escape="\\")


class SqlLineageRepository:
    """Reads lineage records from the shared tables (SQLite and PostgreSQL).

    Every method takes the connection of one read transaction (see
    :meth:`MetadataStore.read`), so a walk sees one snapshot. Nothing is written.
    """

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def model_version(self, conn: Connection, name: str, version: int) -> dict[str, Any] | None:
        mv, a = t.model_versions.c, t.model_aliases.c
        row = conn.execute(
            sa.select(mv.name, mv.version, mv.flavor, mv.sha256, mv.size, mv.run_id, mv.datasets, mv.description,
                      mv.created_at, mv.created_by).where(mv.name == name, mv.version == version)
        ).first()
        if row is None:
            return None
        aliases = conn.execute(sa.select(a.alias).where(a.name == name, a.version == version).order_by(a.alias))
        return {**row._mapping, "datasets": _json(row.datasets) or [], "aliases": list(aliases.scalars())}

    def dataset_version(self, conn: Connection, name: str, version: int) -> dict[str, Any] | None:
        dv, a = t.dataset_versions.c, t.dataset_aliases.c
        row = conn.execute(
            sa.select(dv.name, dv.version, dv.sha256, dv.num_rows, dv.num_bytes, dv.source, dv.description,
                      dv.created_at, dv.created_by).where(dv.name == name, dv.version == version)
        ).first()
        if row is None:
            return None
        aliases = conn.execute(sa.select(a.alias).where(a.name == name, a.version == version).order_by(a.alias))
        return {**row._mapping, "aliases": list(aliases.scalars())}

    def run(self, conn: Connection, run_id: str) -> dict[str, Any] | None:
        r, e, p = t.runs.c, t.experiments.c, t.params.c
        row = conn.execute(
            sa.select(r.id, r.name, e.name.label("experiment"), r.status, r.start_time, r.end_time, r.parent_run_id,
                      r.user, r.git_commit, r.git_dirty)
            .join_from(t.runs, t.experiments, e.id == r.experiment_id)
            .where(r.id == run_id)
        ).first()
        if row is None:
            return None
        params = {
            key: (json.loads(value) if kind == "json" else value)
            for key, value, kind in conn.execute(sa.select(p.key, p.value, p.kind).where(p.run_id == run_id).order_by(p.key))
        }
        return {**row._mapping, "git_dirty": None if row.git_dirty is None else bool(row.git_dirty), "params": params}

    def run_datasets(self, conn: Connection, run_id: str) -> list[dict[str, Any]]:
        d = t.run_datasets.c
        rows = conn.execute(
            sa.select(d.name, d.path, d.digest, d.context, d.num_rows).where(d.run_id == run_id).order_by(d.id)
        )
        return [dict(x._mapping) for x in rows]

    def runs_using(self, conn: Connection, uri: str) -> list[str]:
        """Ids of the tracking runs that logged the dataset version ``uri``."""
        d = t.run_datasets.c
        return list(conn.execute(sa.select(d.run_id).where(d.path == uri).distinct().order_by(d.run_id)).scalars())

    def models_of_run(self, conn: Connection, run_id: str) -> list[tuple[str, int]]:
        mv = t.model_versions.c
        rows = conn.execute(sa.select(mv.name, mv.version).where(mv.run_id == run_id).order_by(mv.name, mv.version))
        return [(x.name, x.version) for x in rows]

    def models_listing(self, conn: Connection, uri: str) -> list[dict[str, Any]]:
        """Model versions whose ``datasets`` list holds the dataset version ``uri``."""
        mv = t.model_versions.c
        rows = conn.execute(
            sa.select(mv.name, mv.version, mv.run_id, mv.datasets)
            .where(_contains_string(mv.datasets, uri)).order_by(mv.name, mv.version)
        )
        out = []
        for x in rows:
            refs = _json(x.datasets) or []
            if any(isinstance(ref, dict) and ref.get("path") == uri for ref in refs):
                out.append({"name": x.name, "version": x.version, "run_id": x.run_id})
        return out

    def _steps(self, conn: Connection, *where: Any) -> list[dict[str, Any]]:
        s = t.step_runs.c
        rows = conn.execute(sa.select(*(s[c] for c in _STEP_COLUMNS)).where(*where).order_by(s.id))
        out = []
        for x in rows:
            m = dict(x._mapping)
            for col in ("input_hashes", "params", "outputs"):
                m[col] = _json(m[col]) or {}
            out.append(m)
        return out

    def steps_returning(self, conn: Connection, uri: str) -> list[dict[str, Any]]:
        """Done or cached steps (of any pipeline run) with an output that is the version ``uri``."""
        s = t.step_runs.c
        found = self._steps(conn, _contains_string(s.outputs, uri), s.status.in_(("done", "cached")))
        return [x for x in found if any(isinstance(o, dict) and o.get("uri") == uri for o in x["outputs"].values())]

    def steps_of(self, conn: Connection, pipeline_run_id: str) -> list[dict[str, Any]]:
        return self._steps(conn, t.step_runs.c.run_id == pipeline_run_id)

    def step_windows(self, conn: Connection, ids: Iterable[int]) -> dict[int, tuple[int | None, int | None]]:
        """Start and end times of step executions by record id."""
        s = t.step_runs.c
        rows = conn.execute(sa.select(s.id, s.started_at, s.ended_at).where(s.id.in_(list(ids))))
        return {x.id: (x.started_at, x.ended_at) for x in rows}

    def pipeline_run(self, conn: Connection, pipeline_run_id: str) -> dict[str, Any] | None:
        p = t.pipeline_runs.c
        row = conn.execute(
            sa.select(p.id, p.pipeline, p.status, p.params, p.seed, p.trigger, p.git_commit, p.started_at, p.ended_at,
                      p.error).where(p.id == pipeline_run_id)
        ).first()
        return None if row is None else {**row._mapping, "params": _json(row.params) or {}}


# -- walking -------------------------------------------------------------------------------


def _model_id(name: str, version: int) -> str:
    return f"models:/{name}/{version}"


def _step_id(row: dict[str, Any]) -> str:
    return f"step:{row['run_id']}/{row['step']}"


def _is_version(uri: Any, scheme: str | None = None) -> TypeGuard[str]:
    m = _VERSION_URI.match(uri) if isinstance(uri, str) else None
    return m is not None and (scheme is None or m.group("scheme") == scheme)


class _Walker:
    """Builds nodes and finds the edges of one node, on one read connection."""

    def __init__(self, repo: SqlLineageRepository, conn: Connection) -> None:
        self.repo = repo
        self.conn = conn
        self._nodes: dict[str, LineageNode] = {}
        self._run_steps: dict[str, dict[str, dict[str, Any]]] = {}
        self._windows: dict[int, tuple[int | None, int | None]] = {}
        self._run_paths: dict[str, set[str]] = {}

    # -- nodes -----------------------------------------------------------------

    def node(self, node_id: str) -> LineageNode:
        found = self._nodes.get(node_id)
        if found is None:
            found = self._nodes[node_id] = self._build(node_id)
        return found

    def _build(self, node_id: str) -> LineageNode:
        m = _VERSION_URI.match(node_id)
        if m is not None:
            name, version = m.group("name"), int(m.group("version"))
            if m.group("scheme") == "models":
                row = self.repo.model_version(self.conn, name, version)
                kind = "model_version"
            else:
                row = self.repo.dataset_version(self.conn, name, version)
                kind = "dataset_version"
            attrs = row if row is not None else {"name": name, "version": version, "missing": True}
            return LineageNode(node_id, kind, f"{name} v{version}", attrs)
        prefix, _, rest = node_id.partition(":")
        if prefix == "run":
            row = self.repo.run(self.conn, rest)
            if row is None:
                return LineageNode(node_id, "run", rest[:8], {"id": rest, "missing": True})
            row["datasets"] = self.repo.run_datasets(self.conn, rest)
            return LineageNode(node_id, "run", row["name"] or rest[:8], row)
        if prefix == "pipeline_run":
            row = self.repo.pipeline_run(self.conn, rest)
            if row is None:
                return LineageNode(node_id, "pipeline_run", rest[:8], {"id": rest, "missing": True})
            return LineageNode(node_id, "pipeline_run", row["pipeline"], row)
        if prefix == "step":
            run_id, _, name = rest.partition("/")
            step = self.steps(run_id).get(name)
            if step is None:
                return LineageNode(node_id, "step", name, {"pipeline_run_id": run_id, "step": name, "missing": True})
            attrs = {k: v for k, v in step.items() if k not in ("id", "run_id", "outputs")}
            attrs["pipeline_run_id"] = run_id
            # the reference without the inline bytes
            attrs["outputs"] = {o: {k: v for k, v in ref.items() if k != "inline"} for o, ref in step["outputs"].items()}
            return LineageNode(node_id, "step", name, attrs)
        raise InvalidUriError(f"{node_id!r} is not a lineage node id")  # pragma: no cover - ids are built here

    def _created(self, uri: str) -> int | None:
        created = self.node(uri).attrs.get("created_at")
        return created if isinstance(created, int) else None

    # -- pipeline records --------------------------------------------------------

    def steps(self, pipeline_run_id: str) -> dict[str, dict[str, Any]]:
        """The run's step records by name (read once per walk)."""
        found = self._run_steps.get(pipeline_run_id)
        if found is None:
            found = self._run_steps[pipeline_run_id] = {
                s["step"]: s for s in self.repo.steps_of(self.conn, pipeline_run_id)
            }
        return found

    def _window(self, step: dict[str, Any]) -> tuple[int | None, int | None]:
        """When the step's outputs were computed: its own times, or those of the execution it reused."""
        if step["status"] != "cached" or step["cached_from"] is None:
            return step["started_at"], step["ended_at"]
        origin = step["cached_from"]
        if origin not in self._windows:
            self._windows.update(self.repo.step_windows(self.conn, [origin]))
        return self._windows.get(origin, (None, None))

    def made(self, step: dict[str, Any], uri: str) -> str | None:
        """``produced``/``reused`` when the step created version ``uri``; None when it returned an older one."""
        created = self._created(uri)
        start, end = self._window(step)
        if created is None or start is None or created < start or (end is not None and created > end):
            return None
        return "produced" if step["status"] == "done" else "reused"

    def inputs(self, step: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
        """(upstream step, output name) for each input that is another step's output in the same run."""
        found = []
        for name, digest in sorted(step["input_hashes"].items()):
            for other in self.steps(step["run_id"]).values():
                ref = other["outputs"].get(name)
                if other is not step and isinstance(ref, dict) and ref.get("sha256") == digest:
                    found.append((other, name))
                    break
        return found

    def consumers(self, step: dict[str, Any], output: str) -> list[dict[str, Any]]:
        """Steps of the same run that took ``step``'s ``output`` as an input."""
        digest = step["outputs"][output].get("sha256")
        return [other for other in self.steps(step["run_id"]).values()
                if other is not step and other["input_hashes"].get(output) == digest]

    def run_paths(self, run_id: str) -> set[str]:
        paths = self._run_paths.get(run_id)
        if paths is None:
            paths = self._run_paths[run_id] = {
                d["path"] for d in self.repo.run_datasets(self.conn, run_id) if isinstance(d["path"], str)
            }
        return paths

    # -- edges -------------------------------------------------------------------

    def edges(self, node_id: str, direction: Direction) -> list[LineageEdge]:
        """The edges of ``node_id`` on its ``direction`` side."""
        node = self.node(node_id)
        if node.attrs.get("missing"):
            return []
        if node.kind in ("model_version", "dataset_version"):
            return self._version_edges(node, direction)
        if node.kind == "run":
            return self._run_edges(node, direction)
        if node.kind == "step":
            return self._step_edges(node, direction)
        if node.kind == "pipeline_run":
            if direction == "upstream":
                return []
            run_id = node.attrs["id"]
            return [LineageEdge(node_id, _step_id(s), "ran") for s in self.steps(run_id).values()]
        return []  # pragma: no cover - deployments are not recorded yet

    def _version_edges(self, node: LineageNode, direction: Direction) -> list[LineageEdge]:
        uri, out = node.id, []
        if node.kind == "model_version" and direction == "upstream":
            run_id = node.attrs["run_id"]
            if run_id:
                out.append(LineageEdge(f"run:{run_id}", uri, "produced"))
            # the run's datasets are copied into the version's list: link only those it added
            logged = self.run_paths(run_id) if run_id else set()
            for ref in node.attrs["datasets"]:
                path = ref.get("path") if isinstance(ref, dict) else None
                if _is_version(path, "datasets") and path not in logged:
                    out.append(LineageEdge(path, uri, "used_by"))
        elif node.kind == "dataset_version" and direction == "downstream":
            out += [LineageEdge(uri, f"run:{r}", "used_by") for r in self.repo.runs_using(self.conn, uri)]
            for m in self.repo.models_listing(self.conn, uri):
                if m["run_id"] is None or uri not in self.run_paths(m["run_id"]):
                    out.append(LineageEdge(uri, _model_id(m["name"], m["version"]), "used_by"))
        for step in self.repo.steps_returning(self.conn, uri):
            step = self.steps(step["run_id"]).get(step["step"], step)
            made = self.made(step, uri)
            if direction == "upstream":
                if made is not None:
                    out.append(LineageEdge(_step_id(step), uri, made))
            elif made is None:
                out.append(LineageEdge(uri, _step_id(step), "used_by"))
            else:
                for name, ref in step["outputs"].items():
                    if ref.get("uri") == uri:
                        out += [LineageEdge(uri, _step_id(c), "used_by") for c in self.consumers(step, name)]
        return out

    def _run_edges(self, node: LineageNode, direction: Direction) -> list[LineageEdge]:
        run_id = node.attrs["id"]
        if direction == "upstream":
            return [LineageEdge(d["path"], node.id, "used_by")
                    for d in node.attrs["datasets"] if _is_version(d["path"], "datasets")]
        return [LineageEdge(node.id, _model_id(n, v), "produced") for n, v in self.repo.models_of_run(self.conn, run_id)]

    def _step_edges(self, node: LineageNode, direction: Direction) -> list[LineageEdge]:
        run_id, name = node.attrs["pipeline_run_id"], node.attrs["step"]
        step = self.steps(run_id)[name]
        out = []
        if direction == "upstream":
            out.append(LineageEdge(f"pipeline_run:{run_id}", node.id, "ran"))
            for up, output in self.inputs(step):
                out.append(LineageEdge(_step_id(up), node.id, "input_to", {"input": output}))
                uri = up["outputs"][output].get("uri")
                if _is_version(uri) and self.made(up, uri) is not None:
                    out.append(LineageEdge(uri, node.id, "used_by"))
            for ref in step["outputs"].values():
                uri = ref.get("uri")
                if _is_version(uri) and self.made(step, uri) is None:
                    out.append(LineageEdge(uri, node.id, "used_by"))
            return out
        for output, ref in step["outputs"].items():
            out += [LineageEdge(node.id, _step_id(c), "input_to", {"input": output}) for c in self.consumers(step, output)]
            uri = ref.get("uri")
            if _is_version(uri):
                made = self.made(step, uri)
                if made is not None:
                    out.append(LineageEdge(node.id, uri, made))
        return out


# -- the entry point -------------------------------------------------------------------------


def _resolve_root(uri: Any, settings: Settings | None) -> str:
    """The canonical node id ``uri`` names, raising the owning part's NotFoundError when it does not exist."""
    forms = ("models:/NAME/N (or @ALIAS, /latest), datasets:/NAME/N (or @ALIAS, /latest), run:RUN_ID, "
             "pipeline_run:PIPELINE_RUN_ID or step:PIPELINE_RUN_ID/STEP")
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidUriError(f"lineage needs a URI such as {forms}; got {uri!r}")
    text = uri.strip()
    if text.startswith("models:"):
        return registry.resolve(text, settings=settings).uri
    if text.startswith("datasets:"):
        return data.resolve(text, settings=settings).uri
    prefix, sep, rest = text.partition(":")
    if sep and prefix == "run" and rest:
        return f"run:{get_run(rest, settings=settings).id}"
    if sep and prefix in ("pipeline_run", "step") and rest:
        run_ref, _, step = rest.partition("/")
        if prefix == "step" and not step:
            raise InvalidUriError(f"{text!r}: a step is named step:PIPELINE_RUN_ID/STEP")
        run = get_pipelines(settings).get_run(run_ref)  # NotFoundError; accepts a unique id prefix
        if prefix == "pipeline_run":
            return f"pipeline_run:{run.id}"
        if step not in {s.step for s in run.steps}:
            raise NotFoundError(
                f"pipeline run {run.id} ({run.pipeline!r}) has no step {step!r}; its steps: "
                f"{', '.join(s.step for s in run.steps) or 'none'}",
                run_id=run.id, step=step,
            )
        return f"step:{run.id}/{step}"
    if prefix == "deployment":
        raise InvalidUriError(f"{text!r}: deployments are not recorded yet, so they have no lineage; use {forms}")
    raise InvalidUriError(f"{text!r} is not a lineage URI; use {forms}")


def lineage(uri: str, *, direction: Direction = "upstream", settings: Settings | None = None,
            depth: int = 10) -> LineageGraph:
    """The lineage graph of a model version, dataset version, run, pipeline run or step.

    ``upstream`` answers "what was this made from": for a model version, the
    tracking run that registered it and the dataset versions that run logged
    (and those in the version's own ``datasets`` list), the pipeline step that
    produced it, that step's upstream steps, the dataset versions they
    returned, and the pipeline run with its parameters and git commit.
    ``downstream`` answers "what was made from this": for a dataset version,
    the runs that logged it and the model versions registered from them, the
    steps that used it, their downstream steps and the versions those produced.

    Args:
        uri: ``models:/NAME/N``, ``models:/NAME@ALIAS``, ``models:/NAME/latest``, the same for
            ``datasets:/``, ``run:RUN_ID``, ``pipeline_run:ID`` (or a unique prefix) or
            ``step:PIPELINE_RUN_ID/STEP``. Aliases and ``latest`` resolve to the version they name now.
        direction: ``"upstream"`` or ``"downstream"``.
        settings: project settings (default: the project's).
        depth: how many edges away from ``uri`` to walk; 0 returns the node alone.

    Returns:
        The graph; ``graph.root`` is the canonical id of ``uri`` (``models:/wine/3``).

    Raises:
        InvalidUriError: ``uri`` is not one of the forms above.
        ModelNotFoundError, ModelVersionNotFoundError, DatasetNotFoundError, AliasNotFoundError,
        RunNotFoundError, NotFoundError: what ``uri`` names does not exist.
        InvalidInputError: a bad ``direction`` or ``depth``.
    """
    if direction not in ("upstream", "downstream"):
        raise InvalidInputError(f"direction must be 'upstream' or 'downstream', got {direction!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise InvalidInputError(f"depth must be a whole number >= 0, got {depth!r}")
    root = _resolve_root(uri, settings)
    repo = SqlLineageRepository(get_backend(settings).metadata)
    graph = LineageGraph(root=root, direction=direction)
    seen_edges: set[tuple[str, str, str]] = set()
    with repo.store.read() as conn:
        walker = _Walker(repo, conn)
        graph.nodes[root] = walker.node(root)
        frontier = [root]
        for _ in range(depth):
            following: list[str] = []
            for node_id in frontier:
                for edge in walker.edges(node_id, direction):
                    key = (edge.source, edge.target, edge.relation)
                    if key in seen_edges:
                        continue
                    seen_edges.add(key)
                    graph.edges.append(edge)
                    other = edge.source if direction == "upstream" else edge.target
                    if other not in graph.nodes:
                        graph.nodes[other] = walker.node(other)
                        following.append(other)
            frontier = following
            if not frontier:
                break
        else:
            graph.truncated = any(
                (e.source, e.target, e.relation) not in seen_edges for n in frontier for e in walker.edges(n, direction)
            )
    return graph
