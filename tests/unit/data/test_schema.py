"""Schema inference from profiles, the YAML file format and custom-check registration."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn_frames import LOADERS, sklearn_frame

from loopml.data.models import ColumnProfile, Profile
from loopml.data.profile import profile_table
from loopml.data.schema import ColumnSchema, Schema, infer_schema, type_family
from loopml.errors import ConfigError, InvalidInputError


def frame(name: str) -> pd.DataFrame:
    return sklearn_frame(name)


def wine_with_classes() -> pd.DataFrame:
    df = frame("wine")
    df["cls"] = df["target"].map(lambda i: f"class_{i}")
    return df


# -- inference ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_infer_schema_matches_the_data(name):
    df = frame(name)
    schema = infer_schema(profile_table(df))
    assert list(schema.columns) == list(df.columns)
    n = len(df)
    assert schema.row_count == (math.floor(n * 0.5), math.ceil(n * 1.5))
    for col in df.columns:
        cs = schema.columns[col]
        assert cs.name == col
        assert cs.type == str(pa.Array.from_pandas(df[col]).type)
        assert cs.kind == "numeric"
        assert cs.nullable is False and cs.max_null_rate is None
        assert cs.min == float(df[col].min()) and cs.max == float(df[col].max())
        assert cs.categories is None  # numeric: no domain


def test_infer_schema_categories_from_complete_top_values():
    df = wine_with_classes()
    df["flag"] = df["alcohol"] > 13
    schema = infer_schema(profile_table(df))
    assert schema.columns["cls"].kind == "string"
    assert schema.columns["cls"].categories == ("class_0", "class_1", "class_2")
    assert schema.columns["flag"].type == "bool"
    assert schema.columns["flag"].categories == (False, True)


def test_infer_schema_category_limit_and_incomplete_top():
    df = pd.DataFrame({"c": [f"v{i % 30}" for i in range(300)]})
    assert infer_schema(profile_table(df, top_k=50), category_limit=30).columns["c"].categories is not None
    assert infer_schema(profile_table(df, top_k=50), category_limit=29).columns["c"].categories is None
    # the profile keeps only 10 of the 30 values: the domain is unknown, so none is inferred
    assert infer_schema(profile_table(df, top_k=10)).columns["c"].categories is None


def test_infer_schema_null_baseline_margin_and_slack():
    values = np.arange(100, dtype=float)
    values[:10] = np.nan
    df = pd.DataFrame({"x": values})
    schema = infer_schema(profile_table(df), range_margin=0.1, row_count_slack=0.2)
    x = schema.columns["x"]
    assert x.nullable is True
    assert x.max_null_rate == pytest.approx(max(0.1 * 1.5, 0.1 + 0.01))
    assert (x.min, x.max) == pytest.approx((10 - 8.9, 99 + 8.9))
    assert schema.row_count == (80, 120)
    assert infer_schema(profile_table(df), row_count_slack=None).row_count == (None, None)
    assert infer_schema(profile_table(df), row_count_slack=2.0).row_count == (0, 300)


def test_infer_schema_from_a_hand_built_profile():
    profile = Profile(num_rows=10, columns={
        "n": ColumnProfile("n", "int64", "numeric", count=9, nulls=1, min=np.int64(3), max=np.int64(7)),
        "when": ColumnProfile("when", "timestamp[us]", "datetime", count=10, nulls=0,
                              min="2024-01-01T00:00:00", max="2024-02-01T00:00:00"),
        "c": ColumnProfile("c", "dictionary<values=string, indices=int32, ordered=0>", "categorical",
                           count=10, nulls=0, distinct=2, top=[("b", 6), ("a", 4)]),
    })
    schema = infer_schema(profile)
    assert (schema.columns["n"].min, schema.columns["n"].max) == (3.0, 7.0)
    assert schema.columns["n"].max_null_rate == pytest.approx(0.15)
    assert (schema.columns["when"].min, schema.columns["when"].max) == (None, None)
    assert schema.columns["c"].categories == ("a", "b")
    assert type(schema.columns["n"].min) is float  # numpy scalars never leak into the YAML


def test_infer_schema_rejects_negative_arguments():
    p = profile_table(frame("wine"))
    for kw in ({"category_limit": -1}, {"range_margin": -0.1}, {"row_count_slack": -1.0}):
        with pytest.raises(InvalidInputError):
            infer_schema(p, **kw)


def test_type_family():
    assert type_family("double") == "float"
    assert type_family("int32") == type_family("uint8") == "int"
    assert type_family("large_string") == type_family("string_view") == "string"
    assert type_family("dictionary<values=large_string, indices=int8, ordered=0>") == "string"
    assert type_family("dictionary<values=int64, indices=int8, ordered=0>") == "int"
    assert type_family("timestamp[us]") == "timestamp"
    assert type_family("timestamp[ns, tz=UTC]") == "timestamp_tz"
    assert type_family("date32[day]") == "date"
    assert type_family("decimal128(5, 2)") == "other"


# -- YAML ----------------------------------------------------------------------------


def rich_schema() -> Schema:
    df = wine_with_classes()
    schema = infer_schema(profile_table(df))
    cols = dict(schema.columns)
    cols["cls"] = dataclasses.replace(cols["cls"], severity={"unseen_category": "warning"})
    odd = {
        "yes": ColumnSchema("yes", "bool", "boolean", categories=[True]),
        "1": ColumnSchema("1", "int64", "numeric", True, 0.25, -5, 5, categories=[1, 2, 3]),
        "a: b # c": ColumnSchema("a: b # c", "large_string", "string", categories=["x", "true", "null", "1.5", "é"]),
        "when": ColumnSchema("when", "timestamp[ns, tz=UTC]", "datetime"),
    }
    return Schema(columns={**cols, **odd}, row_count=(10, None), allow_extra_columns=True)


def test_yaml_round_trip(tmp_path):
    schema = rich_schema()
    path = schema.save(tmp_path / "sub" / "schema.yaml")
    assert path.is_absolute() and path.exists()
    loaded = Schema.load(path)
    assert loaded == schema
    assert list(loaded.columns) == list(schema.columns)
    assert loaded.to_yaml() == schema.to_yaml()  # stable output


def test_yaml_is_commented_with_one_block_per_column():
    schema = infer_schema(profile_table(wine_with_classes()))
    text = schema.to_yaml()
    header = text.split("version:")[0]
    for fld in ("allow_extra_columns", "row_count", "type", "nullable", "max_null_rate", "min, max",
                "categories", "severity", "add_check"):
        assert fld in header
    assert "categories: [class_0, class_1, class_2]" in text
    block = text.split("\n  alcohol:\n", 1)[1].split("\n\n", 1)[0]
    keys = [line.split(":")[0].strip() for line in block.splitlines()]
    assert keys == ["type", "kind", "nullable", "max_null_rate", "min", "max", "categories"]
    # column order is the schema's
    positions = [text.index(f"\n  {name}:") for name in ("alcohol", "malic_acid", "target", "cls")]
    assert positions == sorted(positions)


def test_yaml_hand_edits_are_read():
    text = """
columns:
  age:
    type: int64
    kind: numeric
    nullable: false
    min: 0
    max: 130
  country:
    type: large_string
    kind: string
    categories: [DE, FR]
    severity: {unseen_category: warning}
row_count: {min: 1, max: null}
"""
    schema = Schema.from_yaml(text)
    assert schema.columns["age"] == ColumnSchema("age", "int64", "numeric", nullable=False, min=0.0, max=130.0)
    assert schema.columns["country"].categories == ("DE", "FR")
    assert schema.columns["country"].severity == {"unseen_category": "warning"}
    assert schema.row_count == (1, None)
    assert schema.allow_extra_columns is False


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Schema.from_yaml(text, source="schema.yaml")
    return info.value


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text("columns:\n  a:\n    type: double\n    kind: [numeric\n")
    with pytest.raises(ConfigError) as info:
        Schema.load(path)
    msg = str(info.value)
    assert str(path) in msg and "not valid YAML" in msg
    assert info.value.details["line"] is not None and f"{path}:{info.value.details['line']}" in msg


@pytest.mark.parametrize(
    ("text", "line", "field", "hint"),
    [
        ("columns:\n  a:\n    type: double\n    kind: numeric\n    mni: 3\n", 5, "columns.a.mni", "unknown field"),
        ("columns:\n  a:\n    type: double\n    kind: numeric\n    min: abc\n", 5, "columns.a.min", "must be a number"),
        ("columns:\n  a:\n    type: double\n    kind: numeric\n    min: 5\n    max: 1\n", 5, "columns.a.min",
         "greater than max"),
        ("columns:\n  a:\n    type: double\n    kind: numeric\n    max_null_rate: 2\n", 5, "columns.a.max_null_rate",
         "between 0 and 1"),
        ("columns:\n  a:\n    type: double\n    kind: numeric\n    nullable: maybe\n", 5, "columns.a.nullable",
         "true or false"),
        ("columns:\n  a:\n    type: double\n    kind: number\n", 4, "columns.a.kind", "one of"),
        ("columns:\n  a:\n    kind: numeric\n", 2, "columns.a", "missing 'type'"),
        ("columns:\n  a:\n    type: large_string\n    kind: string\n    categories: [x, 2]\n", 5,
         "columns.a.categories", "must all be strings"),
        ("columns:\n  a:\n    type: double\n    kind: numeric\n    categories: [1.5]\n", 5, "columns.a.categories",
         "string, integer and boolean"),
        ("columns:\n  a:\n    type: large_string\n    kind: string\n    min: 1\n", 5, "columns.a.min", "numeric"),
        ("columns:\n  a:\n    type: double\n    kind: numeric\n    severity: {out_of_range: fatal}\n", 5,
         "columns.a.severity", "'error' or 'warning'"),
        ("columns:\n  a: double\n", 2, "columns.a", "must be a mapping"),
        ("row_count: {min: 5, max: 1}\ncolumns: {}\n", 1, "row_count.min", "greater than max"),
        ("row_count: {min: -1}\ncolumns: {}\n", 1, "row_count.min", "non-negative"),
        ("row_count: 5\ncolumns: {}\n", 1, "row_count", "mapping"),
        ("version: 7\ncolumns: {}\n", 1, "version", "unsupported"),
        ("colums: {}\n", 1, "colums", "unknown field"),
        ("allow_extra_columns: sometimes\ncolumns: {}\n", 1, "allow_extra_columns", "true or false"),
    ],
)
def test_yaml_bad_field_names_file_line_and_field(text, line, field, hint):
    err = config_error(text)
    msg = str(err)
    assert msg.startswith(f"schema.yaml:{line}: {field}: "), msg
    assert hint in msg
    assert err.details["field"] == field and err.details["line"] == line


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "version: 1\n"])
def test_yaml_that_is_not_a_schema(text):
    msg = str(config_error(text))
    assert msg.startswith("schema.yaml")
    assert "mapping" in msg or "columns" in msg


def test_load_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Schema.load(tmp_path / "nope.yaml")


def test_column_schema_validates_its_fields():
    with pytest.raises(ConfigError, match="greater than max"):
        ColumnSchema("x", "double", "numeric", min=2, max=1)
    with pytest.raises(ConfigError, match="integers"):
        ColumnSchema("x", "int64", "numeric", categories=[True])
    with pytest.raises(ConfigError, match="unknown anomaly kind"):
        ColumnSchema("x", "int64", "numeric", severity={"row_count": "warning"})
    with pytest.raises(ConfigError, match="differs"):
        Schema(columns={"y": ColumnSchema("x", "double", "numeric")})
    with pytest.raises(ConfigError, match="row_count"):
        Schema(row_count=(5, 1))
    c = ColumnSchema("x", "int64", "numeric", min=np.int64(1), categories=[np.int64(2)])  # type: ignore[arg-type, list-item]
    assert type(c.min) is float and c.categories == (2,) and type(c.categories[0]) is int


# -- custom checks -------------------------------------------------------------------


def test_add_check_and_decorator():
    schema = Schema(columns={"w": ColumnSchema("w", "double", "numeric")})

    @schema.check("positive_weight", column="w", severity="warning")
    def positive_weight(t: pa.Table) -> pa.ChunkedArray:
        return pc.greater(t["w"], 0)

    assert positive_weight(pa.table({"w": [1.0]})).to_pylist() == [True]  # the decorator returns the function
    schema.add_check("small", lambda t: pc.less(t["w"], 100))

    @schema.check()
    def named_after_function(t: pa.Table) -> bool:
        return True

    assert [(c.name, c.column, c.severity) for c in schema.checks] == [
        ("positive_weight", "w", "warning"), ("small", None, "error"), ("named_after_function", None, "error"),
    ]
    schema.add_check("small", lambda t: True, severity="warning")  # same name: replaced, not duplicated
    assert [c.name for c in schema.checks] == ["positive_weight", "named_after_function", "small"]
    schema.remove_check("small")
    assert [c.name for c in schema.checks] == ["positive_weight", "named_after_function"]


def test_add_check_rejects_bad_arguments():
    schema = Schema()
    with pytest.raises(InvalidInputError):
        schema.add_check("", lambda t: True)
    with pytest.raises(InvalidInputError):
        schema.add_check("x", "not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        schema.add_check("x", lambda t: True, severity="fatal")  # type: ignore[arg-type]


def test_checks_are_not_saved_but_listed_in_a_comment(tmp_path):
    schema = infer_schema(profile_table(frame("wine")))
    schema.add_check("positive_alcohol", lambda t: pc.greater(t["alcohol"], 0), column="alcohol")
    text = schema.to_yaml()
    assert "positive_alcohol (column 'alcohol', severity error)" in text
    loaded = Schema.load(schema.save(tmp_path / "s.yaml"))
    assert loaded.checks == []
    assert loaded.columns == schema.columns
