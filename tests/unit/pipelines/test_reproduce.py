"""Reproducing a registered model from the pipeline run that produced it."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier

from loopml import models
from loopml.config import Settings
from loopml.errors import NotFoundError
from loopml.pipelines import Pipeline, step
from loopml.pipelines.reproduce import reproduce


@step
def wine(limit: int) -> object:
    return load_wine(as_frame=True).frame.head(limit)


@step
def fit(wine: object, trees: int, seed: int) -> object:
    frame = wine
    X, y = frame.drop(columns="target"), frame["target"]  # type: ignore[attr-defined]
    model = RandomForestClassifier(n_estimators=trees, random_state=seed).fit(X, y)
    return models.register(model, "wine-rf", input_example=X.head())


@step
def fit_unseeded(wine: object, trees: int) -> object:
    frame = wine
    X, y = frame.drop(columns="target"), frame["target"]  # type: ignore[attr-defined]
    return models.register(RandomForestClassifier(n_estimators=trees).fit(X, y), "wine-noseed")


def test_a_seeded_sklearn_model_reproduces_bit_for_bit(settings: Settings) -> None:
    from loopml import registry

    registry.reset()
    run = Pipeline("train-wine", steps=[wine, fit], params={"limit": 150, "trees": 15}).run(settings=settings)
    assert run.status == "finished", run.error
    uri = run.step("fit").outputs["fit"]["uri"]
    assert uri == "models:/wine-rf/1"
    result = reproduce(uri, settings=settings)
    assert result.match, result.detail
    assert result.reproduced == "models:/wine-rf/2" and result.reproduced_sha256 == result.original_sha256
    assert result.pipeline_run == run.id and result.new_run != run.id


def test_an_unseeded_model_is_reported_as_different(settings: Settings) -> None:
    run = Pipeline("noseed", steps=[wine, fit_unseeded], params={"limit": 150, "trees": 15}).run(settings=settings)
    result = reproduce(run.step("fit_unseeded").outputs["fit_unseeded"]["uri"], settings=settings)
    assert not result.match and "non-deterministically" in result.detail


def test_a_model_not_made_by_a_pipeline_cannot_be_reproduced(settings: Settings) -> None:
    frame = load_wine(as_frame=True).frame
    models.register(RandomForestClassifier(n_estimators=3).fit(frame.drop(columns="target"), frame["target"]),
                    "by-hand", settings=settings)
    with pytest.raises(NotFoundError, match="not produced by a pipeline step"):
        reproduce("models:/by-hand/1", settings=settings)
