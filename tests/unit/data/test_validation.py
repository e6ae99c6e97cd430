"""Validating batches and records: every anomaly kind, found with the right column, count and examples."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn_frames import LOADERS, sklearn_frame

import loopml.data.validation as validate_module
from loopml.data.models import Anomaly
from loopml.data.profile import profile_table
from loopml.data.schema import ColumnSchema, Schema, infer_schema
from loopml.data.validation import has_errors, validate, validate_record, validate_records
from loopml.errors import InvalidInputError


def frame(name: str) -> pd.DataFrame:
    df = sklearn_frame(name)
    if name == "wine":
        df["cls"] = df["target"].map(lambda i: f"class_{i}")
    return df


_SCHEMAS: dict[str, Schema] = {}


def schema_for(name: str) -> Schema:
    """A fresh copy of the schema inferred from the clean dataset (profiling once per name)."""
    if name not in _SCHEMAS:
        _SCHEMAS[name] = infer_schema(profile_table(frame(name)))
    s = _SCHEMAS[name]
    return Schema(columns=dict(s.columns), row_count=s.row_count, allow_extra_columns=s.allow_extra_columns)


def only(anomalies: list[Anomaly], kind: str) -> list[Anomaly]:
    return [a for a in anomalies if a.kind == kind]


def key(a: Anomaly) -> tuple[Any, ...]:
    return (a.column, a.kind, a.severity, a.rows, a.examples)


# -- clean data ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_clean_data_has_no_anomalies(name):
    df = frame(name)
    schema = schema_for(name)
    assert validate(df, schema) == []
    table = pa.Table.from_pandas(df, preserve_index=False)
    assert validate(table, schema) == []
    assert validate(table.to_batches()[0], schema) == []
    assert validate(pa.concat_tables([table.slice(0, 7), table.slice(7)]), schema) == []  # several chunks
    assert validate_records(df.to_dict("records"), schema) == []
    assert not has_errors([])


# -- injected anomalies --------------------------------------------------------------


def test_out_of_range():
    df = frame("breast_cancer")
    schema = schema_for("breast_cancer")
    hi = schema.columns["mean radius"].max
    lo = schema.columns["worst area"].min
    assert hi is not None and lo is not None
    df.loc[[3, 50, 400], "mean radius"] = [hi + 1, hi + 2, -1.0]
    df.loc[[7], "worst area"] = [lo - 0.5]
    found = validate(df, schema)
    assert [key(a) for a in found] == [
        ("mean radius", "out_of_range", "error", 3, [hi + 1, hi + 2, -1.0]),
        ("worst area", "out_of_range", "error", 1, [lo - 0.5]),
    ]
    assert "outside" in found[0].message and "mean radius" in found[0].message
    assert has_errors(found)
    assert [key(a) for a in validate(df, schema, max_examples=2)][0][4] == [hi + 1, hi + 2]


def test_unseen_category_and_severity_override():
    df = frame("wine")
    schema = schema_for("wine")
    df.loc[[5, 6, 100, 101], "cls"] = ["class_9", "class_9", "grape", "class_9"]
    found = validate(df, schema)
    assert [key(a) for a in found] == [("cls", "unseen_category", "error", 4, ["class_9", "grape"])]
    schema.columns["cls"] = dataclasses.replace(schema.columns["cls"], severity={"unseen_category": "warning"})
    found = validate(df, schema)
    assert [key(a) for a in found] == [("cls", "unseen_category", "warning", 4, ["class_9", "grape"])]
    assert not has_errors(found)


def test_categories_on_dictionary_and_integer_columns():
    df = frame("wine")
    schema = schema_for("wine")
    schema.columns["target"] = dataclasses.replace(schema.columns["target"], categories=[0, 1, 2])
    df["cls"] = df["cls"].astype("category")  # Arrow dictionary
    assert validate(df, schema) == []
    df["cls"] = df["cls"].cat.add_categories(["unused"])  # in the dictionary, not in the data: fine
    assert validate(df, schema) == []
    df.loc[[0, 9], "cls"] = "unused"
    df.loc[[1], "target"] = 2
    assert [key(a) for a in validate(df, schema)] == [("cls", "unseen_category", "error", 2, ["unused"])]
    small = pa.table({"target": pa.array([0, 1, 7, 7], pa.int8())})
    schema.columns["target"] = dataclasses.replace(schema.columns["target"], categories=[0, 1, 2, 1000], max=None)
    anomalies = validate(small, Schema(columns={"target": schema.columns["target"]}))
    assert [key(a) for a in anomalies] == [("target", "unseen_category", "error", 2, [7])]


def test_nulls_in_a_non_nullable_column():
    df = frame("diabetes")
    schema = schema_for("diabetes")
    df.loc[[2, 30, 31, 200, 300, 301, 400], "bmi"] = np.nan
    found = validate(df, schema, max_examples=5)
    assert [key(a) for a in found] == [("bmi", "null_rate", "error", 7, [2, 30, 31, 200, 300])]
    assert "not nullable" in found[0].message
    # NaN (not null) inside an Arrow float column counts the same
    table = pa.table({"bmi": pa.array([0.01, math.nan, None, 0.02])})
    only_bmi = Schema(columns={"bmi": schema.columns["bmi"]})
    assert [key(a) for a in validate(table, only_bmi)] == [("bmi", "null_rate", "error", 2, [1, 2])]


def test_null_rate_above_the_baseline_is_a_warning():
    df = frame("diabetes")
    df.loc[df.index[:10], "s1"] = np.nan  # 10 of 442 = 2.3% missing in the reference
    schema = infer_schema(profile_table(df))
    assert schema.columns["s1"].nullable and schema.columns["s1"].max_null_rate == pytest.approx(10 / 442 * 1.5)
    assert validate(df, schema) == []
    df.loc[df.index[:40], "s1"] = np.nan
    found = validate(df, schema)
    assert [key(a) for a in found] == [("s1", "null_rate", "warning", 40, [0, 1, 2, 3, 4])]
    assert not has_errors(found)


def test_dropped_columns():
    df = frame("digits")
    schema = schema_for("digits")
    found = validate(df.drop(columns=["pixel_0_3", "target"]), schema)
    assert [key(a) for a in found] == [
        ("pixel_0_3", "missing_column", "error", len(df), []),
        ("target", "missing_column", "error", len(df), []),
    ]


def test_shuffled_types_float_column_as_strings():
    df = frame("breast_cancer")
    schema = schema_for("breast_cancer")
    df["mean texture"] = df["mean texture"].astype(str)
    found = validate(df, schema)
    assert [key(a) for a in found] == [
        ("mean texture", "type_mismatch", "error", len(df), df["mean texture"].head(5).tolist()),
    ]
    assert "double" in found[0].message and "large_string" in found[0].message


def test_mixed_types_in_an_object_column():
    df = frame("wine")
    schema = schema_for("wine")
    values = df["alcohol"].astype(object)
    values[[4, 8]] = ["n/a", "13.2"]
    df["alcohol"] = values
    found = validate(df, schema)
    assert [key(a) for a in found] == [("alcohol", "type_mismatch", "error", 2, ["n/a", "13.2"])]
    # the rest of the column is still checked value by value
    values[[10]] = [1000.0]
    df["alcohol"] = values
    assert [key(a) for a in validate(df, schema)] == [
        ("alcohol", "type_mismatch", "error", 2, ["n/a", "13.2"]),
        ("alcohol", "out_of_range", "error", 1, [1000.0]),
    ]


def test_type_compatibility():
    schema = Schema(columns={
        "i": ColumnSchema("i", "int64", "numeric", nullable=True),
        "f": ColumnSchema("f", "double", "numeric", nullable=False),
        "s": ColumnSchema("s", "string", "string"),
        "t": ColumnSchema("t", "timestamp[us]", "datetime"),
    })
    ok = pa.table({
        "i": pa.array([1.0, None, 3.0]),  # integral floats (pandas int column with a missing value)
        "f": pa.array([1, 2, 3], pa.int32()),  # ints into a float column
        "s": pa.array(["a", "b", "a"]).dictionary_encode(),
        "t": pa.array([1, 2, 3], pa.timestamp("ns")),
    })
    assert validate(ok, schema) == []
    bad = pa.table({
        "i": pa.array([1.5, 2.0, math.inf]),
        "f": pa.array([True, False, True]),
        "s": pa.array([1, 2, 3]),
        "t": pa.array([1, 2, 3], pa.timestamp("us", tz="UTC")),
    })
    found = validate(bad, schema)
    assert [(a.column, a.kind, a.rows) for a in found] == [
        ("i", "type_mismatch", 2), ("f", "type_mismatch", 3), ("s", "type_mismatch", 3), ("t", "type_mismatch", 3),
    ]
    assert found[0].examples == [1.5, math.inf]
    # an all-null column fits any type; its nulls are then checked
    nulls = pa.table({"f": pa.nulls(3), "i": pa.nulls(3), "s": ["a"] * 3, "t": pa.array([1] * 3, pa.timestamp("s"))})
    assert [key(a) for a in validate(nulls, schema)] == [("f", "null_rate", "error", 3, [0, 1, 2])]


def test_extra_column_is_a_warning_unless_allowed():
    df = frame("wine")
    schema = schema_for("wine")
    df["debug"] = 1
    found = validate(df, schema)
    assert [key(a) for a in found] == [("debug", "unexpected_column", "warning", 0, [])]
    assert not has_errors(found)
    schema.allow_extra_columns = True
    assert validate(df, schema) == []


def test_row_count_out_of_range():
    df = frame("breast_cancer")
    schema = schema_for("breast_cancer")
    found = validate(df.head(10), schema)
    assert [key(a) for a in found] == [(None, "row_count", "warning", 0, [])]
    assert "10 rows" in found[0].message
    assert [a.kind for a in validate(pd.concat([df] * 2), schema)] == ["row_count"]
    assert validate(df.head(300), schema) == []


def test_a_completely_different_table():
    schema = schema_for("wine")
    other = frame("digits").head(150).drop(columns=["target"])
    found = validate(other, schema)
    assert [(a.column, a.kind) for a in found[:len(schema.columns)]] == [
        (name, "missing_column") for name in schema.columns
    ]
    assert [a.column for a in found[len(schema.columns):]] == list(other.columns)
    assert {a.kind for a in found[len(schema.columns):]} == {"unexpected_column"}
    assert validate(pa.table({}), schema)[0].kind == "row_count"  # no columns, no rows: still no exception


# -- custom checks -------------------------------------------------------------------


def test_custom_check_failures():
    df = frame("wine")
    schema = schema_for("wine")
    df.loc[[3, 4], "alcohol"] = [11.5, 11.6]

    @schema.check("strong", column="alcohol", severity="warning")
    def strong(t: pa.Table) -> pa.ChunkedArray:
        return pc.greater(t["alcohol"], 11.7)

    schema.add_check("ash_ratio", lambda t: (t["ash"].to_numpy() < 3.0))  # numpy mask, no column: row indices
    schema.add_check("enough_rows", lambda t: t.num_rows > 1000)  # one bool for the batch
    schema.add_check("passes", lambda t: pc.greater(t["alcohol"], 0))
    found = validate(df, schema)
    low_alcohol = df.index[df["alcohol"] <= 11.7].tolist()
    high_ash = df.index[df["ash"] >= 3.0].tolist()
    assert [key(a) for a in found] == [
        ("alcohol", "custom_check", "warning", len(low_alcohol), df.loc[low_alcohol[:5], "alcohol"].tolist()),
        (None, "custom_check", "error", len(high_ash), high_ash[:5]),
        (None, "custom_check", "error", 0, []),
    ]
    assert "'strong'" in found[0].message and "'enough_rows'" in found[2].message


def test_custom_check_that_raises_or_returns_junk_is_reported_not_raised():
    df = frame("wine")
    schema = schema_for("wine")

    def broken(t: pa.Table) -> bool:
        raise ZeroDivisionError("division by zero in my check")

    schema.add_check("broken", broken, column="alcohol")
    schema.add_check("junk", lambda t: "yes")
    schema.add_check("short", lambda t: np.ones(3, dtype=bool))
    schema.add_check("missing", lambda t: pc.greater(t["no_such_column"], 0))
    found = validate(df, schema)
    assert [(a.column, a.kind, a.severity, a.rows) for a in found] == [
        ("alcohol", "custom_check", "error", 0), (None, "custom_check", "error", 0),
        (None, "custom_check", "error", 0), (None, "custom_check", "error", 0),
    ]
    assert "ZeroDivisionError" in found[0].message and "division by zero in my check" in found[0].message
    assert "boolean mask" in found[1].message and "boolean mask" in found[2].message
    assert "no_such_column" in found[3].message


def test_null_in_a_check_mask_counts_as_good():
    schema = Schema(columns={"w": ColumnSchema("w", "double", "numeric")})
    schema.add_check("positive", lambda t: pc.greater(t["w"], 0), column="w")
    table = pa.table({"w": [1.0, None, -2.0]})
    assert [key(a) for a in validate(table, schema)] == [("w", "custom_check", "error", 1, [-2.0])]
    assert [key(a) for a in validate_records([{"w": 1.0}, {"w": None}, {"w": -2.0}], schema)] == [
        ("w", "custom_check", "error", 1, [-2.0]),
    ]


# -- inputs, chunks, threads, cache ----------------------------------------------------


def test_bad_inputs():
    schema = schema_for("wine")
    with pytest.raises(InvalidInputError, match="validate_record"):
        validate([{"a": 1}], schema)
    with pytest.raises(InvalidInputError):
        validate(frame("wine"), schema, max_examples=-1)
    with pytest.raises(InvalidInputError, match="mapping"):
        validate_records([[1, 2]], schema)  # type: ignore[list-item]


def test_violations_across_chunks_give_global_row_indices():
    schema = Schema(columns={"x": ColumnSchema("x", "double", "numeric", nullable=False, min=0.0, max=1.0)})
    table = pa.Table.from_batches([
        pa.record_batch({"x": pa.array([0.5, None, 0.2])}),
        pa.record_batch({"x": pa.array([2.0, 0.1, None])}),
    ])
    assert [key(a) for a in validate(table, schema)] == [
        ("x", "null_rate", "error", 2, [1, 5]),
        ("x", "out_of_range", "error", 1, [2.0]),
    ]


def test_parallel_and_sequential_paths_agree(monkeypatch):
    rng = np.random.default_rng(1)
    n = 20_000
    df = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(6)})
    df["c"] = rng.choice(["a", "b", "c"], n)
    schema = infer_schema(profile_table(df))
    df.loc[[5, 17, 19_000], "f2"] = [50.0, np.nan, -50.0]
    df.loc[[3], "c"] = "zzz"
    monkeypatch.setattr(validate_module, "_PARALLEL_CELLS", 1)
    parallel = validate(df, schema)
    monkeypatch.setattr(validate_module, "_PARALLEL_CELLS", 10**12)
    sequential = validate(df, schema)
    assert parallel == sequential
    assert [(a.column, a.kind, a.rows) for a in parallel] == [
        ("f2", "null_rate", 1), ("f2", "out_of_range", 2), ("c", "unseen_category", 1),
    ]


def test_replaced_columns_are_picked_up():
    df = frame("wine")
    schema = schema_for("wine")
    assert validate(df, schema) == []
    schema.columns["alcohol"] = dataclasses.replace(schema.columns["alcohol"], max=12.0)
    assert [a.kind for a in validate(df, schema)] == ["out_of_range"]
    assert [a.kind for a in validate_record(df.iloc[0].to_dict(), schema)] == ["out_of_range"]  # alcohol 14.23
    del schema.columns["alcohol"]
    assert validate(df, schema)[0].kind == "unexpected_column"


# -- record path -----------------------------------------------------------------------


def test_validate_records_counts_over_records():
    schema = schema_for("wine")
    rows = frame("wine").head(4).to_dict("records")
    rows[1]["alcohol"] = None
    rows[2]["alcohol"] = 99.0
    rows[3]["cls"] = "class_7"
    del rows[3]["ash"]
    rows[0]["extra"] = 1
    found = validate_records(rows, schema)
    assert [key(a) for a in found] == [
        ("alcohol", "null_rate", "error", 1, [1]),
        ("alcohol", "out_of_range", "error", 1, [99.0]),
        ("ash", "null_rate", "error", 1, [3]),
        ("cls", "unseen_category", "error", 1, ["class_7"]),
        ("extra", "unexpected_column", "warning", 0, []),
    ]
    assert validate_records([], schema) == []


def test_validate_record_skips_batch_statistics():
    df = frame("diabetes")
    df.loc[df.index[:10], "s1"] = np.nan
    schema = infer_schema(profile_table(df))
    record = df.iloc[0].to_dict()  # s1 is NaN: fine for a nullable column, whatever max_null_rate says
    assert validate_record(record, schema) == []
    assert [a.kind for a in validate(pd.DataFrame([record]), schema)] == ["row_count", "null_rate"]


def corrupt(record: dict[str, Any], schema: Schema, rng: random.Random) -> dict[str, Any]:
    """Apply a random mix of faults to a record."""
    record = dict(record)
    names = list(schema.columns)
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        name = rng.choice(names)
        cs = schema.columns[name]
        fault = rng.choice(["high", "low", "none", "nan", "string", "drop", "extra", "bool", "float", "category"])
        if fault == "high" and cs.max is not None:
            record[name] = cs.max + rng.choice([0.5, 10.0])
        elif fault == "low" and cs.min is not None:
            record[name] = cs.min - rng.choice([0.5, 10.0])
        elif fault == "none":
            record[name] = None
        elif fault == "nan" and cs.type == "double":
            record[name] = math.nan
        elif fault == "string":
            record[name] = f"text-{rng.randint(0, 9)}"
        elif fault == "drop":
            record.pop(name, None)
        elif fault == "extra":
            record[f"extra_{rng.randint(0, 3)}"] = rng.random()
        elif fault == "bool":
            record[name] = rng.random() < 0.5
        elif fault == "float" and cs.type == "int64":
            record[name] = rng.choice([1.0, 1.5])
        elif fault == "category" and cs.categories is not None:
            record[name] = rng.choice(["class_0", "unseen", "class_9"])
    return record


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_validate_record_agrees_with_validate_on_single_rows(name):
    df = frame(name)
    schema = schema_for(name)
    # NaN-proof (from_pylist keeps NaN, pandas makes it null): fails only for strings, which raise
    first = df.columns[0]
    schema.add_check("first_not_tiny", lambda t: pc.invert(pc.less(t[first], -1e9)), column=first)
    rng = random.Random(hash(name) % 1000)
    n_faulty = 0
    for i in rng.sample(range(len(df)), 150):
        record = corrupt(df.iloc[i].to_dict(), schema, rng)
        fast = validate_record(record, schema)
        as_frame = [a for a in validate(pd.DataFrame([record]), schema) if a.kind != "row_count"]
        as_table = [a for a in validate(pa.Table.from_pylist([record]), schema) if a.kind != "row_count"]
        assert [key(a) for a in fast] == [key(a) for a in as_frame] == [key(a) for a in as_table], record
        n_faulty += bool(fast)
    assert n_faulty > 50  # the faults really happened


def test_validate_record_accepts_numpy_and_pandas_scalars():
    schema = Schema(columns={
        "f": ColumnSchema("f", "double", "numeric", nullable=False, min=0, max=1),
        "i": ColumnSchema("i", "int64", "numeric", nullable=True, categories=[1, 2]),
        "b": ColumnSchema("b", "bool", "boolean", categories=[True]),
    })
    assert validate_record({"f": np.float32(0.5), "i": np.int8(2), "b": np.bool_(True)}, schema) == []
    found = validate_record({"f": pd.NA, "i": pd.NA, "b": np.bool_(False)}, schema)
    assert [key(a) for a in found] == [("f", "null_rate", "error", 1, [0]), ("b", "unseen_category", "error", 1, [False])]
    assert [a.kind for a in validate_record({"f": True, "i": 1, "b": 1}, schema)] == ["type_mismatch"] * 2


def test_other_types_must_match_exactly():
    lists = pa.array([[1], None, [2, 3]])
    schema = Schema(columns={"l": ColumnSchema("l", str(lists.type), "other", nullable=False)})
    assert [key(a) for a in validate(pa.table({"l": lists}), schema)] == [("l", "null_rate", "error", 1, [1])]
    found = validate(pa.table({"l": pa.array([[1.5]])}), schema)
    assert [(a.kind, a.rows, a.examples) for a in found] == [("type_mismatch", 1, [[1.5]])]
    assert validate_record({"l": [1, 2]}, schema) == []
