"""Dataset versions: register, deduplicate, load by URI, aliases, lineage and bad input, on every backend."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

import loopml
from loopml import data, models
from loopml.config import Settings
from loopml.errors import (
    AliasNotFoundError,
    ArtifactCorruptedError,
    DatasetNotFoundError,
    InvalidInputError,
    InvalidUriError,
)


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return load_wine(as_frame=True).frame


def test_register_stores_a_snapshot_with_metadata_and_profile(backend_settings: Settings, wine: pd.DataFrame) -> None:
    dv = data.register("wine", wine, source="sklearn.load_wine", description="month 1", tags={"team": "ml"},
                       settings=backend_settings)
    assert (dv.name, dv.version, dv.num_rows) == ("wine", 1, len(wine))
    assert [c.name for c in dv.columns] == list(wine.columns)
    assert dv.columns[0].type == "double"
    assert dv.source == "sklearn.load_wine" and dv.description == "month 1" and dv.tags == {"team": "ml"}
    assert dv.created_by and dv.created_at > 0 and len(dv.sha256) == 64
    loaded = data.load("datasets:/wine", settings=backend_settings)
    pd.testing.assert_frame_equal(loaded, wine)
    profile = data.get_profile("datasets:/wine/1", settings=backend_settings)
    assert profile.num_rows == len(wine)
    assert profile.columns["alcohol"].max == pytest.approx(wine["alcohol"].max())


def test_identical_content_is_not_stored_twice(backend_settings: Settings, wine: pd.DataFrame, tmp_path: Path) -> None:
    v1 = data.register("wine", wine, settings=backend_settings)
    # the same rows, arriving in other chunks, give the same snapshot
    table = pa.Table.from_pandas(wine, preserve_index=False)
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=7))
    v_again = data.register("wine", chunked, settings=backend_settings)
    assert v_again.version == v1.version and v_again.sha256 == v1.sha256
    v2 = data.register("wine", wine.head(100), settings=backend_settings)
    assert v2.version == 2 and v2.sha256 != v1.sha256
    assert [v.version for v in data.list_versions("wine", settings=backend_settings)] == [1, 2]
    objects = list(data.get_data(backend_settings).backend.blobs.list("datasets/objects"))
    assert len(objects) == 2


def test_csv_and_parquet_paths_stream_in(backend_settings: Settings, tmp_path: Path) -> None:
    frame = load_diabetes(as_frame=True).frame
    csv = tmp_path / "diabetes.csv"
    frame.to_csv(csv, index=False)
    parquet = tmp_path / "diabetes.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet, row_group_size=50)
    from_csv = data.register("diabetes", csv, settings=backend_settings)
    assert from_csv.source == str(csv) and from_csv.num_rows == len(frame)
    from_parquet = data.register("diabetes-pq", parquet, settings=backend_settings)
    assert from_parquet.num_rows == len(frame)
    pd.testing.assert_frame_equal(data.load(from_parquet.uri, settings=backend_settings), frame)
    batches = list(data.iter_batches(from_csv.uri, settings=backend_settings))
    assert sum(b.num_rows for b in batches) == len(frame)


def test_uris_latest_number_and_alias(backend_settings: Settings, wine: pd.DataFrame) -> None:
    s = backend_settings
    data.register("wine", wine.head(50), settings=s)
    data.register("wine", wine.head(60), settings=s)
    assert data.resolve("datasets:/wine", settings=s).version == 2
    assert data.resolve("datasets:/wine/latest", settings=s).version == 2
    assert data.resolve("datasets:/wine/1", settings=s).num_rows == 50
    assert data.set_alias("wine", "training", 1, settings=s) is None
    assert data.resolve("datasets:/wine@training", settings=s).version == 1
    assert data.resolve("datasets:/wine/1", settings=s).aliases == ["training"]
    assert data.set_alias("wine", "training", 2, settings=s) == 1
    assert len(data.load("datasets:/wine@training", settings=s)) == 60
    data.delete_alias("wine", "training", settings=s)
    with pytest.raises(AliasNotFoundError, match="no alias 'training'"):
        data.resolve("datasets:/wine@training", settings=s)
    with pytest.raises(DatasetNotFoundError, match="no version 9"):
        data.resolve("datasets:/wine/9", settings=s)
    with pytest.raises(DatasetNotFoundError, match="'nope' is not registered"):
        data.resolve("datasets:/nope", settings=s)
    for bad in ["wine", "datasets:/", "datasets:/wine/0", "models:/wine/1", "datasets:/wine/x"]:
        with pytest.raises(InvalidUriError):
            data.resolve(bad, settings=s)
    with pytest.raises(DatasetNotFoundError):
        data.set_alias("wine", "training", 7, settings=s)
    with pytest.raises(InvalidInputError, match="alias"):
        data.set_alias("wine", "latest", 1, settings=s)


def test_runs_and_models_link_to_dataset_versions(backend_settings: Settings) -> None:
    from sklearn.linear_model import LogisticRegression

    s = backend_settings
    frame = load_breast_cancer(as_frame=True).frame
    dv = data.register("cancer", frame, settings=s)
    data.set_alias("cancer", "training", dv.version, settings=s)
    X, y = frame.drop(columns="target"), frame["target"]
    with loopml.start_run("cancer", settings=s) as run:
        ref = run.log_dataset("datasets:/cancer@training")
        mv = models.register(LogisticRegression(max_iter=3000).fit(X, y), "cancer", input_example=X.head())
    assert (ref.name, ref.digest, ref.path, ref.num_rows) == ("cancer", dv.sha256, "datasets:/cancer/1", len(frame))
    stored = loopml.get_run(run.id, settings=s).datasets
    assert [(d.path, d.digest) for d in stored] == [("datasets:/cancer/1", dv.sha256)]
    assert [d["path"] for d in mv.datasets] == ["datasets:/cancer/1"]
    # a DatasetVersion object works as well
    with loopml.start_run("cancer", settings=s) as run2:
        assert run2.log_dataset(dv, context="eval").path == dv.uri


def test_corrupted_snapshot_is_detected(settings: Settings, wine: pd.DataFrame) -> None:
    dv = data.register("wine", wine, settings=settings)
    path = Path(settings.artifact_root) / dv.artifact_key
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactCorruptedError, match="corrupted"):
        data.load(dv.uri, settings=settings)


def test_bad_input_gives_clear_errors_and_leaves_stored_data_alone(settings: Settings, tmp_path: Path, wine: pd.DataFrame) -> None:
    dv = data.register("wine", wine, settings=settings)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,c\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,city\nJosé,Málaga\n".encode("latin-1"))
    # types are inferred from the first block (8 MiB); a later value of another type is an error
    mixed = tmp_path / "mixed.csv"
    lines = ["x,y"] + [f"{i},{i * 2}" for i in range(900_000)] + ["oops,1"]
    mixed.write_text("\n".join(lines) + "\n")
    assert mixed.stat().st_size > 8 << 20
    cases = [
        (tmp_path / "missing.csv", "does not exist"),
        (empty, "empty"),
        (header_only, "no rows"),
        (latin, "not valid UTF-8"),
        (mixed, "column 'x' has values of more than one type"),
        (tmp_path / "data.xlsx", "does not exist"),
        (pd.DataFrame({"m": [1, "two", 3.0]}), "column 'm' mixes value types"),
        (pd.DataFrame(), "no columns"),
        (object(), "cannot read data of type object"),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            data.register("wine", bad, settings=settings)
    unknown = tmp_path / "data.xlsx"
    unknown.write_bytes(b"PK\x03\x04")
    with pytest.raises(InvalidInputError, match="cannot tell the format"):
        data.register("wine", unknown, settings=settings)
    with pytest.raises(InvalidInputError, match="dataset name"):
        data.register("bad/name", wine, settings=settings)
    # within one block a mixed column is read as text; the stated type gives numbers or an error
    small_mixed = tmp_path / "small.csv"
    small_mixed.write_text("x,y\n1,2\noops,3\n")
    assert data.register("small", small_mixed, settings=settings).columns[0].type == "string"
    # the encoding can be given, and then the file reads
    assert data.register("cities", latin, encoding="latin-1", settings=settings).num_rows == 1
    # nothing already stored changed
    assert [v.version for v in data.list_versions("wine", settings=settings)] == [1]
    pd.testing.assert_frame_equal(data.load(dv.uri, settings=settings), wine)


def test_list_datasets(settings: Settings, wine: pd.DataFrame) -> None:
    data.register("wine", wine, settings=settings)
    data.register("wine", wine.head(10), settings=settings)
    data.register("cancer", load_breast_cancer(as_frame=True).frame, settings=settings)
    listed = {d["name"]: (d["latest"], d["versions"]) for d in data.list_datasets(settings=settings)}
    assert listed == {"wine": (2, 2), "cancer": (1, 1)}
