"""Batch scoring of parquet and CSV files with registry models: real files, real models, real worker processes."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

from loopml import registry
from loopml.config import Settings
from loopml.errors import InvalidInputError, NotFoundError, SignatureMismatchError
from loopml.serving.batch import BatchResult, score_file

CANCER_X, CANCER_Y = load_breast_cancer(return_X_y=True, as_frame=True)


@functools.cache
def cancer_model() -> LogisticRegression:
    return LogisticRegression(max_iter=5000).fit(CANCER_X, CANCER_Y)


@pytest.fixture
def cancer(settings: Settings) -> LogisticRegression:
    """``models:/cancer/1`` (alias ``champion``): a logistic regression on the 569 breast-cancer rows."""
    model = cancer_model()
    registry.register(model, "cancer", input_example=CANCER_X.head(), settings=settings)
    registry.set_alias("cancer", "champion", 1, settings=settings)
    return model


@pytest.fixture
def iris(settings: Settings) -> tuple[RandomForestClassifier, pd.DataFrame]:
    """``models:/iris/1``: a random forest predicting species names (strings)."""
    data = load_iris(as_frame=True)
    X = data.data
    y = data.target.map(dict(enumerate(data.target_names)))
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    registry.register(model, "iris", input_example=X.head(), settings=settings)
    return model, X


def score(settings: Settings, src: Path, dst: Path, **kw: Any) -> BatchResult:
    kw.setdefault("model_uri", "models:/cancer/1")
    return score_file(src=src, dst=dst, settings=settings, **kw)


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def leftovers(folder: Path) -> list[str]:
    """Temporary outputs left next to the destination (there must be none)."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and (".tmp" in p.name or ".old" in p.name)]


# -- results ---------------------------------------------------------------------


def test_parquet_to_parquet_matches_predict_on_the_whole_frame(settings: Settings, cancer: LogisticRegression,
                                                               tmp_path: Path) -> None:
    src, dst = tmp_path / "in.parquet", tmp_path / "scores.parquet"
    CANCER_X.to_parquet(src, row_group_size=100)
    result = score(settings, src, dst, executor="local", chunk_rows=64)
    out = read(dst)
    assert list(out.columns) == ["row_id", "prediction"] == list(result.columns)
    assert out["row_id"].tolist() == list(range(len(CANCER_X)))
    np.testing.assert_array_equal(out["prediction"], cancer.predict(CANCER_X))
    assert (result.rows, result.chunks, result.output, result.model_uri) == (569, 9, dst, "models:/cancer/1")
    assert result.executor == "local" and result.seconds > 0 and result.rows_per_second > 0


@pytest.mark.parametrize(("src_name", "dst_name"), [("in.csv", "scores.csv"), ("in.csv", "scores.parquet"),
                                                    ("in.parquet", "scores.csv")])
def test_processes_keep_the_input_order_across_workers(settings: Settings, cancer: LogisticRegression,
                                                       tmp_path: Path, src_name: str, dst_name: str) -> None:
    src, dst = tmp_path / src_name, tmp_path / dst_name
    if src.suffix == ".csv":
        CANCER_X.to_csv(src, index=False)
    else:
        CANCER_X.to_parquet(src, row_group_size=50)
    seen: list[tuple[int, int]] = []
    result = score(settings, src, dst, executor="processes", workers=2, chunk_rows=13,
                   progress=lambda done, total: seen.append((done, total)))
    out = read(dst)
    assert out["row_id"].tolist() == list(range(569))
    np.testing.assert_array_equal(out["prediction"], cancer.predict(CANCER_X))
    assert result.chunks == math.ceil(569 / 13)
    # progress: after every chunk, rows only grow, and the last report is exact
    assert len(seen) == result.chunks + 1
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (569, 569)
    if src.suffix == ".parquet":
        assert all(total == 569 for _, total in seen)  # from the parquet footer
    else:
        assert all(total >= done > 0 for done, total in seen)  # estimated from the file size
    assert leftovers(tmp_path) == []


def test_id_column_is_kept_and_not_given_to_the_model(settings: Settings, cancer: LogisticRegression,
                                                      tmp_path: Path) -> None:
    df = CANCER_X.copy()
    df.insert(0, "patient", [f"p{i:04d}" for i in range(len(df))])
    df = df.sample(frac=1.0, random_state=1).reset_index(drop=True)  # ids in no particular order
    src, dst = tmp_path / "in.csv", tmp_path / "scores.parquet"
    df.to_csv(src, index=False)
    score(settings, src, dst, id_column="patient", workers=2, chunk_rows=50)
    out = read(dst)
    assert list(out.columns) == ["patient", "prediction"]
    assert out["patient"].tolist() == df["patient"].tolist()
    np.testing.assert_array_equal(out["prediction"], cancer.predict(df.drop(columns="patient")))


def test_alias_is_resolved_to_its_version(settings: Settings, cancer: LogisticRegression, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    CANCER_X.head(10).to_parquet(src)
    result = score(settings, src, tmp_path / "out.parquet", model_uri="models:/cancer@champion", executor="local")
    assert result.model_uri == "models:/cancer/1"


def test_proba_columns_are_named_after_the_classes(settings: Settings, iris: tuple[RandomForestClassifier, pd.DataFrame],
                                                   tmp_path: Path) -> None:
    model, X = iris
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    X.to_parquet(src)
    result = score(settings, src, dst, model_uri="models:/iris/1", proba=True, output_column="species",
                   workers=2, chunk_rows=40)
    out = read(dst)
    assert list(out.columns) == ["row_id", "species", "proba_setosa", "proba_versicolor", "proba_virginica"]
    assert out["species"].tolist() == model.predict(X).tolist()
    np.testing.assert_allclose(out[["proba_setosa", "proba_versicolor", "proba_virginica"]], model.predict_proba(X))
    assert result.columns == tuple(out.columns)


def test_a_folder_of_parquet_files_is_read_in_path_order(settings: Settings, cancer: LogisticRegression,
                                                         tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    CANCER_X.iloc[:300].to_parquet(folder / "part-0.parquet")
    CANCER_X.iloc[300:].to_parquet(folder / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")
    score(settings, folder, tmp_path / "out.parquet", workers=2, chunk_rows=128)
    out = read(tmp_path / "out.parquet")
    assert out["row_id"].tolist() == list(range(569))
    np.testing.assert_array_equal(out["prediction"], cancer.predict(CANCER_X))


class LoadRecorder:
    """A model that appends its process id to a file each time it is unpickled (= loaded)."""

    def __init__(self, log: str) -> None:
        self.log = log

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return df["x"].to_numpy() * 2


def test_each_worker_loads_the_model_once(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "loads.txt"
    frame = pd.DataFrame({"x": np.arange(1000, dtype=float)})
    registry.register(LoadRecorder(str(log)), "recorder", input_example=frame.head(), settings=settings)
    log.unlink(missing_ok=True)
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    frame.to_parquet(src)
    result = score(settings, src, dst, model_uri="models:/recorder/1", workers=2, chunk_rows=50)
    assert result.chunks == 20
    loads = log.read_text().split()
    assert 1 <= len(loads) <= 2 and len(set(loads)) == len(loads)  # once per worker process
    assert str(os.getpid()) not in loads  # loaded by the workers, not here
    np.testing.assert_array_equal(read(dst)["prediction"], frame["x"] * 2)


# -- empty input -----------------------------------------------------------------


def test_empty_inputs_give_an_empty_output_with_the_columns(settings: Settings, iris: tuple[Any, pd.DataFrame],
                                                            tmp_path: Path) -> None:
    _, X = iris
    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join(X.columns) + "\n")
    result = score(settings, header_only, tmp_path / "out.csv", model_uri="models:/iris/1")
    assert result.rows == 0 and result.chunks == 0
    assert (tmp_path / "out.csv").read_text().strip() == '"row_id","prediction"'

    no_rows = tmp_path / "empty.parquet"
    X.head(0).to_parquet(no_rows)
    result = score(settings, no_rows, tmp_path / "out.parquet", model_uri="models:/iris/1", proba=True)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 0
    assert table.schema.names == ["row_id", "prediction", "proba_setosa", "proba_versicolor", "proba_virginica"]
    assert table.schema.field("prediction").type == pa.string()


# -- failures ----------------------------------------------------------------------


def test_a_bad_value_in_the_middle_of_a_csv_names_its_row_and_leaves_no_output(
        settings: Settings, cancer: LogisticRegression, tmp_path: Path) -> None:
    df = pd.concat([CANCER_X] * 4, ignore_index=True).astype(object)
    df.loc[1234, "mean area"] = "n/a?"
    src, dst = tmp_path / "in.csv", tmp_path / "scores.csv"
    df.to_csv(src, index=False)
    dst.write_text("yesterday's scores\n")
    with pytest.raises(SignatureMismatchError) as info:
        score(settings, src, dst, workers=2, chunk_rows=200)
    message = str(info.value)
    assert "chunk of in.csv starting at row 1200" in message
    assert "'mean area' has the value 'n/a?' at row 1234 (line 1236 of the file)" in message
    assert "models:/cancer/1" in message
    assert info.value.details["first_row"] == 1200 and info.value.details["row"] == 1234
    assert dst.read_text() == "yesterday's scores\n"  # the previous output is untouched
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_a_chunk_that_does_not_fit_the_signature_stops_the_job(settings: Settings, cancer: LogisticRegression,
                                                                tmp_path: Path, executor: str) -> None:
    df = CANCER_X.copy()
    df["mean radius"] = df["mean radius"].astype(str)  # a string column where the model wants floats
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    df.drop(columns="worst area").to_parquet(src)
    with pytest.raises(SignatureMismatchError) as info:
        score(settings, src, dst, executor=executor, workers=2, chunk_rows=100)
    assert str(info.value).startswith("rows 0-99 of in.parquet: input does not match the signature of models:/cancer/1")
    assert sorted(info.value.problems) == ["column 'mean radius' has type string (str), expected float",
                                           "missing column 'worst area' (expected float)"]
    assert not dst.exists() and leftovers(tmp_path) == []


class Picky:
    """A model that refuses negative inputs (which its signature allows)."""

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        if (df["x"] < 0).any():
            raise ValueError("x must not be negative")
        return df["x"].to_numpy()


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_a_model_error_names_the_chunk(settings: Settings, tmp_path: Path, executor: str) -> None:
    frame = pd.DataFrame({"x": np.arange(500, dtype=float)})
    registry.register(Picky(), "picky", input_example=frame.head(), settings=settings)
    frame.loc[420, "x"] = -1.0
    src = tmp_path / "in.parquet"
    frame.to_parquet(src)
    with pytest.raises(InvalidInputError, match=r"^rows 400-499 of in.parquet: models:/picky/1 failed to predict "
                                                r"\(ValueError: x must not be negative\)$"):
        score(settings, src, tmp_path / "out.parquet", model_uri="models:/picky/1", executor=executor, workers=2,
              chunk_rows=100)
    assert not (tmp_path / "out.parquet").exists()


def test_unknown_models_are_not_found(settings: Settings, cancer: LogisticRegression, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    CANCER_X.head().to_parquet(src)
    for uri in ("models:/nope/1", "models:/cancer/7", "models:/cancer@nobody"):
        with pytest.raises(NotFoundError):
            score(settings, src, tmp_path / "out.parquet", model_uri=uri)
    assert not (tmp_path / "out.parquet").exists()


def test_a_missing_id_column_names_the_columns_that_exist(settings: Settings, iris: tuple[Any, pd.DataFrame],
                                                          tmp_path: Path) -> None:
    _, X = iris
    src = tmp_path / "in.csv"
    X.to_csv(src, index=False)
    with pytest.raises(InvalidInputError) as info:
        score(settings, src, tmp_path / "out.csv", model_uri="models:/iris/1", id_column="flower_id")
    assert "'flower_id' is not in" in str(info.value)
    assert "sepal length (cm), sepal width (cm), petal length (cm), petal width (cm)" in str(info.value)


def test_proba_needs_predict_proba(settings: Settings, tmp_path: Path) -> None:
    registry.register(LinearRegression().fit(CANCER_X, CANCER_Y), "linear", input_example=CANCER_X.head(),
                      settings=settings)
    src = tmp_path / "in.parquet"
    CANCER_X.to_parquet(src)
    for executor in ("local", "processes"):
        with pytest.raises(InvalidInputError, match="has no predict_proba"):
            score(settings, src, tmp_path / "out.parquet", model_uri="models:/linear/1", proba=True,
                  executor=executor)
    assert not (tmp_path / "out.parquet").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(("src_name", "dst_name", "kw", "expected"), [
    ("missing.parquet", "out.parquet", {}, "does not exist"),
    ("in.json", "out.parquet", {}, "cannot tell the format of"),
    ("in.parquet", "out.json", {}, "cannot tell the output format"),
    ("in.parquet", "in.parquet", {}, "would overwrite the input"),
    ("in.parquet", "out.parquet", {"executor": "threads"}, "unknown executor 'threads'"),
    ("in.parquet", "out.parquet", {"chunk_rows": 0}, "chunk_rows must be a positive integer"),
    ("in.parquet", "out.parquet", {"output_column": "row_id"}, "is the name of the id column"),
    ("in.parquet", "out.csv", {"executor": "ray"}, "executor='ray' writes a folder of parquet part files"),
])
def test_invalid_requests(settings: Settings, cancer: LogisticRegression, tmp_path: Path, src_name: str,
                          dst_name: str, kw: dict[str, Any], expected: str) -> None:
    CANCER_X.head().to_parquet(tmp_path / "in.parquet")
    (tmp_path / "in.json").write_text("{}")
    with pytest.raises(InvalidInputError, match=expected):
        score(settings, tmp_path / src_name, tmp_path / dst_name, **kw)


# -- Ray -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray with 2 CPUs for this module's Ray tests, shut down at the module's end."""
    ray = pytest.importorskip("ray", reason="executor='ray' needs the ray extra")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.integration
@pytest.mark.xdist_group("ray")
def test_ray_writes_part_files_in_input_order(local_ray: Any, settings: Settings,
                                              iris: tuple[RandomForestClassifier, pd.DataFrame],
                                              tmp_path: Path) -> None:
    model, X = iris
    big = pd.concat([X] * 10, ignore_index=True)
    src, dst = tmp_path / "in.parquet", tmp_path / "scores.parquet"
    big.to_parquet(src, row_group_size=100)
    dst.mkdir()
    (dst / "part-00099.parquet").write_bytes(b"an earlier output, replaced")
    seen: list[tuple[int, int]] = []
    # 3 actors on 2 CPUs share them
    result = score(settings, src, dst, model_uri="models:/iris/1", executor="ray", workers=3, chunk_rows=300,
                   proba=True, progress=lambda done, total: seen.append((done, total)))
    parts = sorted(p.name for p in dst.iterdir())
    assert parts == [f"part-{i:05d}.parquet" for i in range(5)]  # 1,500 rows in items of >= 300 rows
    out = pd.concat([pd.read_parquet(dst / p) for p in parts], ignore_index=True)
    assert out["row_id"].tolist() == list(range(1500))
    assert out["prediction"].tolist() == model.predict(big).tolist()
    np.testing.assert_allclose(out[["proba_setosa", "proba_versicolor", "proba_virginica"]], model.predict_proba(big))
    assert (result.rows, result.chunks, result.output, result.executor) == (1500, 5, dst, "ray")
    assert seen[-1] == (1500, 1500) and all(total == 1500 for _, total in seen)
    assert leftovers(tmp_path) == []


@pytest.mark.integration
@pytest.mark.xdist_group("ray")
def test_ray_csv_with_an_id_column_and_a_bad_row(local_ray: Any, settings: Settings, cancer: LogisticRegression,
                                                 tmp_path: Path) -> None:
    df = CANCER_X.copy()
    df.insert(0, "patient", [f"p{i:04d}" for i in range(len(df))])
    src, dst = tmp_path / "in.csv", tmp_path / "scores"
    df.to_csv(src, index=False)
    score(settings, src, dst, id_column="patient", executor="ray", chunk_rows=100)
    out = pd.read_parquet(dst)
    assert list(out.columns) == ["patient", "prediction"]
    assert out["patient"].tolist() == df["patient"].tolist()
    np.testing.assert_array_equal(out["prediction"], cancer.predict(CANCER_X))

    bad = df.astype(object)
    bad.loc[333, "worst radius"] = "thirty"
    bad.to_csv(src, index=False)
    with pytest.raises(SignatureMismatchError, match=r"starting at row 300: .* 'worst radius' has the value 'thirty' "
                                                     r"at row 333 \(line 335 of the file\)"):
        score(settings, src, tmp_path / "bad", id_column="patient", executor="ray", chunk_rows=100)
    assert not (tmp_path / "bad").exists() and leftovers(tmp_path) == []

    src.write_text(",".join(df.columns) + "\n")  # no rows: one part file with the columns
    result = score(settings, src, tmp_path / "empty", id_column="patient", executor="ray")
    assert result.rows == 0 and [p.name for p in (tmp_path / "empty").iterdir()] == ["part-00000.parquet"]
    assert pq.read_table(tmp_path / "empty").schema.names == ["patient", "prediction"]
