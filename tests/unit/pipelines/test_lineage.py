"""Lineage: model and dataset versions linked through tracking runs, pipeline steps and pipeline runs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from sklearn.datasets import load_wine
from sklearn.tree import DecisionTreeClassifier
from typer.testing import CliRunner

import loopml
from loopml import data, models
from loopml.cli.lineage import render_tree
from loopml.config import Settings
from loopml.data import DatasetVersion
from loopml.errors import (
    DatasetNotFoundError,
    InvalidInputError,
    InvalidUriError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
    NotFoundError,
    RunNotFoundError,
)
from loopml.pipelines import PIPELINES, Pipeline, PipelineRun, step
from loopml.pipelines.lineage import NODE_KINDS, LineageGraph, lineage
from loopml.registry import ModelVersion


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    frame: pd.DataFrame = load_wine(as_frame=True).frame
    return frame


def _fit(df: pd.DataFrame, max_depth: int = 3) -> DecisionTreeClassifier:
    X, y = df.drop(columns="target"), df["target"]
    return DecisionTreeClassifier(max_depth=max_depth, random_state=0).fit(X, y)


def _edges(graph: LineageGraph) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.relation) for e in graph.edges}


def _tracked_model(settings: Settings, wine: pd.DataFrame) -> tuple[DatasetVersion, str, ModelVersion]:
    """datasets:/wine/1 logged by a tracking run that registers models:/wine/1."""
    dv = data.register("wine", wine, settings=settings)
    with loopml.start_run("lineage", name="fit-wine", params={"C": 1.0}, settings=settings) as run:
        run.log_dataset("datasets:/wine/1")
        run.log_dataset(wine.head(20), name="holdout", context="eval")  # unregistered data: kept on the run node
        mv = models.register(_fit(wine), "wine")
    return dv, run.id, mv


def test_model_upstream_and_dataset_downstream_through_a_tracking_run(
    backend_settings: Settings, wine: pd.DataFrame
) -> None:
    dv, run_id, mv = _tracked_model(backend_settings, wine)
    assert (dv.uri, mv.uri) == ("datasets:/wine/1", "models:/wine/1")
    run_node = f"run:{run_id}"

    up = lineage("models:/wine/1", settings=backend_settings)
    assert up.root == "models:/wine/1" and up.direction == "upstream" and not up.truncated
    assert set(up.nodes) == {"models:/wine/1", run_node, "datasets:/wine/1"}
    # the version's datasets list repeats the run's: linked once, through the run
    assert _edges(up) == {(run_node, "models:/wine/1", "produced"), ("datasets:/wine/1", run_node, "used_by")}
    assert [n.id for n in up.upstream_of("models:/wine/1")] == [run_node, "datasets:/wine/1"]
    model, run, dataset = up.nodes["models:/wine/1"], up.nodes[run_node], up.nodes["datasets:/wine/1"]
    assert (model.kind, model.label, model.attrs["sha256"], model.attrs["run_id"]) == ("model_version", "wine v1", mv.sha256, run_id)
    assert (dataset.kind, dataset.attrs["sha256"], dataset.attrs["num_rows"]) == ("dataset_version", dv.sha256, len(wine))
    assert (run.kind, run.label, run.attrs["experiment"], run.attrs["params"]) == ("run", "fit-wine", "lineage", {"C": 1.0})
    assert {d["name"] for d in run.attrs["datasets"]} == {"wine", "holdout"}
    assert {n.kind for n in up.nodes.values()} <= set(NODE_KINDS)

    down = lineage("datasets:/wine/1", direction="downstream", settings=backend_settings)
    assert set(down.nodes) == {"datasets:/wine/1", run_node, "models:/wine/1"}
    assert _edges(down) == _edges(up)  # the same links, walked the other way
    assert [n.id for n in down.downstream_of("datasets:/wine/1")] == [run_node, "models:/wine/1"]

    # the JSON form round-trips
    doc = json.loads(json.dumps(up.to_dict()))
    assert doc["root"] == "models:/wine/1" and len(doc["nodes"]) == 3
    assert {(e["source"], e["target"], e["relation"]) for e in doc["edges"]} == _edges(up)


def test_aliases_latest_and_datasets_declared_without_a_run(backend_settings: Settings, wine: pd.DataFrame) -> None:
    dv, run_id, _ = _tracked_model(backend_settings, wine)
    models.set_alias("wine", "champion", 1, settings=backend_settings)
    assert lineage("models:/wine@champion", settings=backend_settings).root == "models:/wine/1"
    assert lineage("datasets:/wine/latest", settings=backend_settings).root == "datasets:/wine/1"
    champion = lineage("models:/wine/1", settings=backend_settings).nodes["models:/wine/1"]
    assert champion.attrs["aliases"] == ["champion"]

    # a version registered outside a run, naming its data itself
    plain = models.register(_fit(wine), "wine-plain", settings=backend_settings,
                            datasets=[{"name": "wine", "digest": dv.sha256, "path": dv.uri}])
    up = lineage(plain.uri, settings=backend_settings)
    assert _edges(up) == {("datasets:/wine/1", "models:/wine-plain/1", "used_by")}
    down = lineage("datasets:/wine/1", direction="downstream", settings=backend_settings)
    assert {"models:/wine/1", "models:/wine-plain/1", f"run:{run_id}"} <= set(down.nodes)
    assert ("datasets:/wine/1", "models:/wine-plain/1", "used_by") in _edges(down)

    # a run can be the root too
    assert _edges(lineage(f"run:{run_id}", direction="downstream", settings=backend_settings)) == {
        (f"run:{run_id}", "models:/wine/1", "produced")
    }


def test_depth_limits_the_walk(settings: Settings, wine: pd.DataFrame) -> None:
    _, run_id, _ = _tracked_model(settings, wine)
    one = lineage("models:/wine/1", settings=settings, depth=1)
    assert set(one.nodes) == {"models:/wine/1", f"run:{run_id}"} and one.truncated
    alone = lineage("models:/wine/1", settings=settings, depth=0)
    assert set(alone.nodes) == {"models:/wine/1"} and not alone.edges and alone.truncated


@pytest.fixture
def wine_pipeline(backend_settings: Settings, wine: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    """load (returns datasets:/wine/1) -> prep (registers datasets:/wine-clean/1) -> train (registers models:/wine-pipe/1)."""
    # run from the project folder, as users do: code hashing then treats loopml as a library
    # (from this repository's root it would walk loopml's own modules as project code)
    monkeypatch.chdir(backend_settings.project_dir)
    data.register("wine", wine, settings=backend_settings)

    @step
    def load() -> DatasetVersion:
        return data.resolve("datasets:/wine/1", settings=backend_settings)

    @step
    def prep(load: DatasetVersion) -> DatasetVersion:
        df = data.load(load, settings=backend_settings).drop(columns=["magnesium"])
        return data.register("wine-clean", df, settings=backend_settings)

    @step
    def train(prep: DatasetVersion, max_depth: int = 3) -> ModelVersion:
        clf = _fit(data.load(prep, settings=backend_settings), max_depth)
        return models.register(clf, "wine-pipe", settings=backend_settings)

    yield Pipeline("wine-train", steps=[load, prep, train], params={"max_depth": 3})
    PIPELINES.pop("wine-train", None)


def test_pipeline_lineage_links_steps_versions_and_the_run(backend_settings: Settings, wine_pipeline: Pipeline) -> None:
    first: PipelineRun = wine_pipeline.run(settings=backend_settings, seed=1)
    assert first.status == "finished", [s.error for s in first.steps]
    assert first.step("train").outputs["train"]["uri"] == "models:/wine-pipe/1"
    p = first.id
    load, prep, train = (f"step:{p}/{n}" for n in ("load", "prep", "train"))

    up = lineage("models:/wine-pipe/1", settings=backend_settings)
    assert _edges(up) == {
        (train, "models:/wine-pipe/1", "produced"),
        (prep, train, "input_to"),
        ("datasets:/wine-clean/1", train, "used_by"),  # prep's output, made there
        (prep, "datasets:/wine-clean/1", "produced"),
        (load, prep, "input_to"),
        ("datasets:/wine/1", load, "used_by"),  # load returned a version that existed before it ran
        (f"pipeline_run:{p}", load, "ran"),
        (f"pipeline_run:{p}", prep, "ran"),
        (f"pipeline_run:{p}", train, "ran"),
    }
    assert {e.attrs.get("input") for e in up.edges if e.relation == "input_to"} == {"load", "prep"}
    pr = up.nodes[f"pipeline_run:{p}"]
    assert (pr.kind, pr.label, pr.attrs["params"], pr.attrs["seed"]) == ("pipeline_run", "wine-train", {"max_depth": 3}, 1)
    assert "git_commit" in pr.attrs
    trained = up.nodes[train]
    assert trained.kind == "step" and trained.attrs["status"] == "done" and trained.attrs["params"] == {"max_depth": 3}
    assert trained.attrs["outputs"]["train"]["uri"] == "models:/wine-pipe/1"
    assert all("inline" not in ref for n in up.of_kind("step") for ref in n.attrs["outputs"].values())
    assert {n.id for n in up.upstream_of(train)} == set(up.nodes) - {train, "models:/wine-pipe/1"}
    buf = io.StringIO()
    Console(file=buf, width=250, no_color=True).print(render_tree(up))
    tree = buf.getvalue()
    assert tree.startswith("models:/wine-pipe/1") and "produced by  step train" in tree
    assert tree.count("ran in  pipeline run") == 1  # under the first step only; the others name their run
    assert tree.index("input from (prep)  step prep") < tree.index("input from (load)  step load")

    down = lineage("datasets:/wine/1", direction="downstream", settings=backend_settings)
    assert {load, prep, train, "datasets:/wine-clean/1", "models:/wine-pipe/1"} <= set(down.nodes)
    assert f"pipeline_run:{p}" not in down.nodes  # the run is upstream of its steps
    assert ("datasets:/wine/1", load, "used_by") in _edges(down)
    assert (train, "models:/wine-pipe/1", "produced") in _edges(down)

    # a cached re-run returns the same model version: linked as reused, the producer stays the first run
    again = wine_pipeline.run(settings=backend_settings, seed=1)
    assert [s.status for s in again.steps] == ["cached", "cached", "cached"]
    up2 = lineage("models:/wine-pipe/1", settings=backend_settings)
    assert (f"step:{again.id}/train", "models:/wine-pipe/1", "reused") in _edges(up2)
    assert (train, "models:/wine-pipe/1", "produced") in _edges(up2)
    assert ("datasets:/wine/1", f"step:{again.id}/load", "used_by") in _edges(up2)

    # steps and pipeline runs can be roots; a pipeline run id prefix is enough
    assert lineage(f"step:{p[:8]}/prep", settings=backend_settings).root == prep
    ran = lineage(f"pipeline_run:{p}", direction="downstream", settings=backend_settings)
    assert {load, prep, train, "models:/wine-pipe/1", "datasets:/wine-clean/1"} <= set(ran.nodes)


def test_unknown_and_invalid_uris_are_clean_errors(settings: Settings, wine: pd.DataFrame) -> None:
    with pytest.raises(ModelNotFoundError):
        lineage("models:/nope/1", settings=settings)
    with pytest.raises(DatasetNotFoundError):
        lineage("datasets:/nope/1", settings=settings)
    _tracked_model(settings, wine)
    with pytest.raises(ModelVersionNotFoundError):
        lineage("models:/wine/9", settings=settings)
    with pytest.raises(DatasetNotFoundError, match="no version 9"):
        lineage("datasets:/wine/9", settings=settings)
    with pytest.raises(RunNotFoundError):
        lineage("run:0123456789abcdef", settings=settings)
    with pytest.raises(NotFoundError, match="does not exist"):
        lineage("pipeline_run:0123456789abcdef", settings=settings)
    for bad in ("wine", "models:/wine/0", "models:wine", "step:abc", "deployment:prod", "", "file:/x"):
        with pytest.raises(InvalidUriError):
            lineage(bad, settings=settings)
    with pytest.raises(InvalidInputError, match="direction"):
        lineage("models:/wine/1", direction="sideways", settings=settings)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="depth"):
        lineage("models:/wine/1", depth=-1, settings=settings)


def test_graph_queries_reject_unknown_nodes(settings: Settings, wine: pd.DataFrame) -> None:
    _tracked_model(settings, wine)
    graph = lineage("models:/wine/1", settings=settings)
    with pytest.raises(KeyError, match="not in this lineage graph"):
        graph.upstream_of("models:/other/1")


def _cli(project: Path, *args: str):  # type: ignore[no-untyped-def]
    from loopml.cli.main import app

    return CliRunner().invoke(app, ["-p", str(project), *args], env={"COLUMNS": "250", "NO_COLOR": "1"})


def test_cli_prints_the_tree_and_json(settings: Settings, wine: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LOOPML_PROJECT_DIR", "LOOPML_METADATA_URL", "LOOPML_ARTIFACT_ROOT", "LOOPML_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    dv, run_id, mv = _tracked_model(settings, wine)
    project = settings.project_dir

    res = _cli(project, "lineage", "models:/wine/1")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("models:/wine/1") and mv.sha256[:12] in lines[0]
    assert "produced by" in res.output and f"run {run_id[:8]} fit-wine" in res.output
    assert "uses" in res.output and "datasets:/wine/1" in res.output and dv.sha256[:12] in res.output
    assert res.output.index("run ") < res.output.index("datasets:/wine/1")  # the run, then the data under it

    down = _cli(project, "lineage", "datasets:/wine/1", "--downstream")
    assert down.exit_code == 0, down.output
    assert down.output.splitlines()[0].startswith("datasets:/wine/1")
    assert "used by" in down.output and "produced" in down.output and "models:/wine/1" in down.output

    as_json = _cli(project, "lineage", "models:/wine/1", "--json")
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.output)
    assert doc["root"] == "models:/wine/1" and doc["direction"] == "upstream"
    assert {n["id"] for n in doc["nodes"]} == {"models:/wine/1", f"run:{run_id}", "datasets:/wine/1"}

    missing = _cli(project, "lineage", "models:/nope/1")
    assert missing.exit_code == 1 and "MODEL_NOT_FOUND" in missing.output and "Traceback" not in missing.output
    bad = _cli(project, "lineage", "nonsense")
    assert bad.exit_code == 1 and "INVALID_URI" in bad.output
