"""Model registry: versions, signatures, flavors, aliases, URIs and bad input, on every backend."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopml
from loopml import models, registry
from loopml.config import Settings
from loopml.errors import (
    AliasNotFoundError,
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    ConflictError,
    InvalidInputError,
    InvalidUriError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
    SignatureMismatchError,
    UnsupportedModelError,
)


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series, LogisticRegression]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y, LogisticRegression(max_iter=500).fit(X, y)


@pytest.fixture(autouse=True)
def _reset_registry():
    yield
    registry.reset()


def test_register_sklearn_infers_signature_and_hash(backend_settings: Settings, iris) -> None:
    X, _, clf = iris
    mv = models.register(clf, "iris", input_example=X.head(5), description="first", settings=backend_settings)
    assert (mv.name, mv.version, mv.flavor) == ("iris", 1, "sklearn")
    assert mv.signature is not None
    assert mv.signature.columns == list(X.columns)
    assert {c.dtype for c in mv.signature.inputs} == {"float"}
    assert mv.signature.output_dtype == "integer"
    assert mv.requirements["scikit-learn"]
    assert "python" in mv.requirements
    stored = models.get_registry(backend_settings).backend.blobs.get_bytes(mv.artifact_key)
    assert hashlib.sha256(stored).hexdigest() == mv.sha256
    mv2 = models.register(clf, "iris", settings=backend_settings)
    assert mv2.version == 2
    assert models.get_model("iris", settings=backend_settings).latest_version == 2
    assert [v.version for v in models.list_versions("iris", settings=backend_settings)] == [1, 2]


def test_load_by_number_alias_and_latest_predicts_like_the_original(backend_settings: Settings, iris) -> None:
    X, _, clf = iris
    v1 = models.register(clf, "iris", input_example=X.head(), settings=backend_settings)
    other = LogisticRegression(C=0.01, max_iter=500).fit(X, iris[1])
    v2 = models.register(other, "iris", input_example=X.head(), settings=backend_settings)
    models.set_alias("iris", "champion", v1.version, settings=backend_settings)
    by_alias = models.load("models:/iris@champion", settings=backend_settings)
    assert by_alias.version.version == 1
    np.testing.assert_array_equal(by_alias.predict(X), clf.predict(X))
    latest = models.load("models:/iris/latest", settings=backend_settings)
    assert latest.version.version == v2.version
    np.testing.assert_array_equal(latest.predict(X), other.predict(X))
    assert models.load("models:/iris", settings=backend_settings).version.version == 2
    assert models.load("models:/iris/1", settings=backend_settings).version.aliases == ["champion"]
    # columns out of order are put back in the trained order
    np.testing.assert_array_equal(by_alias.predict(X[X.columns[::-1]]), clf.predict(X))
    # records work as input too
    np.testing.assert_array_equal(by_alias.predict(X.head(3).to_dict("records")), clf.predict(X.head(3)))


def test_signature_check_lists_every_mismatch(settings: Settings, iris) -> None:
    X, _, clf = iris
    models.register(clf, "iris", input_example=X.head(), settings=settings)
    m = models.load("models:/iris/1", settings=settings)
    bad = X.drop(columns=["sepal length (cm)", "petal width (cm)"]).assign(**{"sepal width (cm)": "wide"})
    with pytest.raises(SignatureMismatchError) as err:
        m.predict(bad)
    problems = err.value.problems
    assert len(problems) == 3
    assert any("missing column 'sepal length (cm)'" in p for p in problems)
    assert any("missing column 'petal width (cm)'" in p for p in problems)
    assert any("'sepal width (cm)' has type string" in p for p in problems)
    # integers where floats are expected are a safe conversion, not a mismatch
    m.predict(X.round().astype(int))


class Doubler:
    """A generic Python model: anything with predict(DataFrame)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return df.sum(axis=1).to_numpy() * self.factor


def test_python_flavor_round_trip(settings: Settings) -> None:
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    mv = models.register(Doubler(2.0), "doubler", input_example=df, settings=settings)
    assert mv.flavor == "python"
    out = models.load("models:/doubler/1", settings=settings).predict(df)
    np.testing.assert_allclose(out, [8.0, 12.0])


def test_torch_flavor_round_trip(settings: Settings) -> None:
    import torch  # the torch extra is part of the dev install

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    df = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 3)), columns=["x", "y", "z"])
    mv = models.register(net, "net", input_example=df, settings=settings)
    assert mv.flavor == "torch"
    assert mv.requirements["torch"].startswith(torch.__version__.split("+")[0])
    assert mv.signature is not None and mv.signature.output_shape == []  # one output column comes back 1-D
    loaded = models.load("models:/net/1", settings=settings)
    expected = net(torch.tensor(df.to_numpy(), dtype=torch.float32)).detach().numpy()[:, 0]
    np.testing.assert_allclose(loaded.predict(df), expected, rtol=1e-6)


def test_unsupported_and_unserialisable_models(settings: Settings) -> None:
    with pytest.raises(UnsupportedModelError, match="predict"):
        models.register(object(), "nothing", settings=settings)
    with pytest.raises(InvalidInputError, match="None"):
        models.register(None, "nothing", settings=settings)
    with pytest.raises(InvalidInputError, match="model name"):
        models.register(Doubler(1), "bad/name", settings=settings)
    with pytest.raises(InvalidInputError, match="input example"):
        models.register(Doubler(1), "d", input_example=pd.DataFrame({"s": ["x"]}).astype(object).assign(s=[object()]),
                        settings=settings)


def test_unknown_model_version_alias_and_bad_uris(backend_settings: Settings, iris) -> None:
    X, _, clf = iris
    with pytest.raises(ModelNotFoundError, match="'ghost' is not registered"):
        models.load("models:/ghost/1", settings=backend_settings)
    models.register(clf, "iris", settings=backend_settings)
    with pytest.raises(ModelVersionNotFoundError, match="no version 7"):
        models.load("models:/iris/7", settings=backend_settings)
    with pytest.raises(AliasNotFoundError, match="no alias 'prod'"):
        models.load("models:/iris@prod", settings=backend_settings)
    for uri in ["iris", "models:/", "models:/iris/abc", "models:/iris/0", "runs:/x/model", "models:/a/1/2"]:
        with pytest.raises(InvalidUriError):
            models.load(uri, settings=backend_settings)
    with pytest.raises(ModelVersionNotFoundError):
        models.set_alias("iris", "champion", 9, settings=backend_settings)
    with pytest.raises(InvalidInputError, match="alias"):
        models.set_alias("iris", "latest", 1, settings=backend_settings)
    with pytest.raises(InvalidInputError, match="positive integer"):
        models.set_alias("iris", "champion", 0, settings=backend_settings)


def test_alias_moves_history_and_repeated_rollback(backend_settings: Settings, iris) -> None:
    X, _, clf = iris
    for _ in range(3):
        models.register(clf, "iris", settings=backend_settings)
    s = backend_settings
    with pytest.raises(AliasNotFoundError):
        models.rollback_alias("iris", "champion", settings=s)
    assert models.set_alias("iris", "champion", 1, settings=s) is None
    with pytest.raises(ConflictError, match="no earlier version"):
        models.rollback_alias("iris", "champion", settings=s)
    assert models.set_alias("iris", "champion", 2, settings=s) == 1
    assert models.set_alias("iris", "champion", 3, settings=s) == 2
    models.set_alias("iris", "challenger", 1, settings=s)
    assert models.rollback_alias("iris", "champion", settings=s) == 2
    assert models.resolve("models:/iris@champion", settings=s).version == 2
    assert models.rollback_alias("iris", "champion", settings=s) == 1
    with pytest.raises(ConflictError):
        models.rollback_alias("iris", "champion", settings=s)
    history = models.alias_history("iris", "champion", settings=s)
    assert [(h.version, h.previous_version, h.action) for h in history] == [
        (1, None, "set"), (2, 1, "set"), (3, 2, "set"), (2, 3, "rollback"), (1, 2, "rollback"),
    ]
    assert models.get_model("iris", settings=s).aliases == {"challenger": 1, "champion": 1}
    models.delete_alias("iris", "challenger", settings=s)
    assert models.get_model("iris", settings=s).aliases == {"champion": 1}
    with pytest.raises(AliasNotFoundError):
        models.delete_alias("iris", "challenger", settings=s)


def test_corrupted_or_missing_model_file_is_detected(settings: Settings, iris) -> None:
    X, _, clf = iris
    mv = models.register(clf, "iris", settings=settings)
    path = Path(settings.artifact_root) / mv.artifact_key
    data = path.read_bytes()
    path.write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(ArtifactCorruptedError, match="corrupted"):
        models.load("models:/iris/1", settings=settings)
    path.unlink()
    with pytest.raises(ArtifactNotFoundError, match="missing"):
        models.load("models:/iris/1", settings=settings)


def test_version_links_run_and_its_datasets(backend_settings: Settings, iris) -> None:
    X, y, _ = iris
    with loopml.start_run("iris", settings=backend_settings) as run:
        ref = run.log_dataset(X.assign(target=y), name="iris")
        clf = LogisticRegression(max_iter=300).fit(X, y)
        mv = models.register(clf, "iris", input_example=X.head())
    assert mv.run_id == run.id
    assert [(d["name"], d["digest"]) for d in mv.datasets] == [("iris", ref.digest)]
    assert mv.created_by


def test_versions_are_immutable_but_annotations_change(settings: Settings, iris) -> None:
    clf = iris[2]
    mv = models.register(clf, "iris", tags={"stage": "dev"}, settings=settings)
    updated = models.update_version("iris", 1, description="checked", tags={"stage": "prod"}, settings=settings)
    assert updated.description == "checked"
    assert updated.tags == {"stage": "prod"}
    assert (updated.sha256, updated.artifact_key) == (mv.sha256, mv.artifact_key)
    with pytest.raises(ModelVersionNotFoundError):
        models.update_version("iris", 5, description="x", settings=settings)


def test_concurrent_registrations_get_distinct_versions(backend_settings: Settings, iris) -> None:
    clf = iris[2]
    models.create_model("iris", settings=backend_settings)
    versions: list[int] = []
    errors: list[BaseException] = []

    def register(i: int) -> None:
        try:
            versions.append(models.register(Doubler(i), "iris", settings=backend_settings).version)
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]
    del clf


def test_sklearn_autolog_records_params_metrics_and_model(settings: Settings, iris) -> None:
    from sklearn.model_selection import GridSearchCV

    import loopml.sklearn

    X, y, _ = iris
    loopml.sklearn.autolog(experiment="auto", register_as="iris-auto", settings=settings)
    try:
        GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0]}, cv=3).fit(X, y)
        with loopml.start_run("manual", settings=settings) as run:
            LogisticRegression(C=0.5, max_iter=300).fit(X, y)
    finally:
        loopml.sklearn.autolog(disable=True)
    auto = loopml.search_runs("auto", settings=settings).runs
    assert len(auto) == 1  # the search's inner fits are not separate runs
    r = auto[0]
    assert r.name == "GridSearchCV" and r.status.value == "finished"
    assert r.params["best_C"] in (0.1, 1.0)
    assert 0.9 < r.metrics["training_accuracy"].value <= 1.0
    assert "best_cv_score" in r.metrics
    assert [a.path for a in loopml.get_run(r.id, settings=settings).artifacts] == ["model/model.pkl"]
    manual = loopml.get_run(run.id, settings=settings)
    assert manual.params["C"] == 0.5
    assert "training_roc_auc" in manual.metrics
    versions = models.list_versions("iris-auto", settings=settings)
    assert {v.run_id for v in versions} == {r.id, run.id}
    # patching is undone
    before = len(loopml.search_runs(settings=settings).runs)
    LogisticRegression(max_iter=300).fit(X, y)
    assert len(loopml.search_runs(settings=settings).runs) == before


def test_creating_a_model_twice_is_refused_on_every_database(backend_settings: Settings) -> None:
    from loopml.errors import AlreadyExistsError

    svc = models.get_registry(backend_settings)
    svc.create_model("twice")
    with pytest.raises(AlreadyExistsError, match="'twice' is already registered"):
        svc.create_model("twice")
    assert svc.create_model("twice", exist_ok=True).name == "twice"
