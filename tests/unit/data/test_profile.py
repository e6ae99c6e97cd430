"""Profiles against exact pandas / NumPy computations on scikit-learn's bundled datasets."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn_frames import LOADERS, sklearn_frame

from loopml.data.models import Profile
from loopml.data.profile import MAX_CORRELATION_COLUMNS, QUANTILES, ProfileBuilder, column_kind, profile_table
from loopml.errors import InvalidInputError


def frame(name: str) -> pd.DataFrame:
    return sklearn_frame(name)


def rel_close(a: float | None, b: float, tol: float = 1e-9) -> bool:
    assert a is not None
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol * 1e-3)


def assert_matches_pandas(profile: Profile, df: pd.DataFrame) -> None:
    assert profile.num_rows == len(df)
    for name in df.columns:
        s = df[name]
        c = profile.columns[name]
        assert c.kind == "numeric"
        assert c.count == s.count(), name
        assert c.nulls == s.isna().sum(), name
        assert c.distinct == s.nunique() and not c.distinct_approx, name
        assert c.min == s.min() and c.max == s.max(), name
        assert rel_close(c.mean, s.mean()), name
        assert rel_close(c.std, s.std()), name
        expected_q = s.quantile(list(QUANTILES))
        for q in QUANTILES:  # the sample is the whole table: exact
            assert rel_close(c.quantiles[str(q)], float(expected_q[q]), 1e-12), (name, q)
        assert c.histogram is not None
        assert sum(c.histogram.counts) == c.count
        assert len(c.histogram.edges) == len(c.histogram.counts) + 1
        assert c.histogram.edges[0] <= c.min and c.histogram.edges[-1] >= c.max


@pytest.mark.parametrize("name", list(LOADERS))
def test_numeric_statistics_match_pandas(name: str) -> None:
    df = frame(name)
    profile = profile_table(df)
    assert profile.sample_size == len(df)
    assert_matches_pandas(profile, df)


def test_histogram_matches_numpy_on_float_columns() -> None:
    df = frame("breast_cancer")
    profile = profile_table(df)
    for name in df.columns[:-1]:  # floats (the target is an integer column)
        c = profile.columns[name]
        assert c.histogram is not None
        counts, edges = np.histogram(df[name], bins=20, range=(df[name].min(), df[name].max()))
        np.testing.assert_allclose(c.histogram.edges, edges, rtol=1e-12)
        # values sitting exactly on an inner edge may land on either side of it
        assert np.abs(np.asarray(c.histogram.counts) - counts).sum() <= 2, name


def test_small_integer_range_gets_one_bin_per_value() -> None:
    df = frame("digits")
    c = profile_table(df).columns["target"]
    assert c.histogram is not None
    assert c.histogram.edges == [k - 0.5 for k in range(11)]
    assert c.histogram.counts == df["target"].value_counts().sort_index().tolist()
    assert isinstance(c.min, int) and isinstance(c.max, int)


@pytest.mark.parametrize("chunk", [1, 7, 64, 250, 10_000])
def test_batch_sizes_do_not_change_exact_statistics(chunk: int) -> None:
    df = frame("breast_cancer")
    table = pa.Table.from_pandas(df, preserve_index=False)
    whole = profile_table(table, threads=1)
    pieces = profile_table(table.to_batches(max_chunksize=chunk), threads=1)
    assert pieces.num_rows == whole.num_rows
    for name, a in whole.columns.items():
        b = pieces.columns[name]
        assert (a.count, a.nulls, a.distinct, a.min, a.max) == (b.count, b.nulls, b.distinct, b.min, b.max)
        assert rel_close(b.mean, a.mean or 0.0, 1e-12) and rel_close(b.std, a.std or 0.0, 1e-12)
        assert a.quantiles == b.quantiles
        assert a.histogram == b.histogram
    for x, row in whole.correlations.items():
        for y, r in row.items():
            assert math.isclose(pieces.correlations[x][y], r, rel_tol=1e-12, abs_tol=1e-12)
    assert_matches_pandas(pieces, df)


def test_uneven_batches_from_a_builder() -> None:
    df = frame("wine")
    table = pa.Table.from_pandas(df, preserve_index=False)
    builder = ProfileBuilder(table.schema, threads=1)
    for start, stop in [(0, 1), (1, 50), (50, 51), (51, 51), (51, 178)]:
        piece = table.slice(start, stop - start)
        builder.update(pa.RecordBatch.from_arrays([c.combine_chunks() for c in piece.columns], schema=table.schema))
    assert_matches_pandas(builder.finish(), df)


def test_nulls_and_nan_count_as_nulls() -> None:
    floats = pa.array([1.0, None, float("nan"), 3.0, float("nan"), 5.0], from_pandas=False)
    ints = pa.array([1, None, 3, None, 5, 6], pa.int32())
    profile = profile_table(pa.table({"f": floats, "i": ints}))
    f, i = profile.columns["f"], profile.columns["i"]
    assert (f.count, f.nulls, f.distinct) == (3, 3, 3)
    assert f.mean == 3.0 and f.min == 1.0 and f.max == 5.0
    assert rel_close(f.std, 2.0)
    assert (i.count, i.nulls, i.distinct, i.min, i.max) == (4, 2, 4, 1, 6)
    assert rel_close(i.mean, 3.75)
    assert f.quantiles["0.5"] == 3.0
    assert math.isclose(f.null_rate, 0.5)


def test_correlations_match_pandas() -> None:
    df = frame("diabetes")
    profile = profile_table(df)
    expected = df.corr()
    assert set(profile.correlations) == set(df.columns)
    for a in df.columns:
        for b in df.columns:
            assert math.isclose(profile.correlations[a][b], expected.loc[a, b], rel_tol=1e-9, abs_tol=1e-12)


def test_correlations_with_nulls_use_pairwise_complete_rows() -> None:
    df = frame("wine").drop(columns="target")
    rng = np.random.default_rng(3)
    for name in ["alcohol", "malic_acid", "ash", "hue"]:
        df.loc[rng.random(len(df)) < 0.2, name] = np.nan
    expected = df.corr()
    for chunk in (13, 1000):
        table = pa.Table.from_pandas(df, preserve_index=False)
        profile = profile_table(table.to_batches(max_chunksize=chunk), threads=1)
        for a in df.columns:
            for b in df.columns:
                assert math.isclose(profile.correlations[a][b], expected.loc[a, b], rel_tol=1e-9, abs_tol=1e-12)
        assert_matches_pandas(profile, df)


def test_wide_tables_skip_correlations_but_keep_moments() -> None:
    df = frame("digits")  # 65 numeric columns: more than MAX_CORRELATION_COLUMNS
    assert len(df.columns) > MAX_CORRELATION_COLUMNS
    df = df.astype({"pixel_3_3": "float64"})
    df.loc[df.index[::7], "pixel_3_3"] = np.nan
    table = pa.Table.from_pandas(df, preserve_index=False)
    profile = profile_table(table.to_batches(max_chunksize=500))
    assert profile.correlations == {}
    assert_matches_pandas(profile, df)


def test_constant_and_short_columns_have_no_correlation() -> None:
    profile = profile_table(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": [5.0, 5.0, 5.0]}))
    assert profile.correlations == {"x": {"x": 1.0}}
    c = profile.columns["c"]
    assert c.std == 0.0 and c.histogram is not None and c.histogram.counts == [3]


def test_string_and_categorical_top_counts_are_exact() -> None:
    df = frame("wine")
    names = np.array(["barolo", "grignolino", "barbera"])
    data = pd.DataFrame(
        {
            "cultivar": names[df["target"].to_numpy()],
            "cultivar_cat": pd.Categorical(names[df["target"].to_numpy()]),
            "flag": df["alcohol"] > 13,
        }
    )
    data.loc[::10, "cultivar"] = None
    expected = data["cultivar"].value_counts()
    for chunk in (5, 1000):
        table = pa.Table.from_pandas(data, preserve_index=False)
        profile = profile_table(table.to_batches(max_chunksize=chunk))
        s = profile.columns["cultivar"]
        assert s.kind == "string"
        assert s.top == list(zip(expected.index, expected.tolist(), strict=True))
        assert (s.count, s.nulls, s.distinct) == (data["cultivar"].count(), 18, 3)
        cat = profile.columns["cultivar_cat"]
        assert cat.kind == "categorical" and cat.distinct == 3
        assert dict(cat.top) == data["cultivar_cat"].value_counts().to_dict()
        flag = profile.columns["flag"]
        assert flag.kind == "boolean"
        assert dict(flag.top) == data["flag"].value_counts().to_dict()
        assert flag.distinct == 2


def test_top_k_keeps_the_most_frequent_values() -> None:
    values = [f"v{i}" for i in range(50) for _ in range(i + 1)]  # v49 most frequent
    profile = profile_table(pa.table({"s": values}), top_k=5)
    assert profile.columns["s"].top == [("v49", 50), ("v48", 49), ("v47", 48), ("v46", 47), ("v45", 46)]
    assert profile.columns["s"].distinct == 50


def test_dictionary_with_nulls_and_repeated_dictionary_values() -> None:
    arr = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 2, 1, 3], pa.int8()), pa.array(["a", "b", "a", None]))
    c = profile_table(pa.table({"d": arr})).columns["d"]
    assert (c.count, c.nulls, c.distinct) == (4, 2, 2)
    assert c.top == [("a", 2), ("b", 2)]


@pytest.mark.parametrize("chunk", [1_000_000, 65_536])
def test_distinct_is_approximate_beyond_the_exact_limit(chunk: int) -> None:
    rng = np.random.default_rng(7)
    ints = rng.integers(0, 200_000, 1_000_000)
    floats = rng.normal(size=1_000_000)
    table = pa.table({"i": ints, "f": floats})
    profile = profile_table(table.to_batches(max_chunksize=chunk))
    i, f = profile.columns["i"], profile.columns["f"]
    truth = len(np.unique(ints))
    assert i.distinct_approx and f.distinct_approx
    assert i.distinct is not None and abs(i.distinct - truth) / truth < 0.05
    assert f.distinct is not None and abs(f.distinct - 1_000_000) / 1_000_000 < 0.05


def test_string_distinct_is_approximate_beyond_the_exact_limit() -> None:
    rng = np.random.default_rng(11)
    hot = np.repeat([-1, -2, -3], [3000, 2000, 1000])  # heavy hitters among many rare values
    codes = rng.permutation(np.concatenate([rng.integers(0, 60_000, 200_000), hot]))
    strings = pa.array(np.char.add("user-", codes.astype(str)))
    builder = ProfileBuilder(pa.schema([("s", pa.string())]), max_exact_distinct=5_000, distinct_sketch=4_096)
    for batch in pa.table({"s": strings}).to_batches(max_chunksize=25_000):
        builder.update(batch)
    c = builder.finish().columns["s"]
    truth = len(np.unique(codes))
    assert c.distinct_approx and c.distinct is not None
    assert abs(c.distinct - truth) / truth < 0.05
    # the heavy hitters are still counted exactly
    assert c.top[:3] == [("user--1", 3000), ("user--2", 2000), ("user--3", 1000)]


def test_distinct_stays_exact_below_the_limit_with_large_batches() -> None:
    rng = np.random.default_rng(5)
    ints = rng.integers(0, 12_000, 400_000)
    floats = rng.integers(0, 50_000, 400_000) / 7
    table = pa.table({"i": ints, "f": floats})
    c = profile_table(table).columns["i"]
    assert not c.distinct_approx and c.distinct == len(np.unique(ints))
    builder = ProfileBuilder(table.schema, max_exact_distinct=100_000)
    for batch in table.to_batches(max_chunksize=150_000):
        builder.update(batch)
    c = builder.finish().columns["f"]
    assert not c.distinct_approx and c.distinct == len(np.unique(floats))


def test_negative_zero_is_zero() -> None:
    c = profile_table(pa.table({"f": [0.0, -0.0, 1.0]})).columns["f"]
    assert c.distinct == 2


def test_quantiles_of_a_sample_are_within_tolerance() -> None:
    rng = np.random.default_rng(2)
    x = rng.lognormal(size=400_000)
    m = 20_000
    profile = profile_table(pa.table({"x": x}).to_batches(max_chunksize=64_000), sample_size=m)
    c = profile.columns["x"]
    assert profile.sample_size == m
    assert c.min == x.min() and c.max == x.max() and rel_close(c.mean, x.mean())
    sorted_x = np.sort(x)
    for q in QUANTILES:
        rank = np.searchsorted(sorted_x, c.quantiles[str(q)]) / len(x)
        assert abs(rank - q) < 5 * math.sqrt(q * (1 - q) / m), q
    assert c.histogram is not None and sum(c.histogram.counts) == len(x)
    exact, _ = np.histogram(x, bins=c.histogram.edges)
    assert np.abs(np.asarray(c.histogram.counts) - exact).max() < 0.01 * len(x)


def test_sample_is_uniform_across_batches() -> None:
    # sorted data in many batches: a sample biased towards early or late batches would shift the median
    x = np.arange(1_000_000, dtype=np.float64)
    profile = profile_table(pa.table({"x": x}).to_batches(max_chunksize=10_000), sample_size=5_000)
    median = profile.columns["x"].quantiles["0.5"]
    assert abs(median - 500_000) < 5 * 0.5 / math.sqrt(5_000) * 1_000_000


def test_datetime_column() -> None:
    times = pd.Series(pd.to_datetime(["2021-03-01 12:00:00", None, "2020-01-05 00:00:00", "2024-02-29 23:59:59"]))
    dates = pa.array([dt.date(2020, 1, 1), None, dt.date(2019, 6, 30), dt.date(2020, 1, 1)])
    zoned = pa.array([0, 86_400, None, None], pa.timestamp("s", tz="UTC"))
    profile = profile_table(pa.table({"t": pa.Array.from_pandas(times), "d": dates, "z": zoned}))
    t, d, z = profile.columns["t"], profile.columns["d"], profile.columns["z"]
    assert t.kind == d.kind == z.kind == "datetime"
    assert (t.count, t.nulls, t.distinct) == (3, 1, 3)
    assert t.min == "2020-01-05T00:00:00" and t.max == "2024-02-29T23:59:59"
    assert (d.count, d.nulls, d.distinct, d.min, d.max) == (3, 1, 2, "2019-06-30", "2020-01-01")
    assert z.min == "1970-01-01T00:00:00+00:00" and z.max == "1970-01-02T00:00:00+00:00"


def test_empty_table_gives_a_valid_profile() -> None:
    df = frame("wine").iloc[:0].assign(name=pd.Series([], dtype="str"), when=pd.Series([], dtype="datetime64[ns]"))
    profile = profile_table(df)
    assert profile.num_rows == 0 and profile.sample_size == 0
    assert set(profile.columns) == set(df.columns)
    for c in profile.columns.values():
        assert (c.count, c.nulls, c.distinct) == (0, 0, 0)
        assert c.mean is None and c.std is None and c.min is None and c.histogram is None
        assert c.quantiles == {} and c.top == []
        assert c.null_rate == 0.0
    assert profile.correlations == {}
    assert profile_table([]).columns == {}
    json.dumps(profile.to_dict(), allow_nan=False)


def test_all_null_columns() -> None:
    n = 1000
    table = pa.table(
        {
            "f": pa.array([None] * n, pa.float64()),
            "nan": pa.array([float("nan")] * n),
            "i": pa.array([None] * n, pa.int64()),
            "s": pa.array([None] * n, pa.string()),
            "b": pa.array([None] * n, pa.bool_()),
            "t": pa.array([None] * n, pa.timestamp("ms")),
            "x": pa.array([1.0] * n),
        }
    )
    profile = profile_table(table)
    for name in "f nan i s b t".split():
        c = profile.columns[name]
        assert (c.count, c.nulls, c.distinct) == (0, n, 0), name
        assert c.mean is None and c.min is None and c.histogram is None and c.top == [] and c.quantiles == {}
    assert profile.columns["x"].mean == 1.0
    assert profile.correlations == {}
    json.dumps(profile.to_dict(), allow_nan=False)


def test_json_round_trip() -> None:
    df = frame("wine").assign(cultivar=lambda d: d["target"].map({0: "a", 1: "b", 2: "c"}).astype("category"))
    df["flag"] = df["alcohol"] > 13
    df["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(df.index, unit="D")
    profile = profile_table(df)
    text = json.dumps(profile.to_dict(), allow_nan=False)
    back = Profile.from_dict(json.loads(text))
    assert back == profile
    for c in back.columns.values():
        for value, count in c.top:
            assert isinstance(value, str | int | float | bool) and type(count) is int


def test_infinities_do_not_break_the_profile() -> None:
    c = profile_table(pa.table({"f": [1.0, 2.0, float("inf"), -float("inf"), 3.0]})).columns["f"]
    assert c.count == 5 and c.min == -math.inf and c.max == math.inf
    assert c.mean is None and c.std is None
    assert c.histogram is not None and sum(c.histogram.counts) == 5
    json.dumps(c.quantiles)


def test_threads_give_the_same_profile() -> None:
    rng = np.random.default_rng(0)
    n = 300_000
    table = pa.table(
        {
            "a": rng.normal(size=n),
            "b": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "c": rng.integers(0, 100, n),
            "s": pa.array(np.array(["x", "y", "z"])[rng.integers(0, 3, n)]),
        }
    )
    one = profile_table(table, threads=1)
    two = profile_table(table, threads=2)
    for name, a in one.columns.items():
        b = two.columns[name]
        assert (a.count, a.nulls, a.distinct, a.min, a.max, a.top, a.quantiles, a.histogram) == (
            b.count,
            b.nulls,
            b.distinct,
            b.min,
            b.max,
            b.top,
            b.quantiles,
            b.histogram,
        )
        if a.mean is not None:
            assert rel_close(b.mean, a.mean, 1e-12) and rel_close(b.std, a.std or 0.0, 1e-12)
    for x, row in one.correlations.items():
        for y, r in row.items():
            assert math.isclose(two.correlations[x][y], r, rel_tol=1e-9, abs_tol=1e-12)


def test_column_kinds() -> None:
    assert column_kind(pa.float32()) == "numeric"
    assert column_kind(pa.uint8()) == "numeric"
    assert column_kind(pa.decimal128(10, 2)) == "numeric"
    assert column_kind(pa.bool_()) == "boolean"
    assert column_kind(pa.dictionary(pa.int32(), pa.string())) == "categorical"
    assert column_kind(pa.large_string()) == "string"
    assert column_kind(pa.string_view()) == "string"
    assert column_kind(pa.timestamp("ns", tz="Europe/Paris")) == "datetime"
    assert column_kind(pa.date32()) == "datetime"
    assert column_kind(pa.binary()) == "other"
    assert column_kind(pa.list_(pa.int64())) == "other"


def test_other_types() -> None:
    table = pa.table(
        {
            "dec": pa.array([decimal.Decimal("1.50"), decimal.Decimal("2.25"), None], pa.decimal128(10, 2)),
            "f16": pa.array(np.array([1.5, 2.5, np.nan], dtype=np.float16)),
            "f32": pa.array([1.5, 2.5, None], pa.float32()),
            "u8": pa.array([1, 2, None], pa.uint8()),
            "u64": pa.array([2**63 + 1, 5, 7], pa.uint64()),
            "bin": pa.array([b"a", None, b"c"]),
            "dur": pa.array([1, 2, None], pa.duration("s")),
            "null": pa.array([None, None, None]),
            "view": pa.array(["a", "b", "a"]).cast(pa.string_view()),
            "dict_view": pa.array(["x", "y", "x"]).cast(pa.string_view()).dictionary_encode(),
            "dict_int": pa.array([3, 4, 3]).dictionary_encode(),
        }
    )
    profile = profile_table(table)
    c = profile.columns
    assert c["dec"].mean == 1.875 and c["dec"].nulls == 1
    assert c["f16"].max == 2.5 and c["f16"].nulls == 1
    assert c["f32"].max == 2.5
    assert (c["u8"].min, c["u8"].max, c["u8"].nulls) == (1, 2, 1)
    assert c["u64"].max == 2**63 + 1 and c["u64"].distinct == 3
    assert (c["bin"].kind, c["bin"].count, c["bin"].nulls) == ("other", 2, 1)
    assert (c["dur"].kind, c["null"].kind, c["null"].nulls) == ("other", "other", 3)
    assert c["view"].top == [("a", 2), ("b", 1)] and c["view"].distinct == 2
    assert c["dict_view"].top == [("x", 2), ("y", 1)]
    assert c["dict_int"].top == [(3, 2), (4, 1)]
    json.dumps(profile.to_dict(), allow_nan=False)


def test_schema_problems_are_clear_errors() -> None:
    with pytest.raises(InvalidInputError, match="duplicate"):
        ProfileBuilder(pa.schema([("a", pa.int64()), ("a", pa.float64())]))
    builder = ProfileBuilder(pa.schema([("a", pa.int64())]))
    with pytest.raises(InvalidInputError, match="differ"):
        builder.update(pa.record_batch({"b": [1]}))
    with pytest.raises(InvalidInputError, match="types"):
        builder.update(pa.record_batch({"a": ["not a number"]}))
    builder.update(pa.record_batch({"a": pa.array([1, 2], pa.int32())}))  # castable
    assert builder.finish().columns["a"].count == 2
