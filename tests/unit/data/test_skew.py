"""Training/serving skew from two profiles."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from loopml.data.models import Profile
from loopml.data.profile import profile_table
from loopml.data.skew import compare_profiles, jensen_shannon, population_stability_index


def wine() -> pd.DataFrame:
    df: pd.DataFrame = load_wine(as_frame=True).frame
    df["cultivar"] = df["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return df


def by_column(findings: list, metric: str | None = None) -> dict:
    return {f.column: f for f in findings if metric is None or f.metric == metric}


@pytest.mark.parametrize("loader", [load_wine, load_breast_cancer, load_diabetes])
def test_identical_profiles_do_not_drift(loader) -> None:
    df = loader(as_frame=True).frame
    p = profile_table(df)
    findings = compare_profiles(p, p)
    assert len(findings) == len(df.columns)
    assert not any(f.drifted for f in findings)
    assert all(f.value < 1e-9 for f in findings)


def test_profile_survives_json_before_comparison() -> None:
    p = profile_table(wine())
    stored = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert not any(f.drifted for f in compare_profiles(stored, p))


def test_random_halves_of_the_same_data_do_not_drift() -> None:
    rng = np.random.default_rng(4)
    n = 40_000
    df = pd.DataFrame(
        {
            "normal": rng.normal(size=n),
            "skewed": rng.lognormal(sigma=1.5, size=n),
            "counts": rng.poisson(3, size=n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.6, 0.3, 0.1]),
        }
    )
    findings = compare_profiles(profile_table(df.iloc[: n // 2]), profile_table(df.iloc[n // 2 :]))
    assert not [f.column for f in findings if f.drifted]
    assert all(f.value < 0.02 for f in findings)


def test_shifted_numeric_column_drifts_alone() -> None:
    ref = wine()
    cur = ref.copy()
    cur["alcohol"] = cur["alcohol"] + 2 * cur["alcohol"].std()
    findings = compare_profiles(profile_table(ref), profile_table(cur), psi_threshold=0.2)
    drifted = [f for f in findings if f.drifted]
    assert [f.column for f in drifted] == ["alcohol"]
    alcohol = drifted[0]
    assert alcohol.metric == "psi" and alcohol.value > 0.2 and alcohol.kind == "numeric"
    assert "outside the reference range" in alcohol.detail
    assert findings[0] is alcohol  # drifted first


def test_psi_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    ref = profile_table(pd.DataFrame({"x": rng.normal(size=50_000)}))
    values = []
    for shift in (0.0, 0.1, 0.5, 1.0):
        cur = profile_table(pd.DataFrame({"x": rng.normal(loc=shift, size=50_000)}))
        values.append(by_column(compare_profiles(ref, cur))["x"].value)
    assert values[0] < 0.01 < values[1] < values[2] < values[3]
    # PSI of a 0.1 std shift of a normal is about 0.01 (analytically 0.1**2)
    assert 0.005 < values[1] < 0.02


def test_changed_category_frequencies_drift() -> None:
    ref = wine()
    cur = pd.concat([ref[ref["cultivar"] == "barolo"]] * 3 + [ref[ref["cultivar"] != "barolo"]])
    findings = compare_profiles(profile_table(ref), profile_table(cur))
    f = by_column(findings, "jensen_shannon")["cultivar"]
    assert f.drifted and f.value > 0.1 and f.kind == "string"
    assert "'barolo'" in f.detail
    assert by_column(findings, "psi")["target"].drifted  # the target column moved with it


def test_new_category_drifts() -> None:
    ref = pd.DataFrame({"c": ["a", "b"] * 500})
    cur = pd.DataFrame({"c": ["a", "b", "c", "c"] * 250})
    f = compare_profiles(profile_table(ref), profile_table(cur))[0]
    assert f.metric == "jensen_shannon" and f.drifted
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert math.isclose(f.value, jensen_shannon(p, q))


def test_categories_beyond_the_top_lists_are_pooled() -> None:
    rng = np.random.default_rng(1)
    values = [f"v{i}" for i in range(200)]
    ref = profile_table(pd.DataFrame({"c": rng.choice(values, 20_000)}), top_k=5)
    cur = profile_table(pd.DataFrame({"c": rng.choice(values, 20_000)}), top_k=5)
    f = by_column(compare_profiles(ref, cur))["c"]
    assert not f.drifted and f.value < 0.05


def test_boolean_columns_use_jensen_shannon() -> None:
    ref = pd.DataFrame({"b": [True] * 500 + [False] * 500})
    cur = pd.DataFrame({"b": [True] * 900 + [False] * 100})
    f = compare_profiles(profile_table(ref), profile_table(cur))[0]
    assert (f.kind, f.metric, f.drifted) == ("boolean", "jensen_shannon", True)


def test_missing_and_new_columns_are_reported() -> None:
    ref = wine()
    cur = ref.drop(columns=["hue"]).assign(extra=1.0)
    findings = compare_profiles(profile_table(ref), profile_table(cur))
    missing = by_column(findings, "missing")
    assert set(missing) == {"hue", "extra"}
    assert all(f.drifted for f in missing.values())
    assert "missing" in missing["hue"].detail and "new" in missing["extra"].detail
    assert len(findings) == len(ref.columns) + 1


def test_null_rate_change_is_reported() -> None:
    ref = wine()
    cur = ref.copy()
    cur.loc[cur.index[::4], "magnesium"] = np.nan  # 25% nulls
    cur.loc[cur.index[::20], "ash"] = np.nan  # 5%: below the threshold
    findings = compare_profiles(profile_table(ref), profile_table(cur))
    nulls = by_column(findings, "null_rate")
    assert set(nulls) == {"magnesium"}
    assert nulls["magnesium"].drifted and math.isclose(nulls["magnesium"].value, 45 / 178)


def test_kind_change_and_empty_columns() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "e": [1.0, 2.0, 3.0]})
    cur = pd.DataFrame({"x": ["1", "2", "3"], "e": pd.Series([np.nan] * 3)})
    findings = by_column(compare_profiles(profile_table(ref), profile_table(cur)), None)
    assert findings["x"].metric == "kind" and findings["x"].drifted
    empty = [f for f in compare_profiles(profile_table(ref), profile_table(cur)) if f.column == "e"]
    assert {f.metric for f in empty} == {"psi", "null_rate"}
    assert [f.drifted for f in empty if f.metric == "psi"] == [False]


def test_findings_are_sorted() -> None:
    ref = wine()
    cur = ref.copy()
    cur["alcohol"] += 3 * cur["alcohol"].std()
    cur["hue"] += 1 * cur["hue"].std()
    findings = compare_profiles(profile_table(ref), profile_table(cur))
    keys = [(not f.drifted, -f.value) for f in findings]
    assert keys == sorted(keys)
    assert findings[0].column == "alcohol"


def test_metric_helpers() -> None:
    assert population_stability_index([1, 1], [1, 1]) == 0.0
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon([0.2, 0.8], [0.2, 0.8]) == 0.0
