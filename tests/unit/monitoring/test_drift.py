"""Data drift: detection of injected shifts on real data, agreement with SciPy, the reference, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from loopml.errors import InvalidInputError
from loopml.monitoring.drift import (
    OTHER,
    ColumnReference,
    DriftConfig,
    Reference,
    chi2_two_sample,
    cramers_v,
    detect_drift,
    fit_reference,
    ks_two_sample,
    population_stability_index,
    wasserstein_sorted,
)

# -- real data ------------------------------------------------------------------------------


def frame(name: str) -> pd.DataFrame:
    """An sklearn dataset with one categorical column (class labels, or sex for diabetes)."""
    loader = {"breast_cancer": load_breast_cancer, "wine": load_wine, "diabetes": load_diabetes}[name]
    df: pd.DataFrame = loader(as_frame=True).frame
    if name == "diabetes":
        df["sex"] = np.where(df["sex"] > 0, "m", "f")
    else:
        df["target"] = df["target"].map(lambda t: f"class_{t}")
    return df


def halves(df: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random split into two halves: the reference and the window."""
    idx = np.random.default_rng(seed).permutation(len(df))
    h = len(df) // 2
    return df.iloc[idx[:h]].reset_index(drop=True), df.iloc[idx[h:]].reset_index(drop=True)


# dataset -> (column shifted by `shift` reference stds, column multiplied by 1.5, categorical column,
#             shift, share of the most common category moved to the second)
# wine has 89 rows per half: a 0.5 std shift moves the KS D by about 0.2, which is the 5 % critical
# value at that size, so it is found only about half the time; a 1 std shift always is.
SHIFTS = {
    "breast_cancer": ("mean radius", "worst area", "target", 0.5, 0.4),
    "diabetes": ("bmi", "target", "sex", 0.5, 0.4),
    "wine": ("alcohol", "proline", "target", 1.0, 0.8),
}


def inject(ref: pd.DataFrame, cur: pd.DataFrame, dataset: str, seed: int) -> pd.DataFrame:
    shift_col, scale_col, cat_col, shift, moved = SHIFTS[dataset]
    cur = cur.copy()
    cur[shift_col] = cur[shift_col] + shift * ref[shift_col].std()
    cur[scale_col] = cur[scale_col] * 1.5  # all positive: a change of units
    order = ref[cat_col].value_counts().index
    values = cur[cat_col].to_numpy(dtype=object).copy()
    rng = np.random.default_rng(seed + 1000)
    values[(values == order[0]) & (rng.random(len(values)) < moved)] = order[1]
    cur[cat_col] = values
    return cur


@pytest.mark.parametrize("dataset", sorted(SHIFTS))
def test_injected_shifts_are_found_on_exactly_those_columns(dataset: str) -> None:
    df = frame(dataset)
    shifted = set(SHIFTS[dataset][:3])
    splits = 30
    found = {c: 0 for c in shifted}
    false_flags = exact = 0
    fdp = []
    for seed in range(splits):
        ref, cur = halves(df, seed)
        report = detect_drift(fit_reference(ref), inject(ref, cur, dataset, seed))
        flagged = set(report.drifted_columns)
        for c in shifted & flagged:
            found[c] += 1
        false_flags += len(flagged - shifted)
        exact += flagged == shifted
        fdp.append(len(flagged - shifted) / max(1, len(flagged)))
        assert all(report.columns[c].drifted is not None for c in df.columns)
    # every injected shift is found (at these sizes the KS / chi-squared power is about 0.97 or more)
    assert all(n >= splits - 2 for n in found.values()), found
    # BH bounds the expected share of false discoveries among the flagged columns by alpha
    assert np.mean(fdp) <= 0.05 + 0.03, (np.mean(fdp), false_flags)
    assert exact >= 0.75 * splits, exact


def test_one_split_in_detail() -> None:
    df = frame("breast_cancer")
    ref, cur = halves(df, 0)
    report = detect_drift(fit_reference(ref), inject(ref, cur, "breast_cancer", 0))
    assert report.drifted_columns == ["mean radius", "worst area", "target"]
    assert report.share_drifted == pytest.approx(3 / 31)
    assert not report.dataset_drift
    radius = report.columns["mean radius"]
    assert (radius.kind, radius.method) == ("numeric", "ks")
    assert radius.reason.startswith(f"KS D={radius.statistic:.3g} >= 0.1 and p=")
    assert "after BH < 0.05" in radius.reason
    assert radius.p_adjusted is not None and radius.p_value is not None and radius.p_adjusted >= radius.p_value
    target = report.columns["target"]
    assert (target.kind, target.method) == ("categorical", "chi2")
    assert "Cramér's V=" in target.reason and "'class_1'" in target.reason
    quiet = report.columns["mean texture"]
    assert quiet.drifted is False and "no significant change" in quiet.reason
    json.dumps(report.to_dict(), allow_nan=False)


def test_the_reference_data_itself_does_not_drift() -> None:
    # random halves without a shift: see test_drift_calibration.py for the false-alarm rates
    for dataset in SHIFTS:
        df = frame(dataset)
        shuffled = df.sample(frac=1.0, random_state=0)
        report = detect_drift(fit_reference(df), shuffled)
        assert report.drifted_columns == [], (dataset, report.drifted_columns)
        assert all(c.statistic == 0.0 and c.p_value == 1.0 for c in report.columns.values())
        assert not report.dataset_drift


def test_dataset_drift_when_enough_columns_drift() -> None:
    df = frame("wine")
    ref, cur = halves(df, 2)
    cur = cur.copy()
    numeric = [c for c in df.columns if c != "target"]
    for c in numeric[:8]:
        cur[c] = cur[c] + 2 * ref[c].std()
    report = detect_drift(fit_reference(ref), cur)
    assert set(numeric[:8]) <= set(report.drifted_columns)
    assert report.share_drifted >= 8 / 14
    assert report.dataset_drift
    assert not detect_drift(fit_reference(ref), cur, config=DriftConfig(drift_share=0.9)).dataset_drift


# -- agreement with SciPy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n1", "n2", "discrete"),
    [
        (10, 15, False),
        (100, 100, False),
        (1000, 50, True),
        (5000, 7000, False),
        (4000, 9000, True),
        (30_000, 20_000, False),
        (200_000, 3000, False),
        (100_000, 1_000_000, False),
    ],
)
def test_ks_matches_scipy(n1: int, n2: int, discrete: bool) -> None:
    rng = np.random.default_rng(n1 + n2)
    shift = 2.0 / math.sqrt(n1 * n2 / (n1 + n2))  # p in a range where its digits matter
    if discrete:
        a, b = rng.poisson(4, n1).astype(float), rng.poisson(4 + shift * 2, n2).astype(float)
    else:
        a, b = rng.normal(size=n1), rng.normal(shift, 1, size=n2)
    d, p = ks_two_sample(np.sort(a), np.sort(b))
    ref = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert d == pytest.approx(float(stats.ks_2samp(b, a, method="asymp").statistic), abs=1e-12)
    en = round(n1 * n2 / (n1 + n2))
    # identical to SciPy up to an effective size of 10,000; the corrected Kolmogorov limit above
    assert p == pytest.approx(ref.pvalue, rel=1e-9 if en <= 10_000 else 5e-3)
    assert 1e-8 < ref.pvalue < 0.9


def test_ks_edge_cases() -> None:
    same = np.sort(np.random.default_rng(0).normal(size=500))
    assert ks_two_sample(same, same) == (0.0, 1.0)
    assert ks_two_sample(np.array([1.0, 2.0]), np.empty(0)) == (0.0, 1.0)
    d, p = ks_two_sample(np.array([0.0] * 50), np.array([1.0] * 50))
    assert d == 1.0 and p < 1e-20
    # constant reference: D is the share of the window away from the constant
    d, _ = ks_two_sample(np.full(100, 3.0), np.sort(np.r_[np.full(70, 3.0), np.full(20, 4.0), np.full(10, 1.0)]))
    assert d == pytest.approx(
        stats.ks_2samp(np.full(100, 3.0), np.r_[np.full(70, 3.0), [4.0] * 20, [1.0] * 10]).statistic
    )


@pytest.mark.parametrize("k", [2, 3, 6])
def test_chi2_matches_chi2_contingency(k: int) -> None:
    rng = np.random.default_rng(k)
    shares = rng.dirichlet(np.ones(k) * 5)
    ref, cur = rng.multinomial(3000, shares), rng.multinomial(800, shares[::-1])
    res = chi2_two_sample(ref, cur)
    scipy_res = stats.chi2_contingency(np.stack([ref, cur]), correction=False)
    assert res.statistic == pytest.approx(scipy_res.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(scipy_res.pvalue, rel=1e-9, abs=1e-300)
    assert res.dof == scipy_res.dof == k - 1
    assert res.pooled == []


def test_chi2_pools_rare_categories() -> None:
    ref = np.array([500, 300, 150, 12, 10, 8, 0])
    cur = np.array([90, 70, 30, 2, 3, 1, 6])
    res = chi2_two_sample(ref, cur)
    # min(row totals) * column total / N < 5: the last four columns are pooled into one
    assert res.kept == [0, 1, 2] and res.pooled == [3, 4, 5, 6]
    table = np.array([[500, 300, 150, 30], [90, 70, 30, 12]])
    scipy_res = stats.chi2_contingency(table, correction=False)
    assert res.statistic == pytest.approx(scipy_res.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(scipy_res.pvalue, rel=1e-9)
    assert res.dof == 3
    # a pooled column that is still too small joins the smallest remaining category
    res = chi2_two_sample(np.array([500, 300, 3, 2]), np.array([100, 50, 0, 1]))
    assert res.kept == [0, 1] and res.pooled == [2, 3]
    scipy_res = stats.chi2_contingency(np.array([[500, 305], [100, 51]]), correction=False)
    assert res.statistic == pytest.approx(scipy_res.statistic, rel=1e-12)
    # one category only: nothing to test
    res = chi2_two_sample(np.array([40]), np.array([35]))
    assert (res.statistic, res.dof, res.p_value, res.effect_size) == (0.0, 0, 1.0, 0.0)


def test_cramers_v_is_that_of_equal_sized_samples() -> None:
    ref, cur = np.array([300, 200, 100]), np.array([150, 250, 200])
    assert cur.sum() * 1 == ref.sum()  # same size: V is the usual Cramér's V of the table
    table = np.stack([ref, cur])
    assert cramers_v(ref, cur) == pytest.approx(stats.contingency.association(table, method="cramer"), rel=1e-12)
    assert chi2_two_sample(ref, cur).effect_size == pytest.approx(cramers_v(ref, cur))
    # a 20x larger reference: same distributions, same V; the table's plain V shrinks
    big = ref * 20
    assert cramers_v(big, cur) == pytest.approx(cramers_v(ref, cur), rel=1e-12)
    plain = stats.contingency.association(np.stack([big, cur]), method="cramer")
    assert plain < 0.5 * cramers_v(ref, cur)
    assert cramers_v(np.array([5, 0]), np.array([0, 7])) == pytest.approx(1.0)


def test_categorical_window_is_the_two_sample_test() -> None:
    df = frame("wine")
    ref, cur = halves(df, 3)
    report = detect_drift(fit_reference(ref), cur)
    col = report.columns["target"]
    names = ref["target"].value_counts().index
    table = np.stack([ref["target"].value_counts()[names], cur["target"].value_counts()[names]])
    scipy_res = stats.chi2_contingency(table, correction=False)
    assert col.statistic == pytest.approx(scipy_res.statistic, rel=1e-12)
    assert col.p_value == pytest.approx(scipy_res.pvalue, rel=1e-9)
    assert col.hist["categories"] == list(names)
    assert sum(col.hist["current"]) == pytest.approx(1.0)


def test_distance_methods_match_scipy() -> None:
    df = frame("diabetes")
    ref, cur = halves(df, 4)
    cur = cur.assign(bmi=cur["bmi"] * 1.3 + 0.01)
    reference = fit_reference(ref)
    w = detect_drift(reference, cur, config=DriftConfig(numeric_method="wasserstein")).columns["bmi"]
    expected = stats.wasserstein_distance(ref["bmi"], cur["bmi"]) / ref["bmi"].std()
    assert w.method == "wasserstein" and w.p_value is None and w.p_adjusted is None
    assert w.effect_size == pytest.approx(expected, rel=1e-9)
    assert w.drifted is (w.effect_size >= 0.1)
    a, b = np.sort(np.random.default_rng(0).normal(size=3000)), np.sort(np.random.default_rng(1).gamma(2, size=500))
    assert wasserstein_sorted(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)

    psi = detect_drift(reference, cur, config=DriftConfig(numeric_method="psi")).columns["bmi"]
    col = reference.columns["bmi"]
    cuts = col.edges
    x = np.sort(cur["bmi"].to_numpy())
    # below the minimum, right-closed bins [min, c1], (c1, c2], ..., above the maximum
    right_closed = np.diff(np.r_[0, np.searchsorted(x, cuts, side="right")])
    cur_counts = np.r_[(x < cuts[0]).sum(), right_closed[1:], (x > cuts[-1]).sum()]
    cur_counts[1] += (x == cuts[0]).sum()
    e = np.maximum(np.r_[0, col.bin_counts, 0] / col.bin_counts.sum(), 1e-4)
    q = np.maximum(cur_counts / len(x), 1e-4)
    assert psi.effect_size == pytest.approx(float(np.sum((q - e) * np.log(q / e))), rel=1e-9)
    assert psi.effect_size == pytest.approx(
        population_stability_index(np.r_[0.0, col.bin_counts, 0.0], cur_counts.astype(float)), rel=1e-12
    )
    assert psi.threshold == 0.2 and psi.drifted is (psi.effect_size >= 0.2)

    js = detect_drift(reference, cur, config=DriftConfig(categorical_method="jensenshannon")).columns["sex"]
    names = ref["sex"].value_counts().index
    p = ref["sex"].value_counts()[names].to_numpy() / len(ref)
    q = cur["sex"].value_counts()[names].to_numpy() / len(cur)
    assert js.method == "jensenshannon" and js.p_value is None
    assert js.effect_size == pytest.approx(distance.jensenshannon(p, q, base=2), rel=1e-9)


def test_multiple_testing_corrections() -> None:
    df = frame("breast_cancer")
    ref, cur = halves(df, 5)
    cur = inject(ref, cur, "breast_cancer", 5)
    reference = fit_reference(ref)
    raw = detect_drift(reference, cur, config=DriftConfig(correction="none"))
    names = list(raw.columns)
    p = np.array([raw.columns[c].p_value for c in names])
    assert all(raw.columns[c].p_adjusted == raw.columns[c].p_value for c in names)
    bh = detect_drift(reference, cur)
    assert [bh.columns[c].p_adjusted for c in names] == pytest.approx(stats.false_discovery_control(p), rel=1e-12)
    bonf = detect_drift(reference, cur, config=DriftConfig(correction="bonferroni"))
    assert [bonf.columns[c].p_adjusted for c in names] == pytest.approx(np.minimum(p * len(p), 1), rel=1e-12)
    assert "after Bonferroni" in bonf.columns["mean radius"].reason
    assert set(bonf.drifted_columns) <= set(bh.drifted_columns) <= set(raw.drifted_columns)


# -- the effect-size floor ------------------------------------------------------------------


def test_trivial_shift_at_a_million_rows_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(7)
    reference = fit_reference(pa.table({"x": rng.normal(size=200_000)}))
    window = pa.table({"x": rng.normal(0.03, 1, size=1_000_000)})  # 0.03 std: D is about 0.012
    col = detect_drift(reference, window).columns["x"]
    assert col.p_adjusted is not None and col.p_adjusted < 1e-6
    assert col.effect_size < 0.02
    assert col.drifted is False
    assert "significant (p=" in col.reason and "below the effect-size threshold" in col.reason
    assert detect_drift(reference, window, config=DriftConfig(min_effect={"ks": 0.0})).columns["x"].drifted


def test_per_column_thresholds() -> None:
    rng = np.random.default_rng(8)
    n = 100_000
    reference = fit_reference(pa.table({"x": rng.normal(size=n), "y": rng.normal(size=n)}))
    # a 1.5x wider spread moves the KS D of a normal by only 0.097
    window = pa.table({"x": rng.normal(0, 1.5, size=n), "y": rng.normal(0, 1.5, size=n)})
    cfg = DriftConfig(column_thresholds={"x": {"min_effect": 0.05}, "y": {"min_effect": 0.5}})
    report = detect_drift(reference, window, config=cfg)
    assert report.columns["x"].threshold == 0.05 and report.columns["y"].threshold == 0.5
    assert report.drifted_columns == ["x"]  # y's own threshold is the only way for it to be large
    assert 0.09 < report.columns["y"].effect_size < 0.1
    # by default, KS's D of 0.097 is small, but the values moved by 0.4 std (Wasserstein): drifted
    report = detect_drift(reference, window)
    assert report.drifted_columns == ["x", "y"] and "Wasserstein=0.399 std" in report.columns["y"].reason
    # merged over the defaults: giving one method keeps the others
    cfg = DriftConfig(min_effect={"ks": 0.3})
    assert cfg.min_effect["ks"] == 0.3 and cfg.min_effect["psi"] == 0.2
    assert cfg.threshold("anything", "chi2") == 0.1


def test_config_is_validated() -> None:
    for bad in (
        {"alpha": 0.0},
        {"alpha": 1.5},
        {"correction": "holm"},
        {"numeric_method": "anderson"},
        {"categorical_method": "ks"},
        {"min_effect": {"kss": 0.1}},
        {"min_effect": {"ks": -1.0}},
        {"column_thresholds": {"age": {"alpha": 0.01}}},
        {"drift_share": 0.0},
        {"min_rows": 0},
        {"sample_size": 0},
        {"bins": 0},
    ):
        with pytest.raises(InvalidInputError):
            DriftConfig(**bad)  # type: ignore[arg-type]


# -- the reference --------------------------------------------------------------------------


def test_reference_contents() -> None:
    df = frame("breast_cancer")
    reference = fit_reference(df, config=DriftConfig(bins=10))
    assert reference.n_rows == len(df) and list(reference.columns) == list(df.columns)
    col = reference.columns["mean area"]
    x = df["mean area"].to_numpy()
    assert (col.kind, col.n, col.null_count, col.count) == ("numeric", len(df), 0, len(df))
    assert np.array_equal(col.sample, np.sort(x))  # fewer rows than sample_size: the whole column
    assert col.mean == pytest.approx(x.mean(), rel=1e-12) and col.std == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert (col.min, col.max) == (x.min(), x.max())
    assert col.edges[0] == x.min() and col.edges[-1] == x.max() and len(col.edges) == 11
    assert np.all(np.diff(col.edges) > 0)
    assert col.bin_counts.sum() == len(df) and np.all(np.abs(col.bin_counts - len(df) / 10) <= 2)
    assert not col.sample.flags.writeable
    target = reference.columns["target"]
    assert target.kind == "categorical" and target.dtype == "string"
    assert target.categories == {"class_1": 357, "class_0": 212}


def test_reference_sample_is_uniform_and_independent_of_batching() -> None:
    n = 250_000
    values = np.random.default_rng(9).permutation(n).astype(float)
    table = pa.table({"v": values, "w": np.where(np.arange(n) % 4 == 0, np.nan, values)})
    cfg = DriftConfig(sample_size=20_000)
    whole = fit_reference(table, config=cfg, seed=3)
    col = whole.columns["v"]
    assert len(col.sample) == 20_000 and np.all(np.diff(col.sample) > 0)  # distinct values: no repeats
    assert stats.kstest(col.sample / n, "uniform").pvalue > 1e-3
    assert col.bin_counts.sum() == n
    w = whole.columns["w"]
    assert w.null_count == n // 4 and len(w.sample) == 20_000 and not np.isnan(w.sample).any()
    for size in (1000, 65_536, 100_001):
        streamed = fit_reference(iter(table.to_batches(max_chunksize=size)), config=cfg, seed=3)
        assert np.array_equal(streamed.columns["v"].sample, col.sample)
        assert np.array_equal(streamed.columns["w"].sample, w.sample)
        assert streamed.columns["v"].mean == pytest.approx(col.mean, rel=1e-12)
    assert not np.array_equal(fit_reference(table, config=cfg, seed=4).columns["v"].sample, col.sample)


def test_reference_round_trips_through_bytes() -> None:
    df = frame("diabetes")
    df["code"] = (df["age"] > 0).astype(int)
    df.loc[::7, "bmi"] = np.nan
    reference = fit_reference(df, categorical=["code"], config=DriftConfig(max_categories=1))
    data = reference.to_bytes()
    back = Reference.from_bytes(data)
    assert back == reference
    for name, col in reference.columns.items():
        other = back.columns[name]
        assert np.array_equal(other.sample, col.sample) and other.sample.dtype == np.float64
        assert np.array_equal(other.edges, col.edges) and np.array_equal(other.bin_counts, col.bin_counts)
        assert (other.mean, other.std, other.min, other.max) == (col.mean, col.std, col.min, col.max)
        assert list(other.categories.items()) == list(col.categories.items())
    assert back.columns["code"].categories.keys() == {"1", OTHER} or back.columns["code"].categories.keys() == {
        "0",
        OTHER,
    }
    _, cur = halves(frame("diabetes"), 0)
    cur = cur.assign(code=(cur["age"] > 0).astype(int))
    assert detect_drift(back, cur).to_dict() == detect_drift(reference, cur).to_dict()
    for garbage in (b"", b"not a reference", data[: len(data) // 2]):
        with pytest.raises(InvalidInputError):
            Reference.from_bytes(garbage)


def test_fit_reference_rejects_what_it_cannot_fit() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    with pytest.raises(InvalidInputError, match="'nope'"):
        fit_reference(df, columns=["x", "nope"])
    with pytest.raises(InvalidInputError, match="timestamp"):
        fit_reference(df, columns=["x", "t"])
    assert list(fit_reference(df).columns) == ["x"]  # not listed: skipped
    assert fit_reference(df, categorical=["t"]).columns["t"].kind == "categorical"
    with pytest.raises(InvalidInputError, match="empty iterable"):
        fit_reference(iter([]))
    with pytest.raises(InvalidInputError, match="duplicate"):
        fit_reference(pa.table([pa.array([1.0]), pa.array([2.0])], names=["a", "a"]))


def test_top_categories_and_other_bucket() -> None:
    rng = np.random.default_rng(10)
    names = np.array([f"c{i:02d}" for i in range(40)])
    ref = pd.DataFrame({"c": names[np.minimum(rng.geometric(0.15, 5000) - 1, 39)]})
    reference = fit_reference(ref, config=DriftConfig(max_categories=5))
    cats = reference.columns["c"].categories
    assert list(cats)[:5] == ["c00", "c01", "c02", "c03", "c04"] and list(cats)[-1] == OTHER
    assert sum(cats.values()) == 5000
    cur = pd.DataFrame({"c": names[np.minimum(rng.geometric(0.15, 2000) - 1, 39)]})
    col = detect_drift(reference, cur).columns["c"]
    assert col.drifted is False
    assert f"outside the reference's top 5 categories, counted in {OTHER}" in col.reason


def test_unseen_categories_are_counted_and_listed() -> None:
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], 2000, p=[0.5, 0.3, 0.2])})
    cur = pd.DataFrame(
        {"colour": rng.choice(["red", "green", "blue", "mauve", "teal"], 1000, p=[0.4, 0.25, 0.15, 0.18, 0.02])}
    )
    col = detect_drift(fit_reference(ref), cur).columns["colour"]
    assert col.drifted is True
    assert "2 categories not in the reference: 'mauve' (" in col.reason and "'teal' (" in col.reason
    assert col.hist["categories"][:3] == ["red", "green", "blue"] and set(col.hist["categories"][3:]) == {
        "mauve",
        "teal",
    }
    assert col.hist["reference"][3:] == [0.0, 0.0]


# -- input forms and bad input --------------------------------------------------------------


def test_every_input_form_gives_the_same_report() -> None:
    df = frame("wine")
    ref, cur = halves(df, 6)
    reference = fit_reference(ref)
    expected = detect_drift(reference, cur).to_dict()
    table = pa.Table.from_pandas(cur, preserve_index=False)
    assert detect_drift(reference, table).to_dict() == expected
    assert detect_drift(reference, table.to_batches()[0]).to_dict() == expected
    assert detect_drift(reference, iter(table.to_batches(max_chunksize=17))).to_dict() == expected
    assert fit_reference(pa.Table.from_pandas(ref, preserve_index=False)) == reference


def test_empty_and_small_windows_have_not_enough_data() -> None:
    df = frame("diabetes")
    reference = fit_reference(df)
    for window in (df.iloc[:0], pa.Table.from_pandas(df.iloc[:0], preserve_index=False), iter([])):
        report = detect_drift(reference, window)
        assert report.current_rows == 0 and report.drifted_columns == []
        assert report.share_drifted == 0.0 and not report.dataset_drift
        for col in report.columns.values():
            assert col.drifted is None and col.reason == "not enough data: 0 rows < 30"
            assert math.isnan(col.statistic) and col.p_value is None
    report = detect_drift(reference, df.iloc[:12])
    assert all(c.drifted is None and c.reason == "not enough data: 12 rows < 30" for c in report.columns.values())
    assert detect_drift(reference, df.iloc[:12], config=DriftConfig(min_rows=10)).columns["bmi"].drifted is False
    json.dumps(report.to_dict(), allow_nan=False)


def test_missing_extra_and_all_null_columns() -> None:
    df = frame("breast_cancer")
    ref, cur = halves(df, 7)
    reference = fit_reference(ref)
    cur = cur.drop(columns=["mean radius"]).assign(extra=1.0)
    cur["mean texture"] = np.nan
    cur["target"] = None
    report = detect_drift(reference, cur)
    missing = report.columns["mean radius"]
    assert missing.drifted is None and missing.reason == "missing from the current data"
    assert "extra" not in report.columns
    for name in ("mean texture", "target"):
        col = report.columns[name]
        assert col.null_share == 1.0 and col.current_rows == 0 and col.drifted is None
        assert col.reason.startswith("not enough data: 0 rows < 30")
    assert report.share_drifted == 0.0
    # a column with no values in the reference
    ref2 = ref.assign(empty=np.nan)
    col = detect_drift(fit_reference(ref2), cur.assign(empty=1.0)).columns["empty"]
    assert col.drifted is None and col.reason == "not enough data: the reference has 0 non-null values < 30"


def test_nan_and_inf_are_nulls() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=4000)
    reference = fit_reference(pa.table({"x": np.r_[x, [np.nan, np.inf, -np.inf]]}))
    col_ref = reference.columns["x"]
    assert (col_ref.n, col_ref.null_count) == (4003, 3)
    assert np.isfinite(col_ref.sample).all() and col_ref.max == x.max()
    y = rng.normal(0.3, 1, size=1000)
    dirty = np.r_[y, np.full(500, np.nan), np.full(300, np.inf), np.full(200, -np.inf)]
    col = detect_drift(reference, pa.table({"x": dirty})).columns["x"]
    assert col.null_share == 0.5 and col.current_rows == 1000
    assert col.statistic == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-12)
    ints = pa.table({"x": pa.array([1, None, 3] * 20, pa.int64())})
    col = detect_drift(reference, ints).columns["x"]
    assert col.current_rows == 40 and col.null_share == pytest.approx(1 / 3)


def test_constant_columns() -> None:
    reference = fit_reference(pd.DataFrame({"k": np.full(500, 2.5), "z": np.zeros(500)}))
    assert reference.columns["k"].std == 0.0
    assert list(reference.columns["k"].edges) == [2.5, 2.5] and list(reference.columns["k"].bin_counts) == [500]
    same = detect_drift(reference, pd.DataFrame({"k": np.full(100, 2.5), "z": np.zeros(100)}))
    assert same.drifted_columns == [] and same.columns["k"].statistic == 0.0
    moved = pd.DataFrame({"k": np.r_[np.full(60, 2.5), np.full(40, 3.0)], "z": np.r_[np.zeros(60), np.ones(40)]})
    report = detect_drift(reference, moved)
    assert report.drifted_columns == ["k", "z"] and report.columns["k"].statistic == pytest.approx(0.4)
    assert report.columns["k"].hist["current_above"] == pytest.approx(0.4)
    w = detect_drift(reference, moved, config=DriftConfig(numeric_method="wasserstein"))
    assert w.columns["k"].effect_size == pytest.approx(0.2 / 2.5)  # relative to the constant
    assert w.columns["z"].effect_size == pytest.approx(0.4)  # the constant is 0: absolute units
    psi = detect_drift(reference, moved, config=DriftConfig(numeric_method="psi"))
    assert math.isfinite(psi.columns["k"].effect_size) and psi.columns["k"].drifted


def test_single_category() -> None:
    reference = fit_reference(pd.DataFrame({"c": ["a"] * 200}))
    same = detect_drift(reference, pd.DataFrame({"c": ["a"] * 80})).columns["c"]
    assert same.drifted is False and same.p_value == 1.0 and "one category only" in same.reason
    moved = detect_drift(reference, pd.DataFrame({"c": ["a"] * 40 + ["b"] * 40})).columns["c"]
    assert moved.drifted is True and "1 category not in the reference: 'b' (40 rows)" in moved.reason
    js = detect_drift(
        reference, pd.DataFrame({"c": ["a"] * 80}), config=DriftConfig(categorical_method="jensenshannon")
    )
    assert js.columns["c"].effect_size == 0.0 and js.columns["c"].drifted is False


def test_type_changes_are_drift() -> None:
    df = frame("wine")
    ref, cur = halves(df, 8)
    reference = fit_reference(ref)
    cur = cur.assign(alcohol=cur["alcohol"].map(lambda v: f"{v:.1f}%"), target=cur["target"].str.len())
    report = detect_drift(reference, cur)
    alcohol, target = report.columns["alcohol"], report.columns["target"]
    assert (
        alcohol.drifted is True
        and alcohol.reason == "type changed: numeric in the reference, string in the current data"
    )
    assert (
        target.drifted is True and target.reason == "type changed: string in the reference, numeric in the current data"
    )
    assert "alcohol" in report.drifted_columns and alcohol.p_value is None
    # a column pandas cannot even convert (mixed types) is a type change, not a crash
    mixed = cur.assign(alcohol=["x", 1.5] * (len(cur) // 2) + ["y"] * (len(cur) % 2))
    col = detect_drift(reference, mixed).columns["alcohol"]
    assert col.drifted is True and col.reason.startswith("type changed")
    json.dumps(report.to_dict(), allow_nan=False)


def test_column_reference_equality_covers_arrays() -> None:
    a = ColumnReference(kind="numeric", n=3, null_count=0, sample=np.array([1.0, 2.0, 3.0]), mean=2.0)
    b = ColumnReference(kind="numeric", n=3, null_count=0, sample=np.array([1.0, 2.0, 4.0]), mean=2.0)
    assert a == ColumnReference(kind="numeric", n=3, null_count=0, sample=[1.0, 2.0, 3.0], mean=2.0)  # type: ignore[arg-type]
    assert a != b


def test_large_frames_and_other_column_types() -> None:
    rng = np.random.default_rng(13)
    n = 60_000  # x 20 columns: above the size converted in one go, so read column by column
    ref = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(17)})
    ref["flag"] = rng.random(n) < 0.3
    ref["kind"] = pd.Categorical(rng.choice(["a", "b", "c"], n))
    ref["code"] = rng.integers(0, 4, n)
    cur = ref.sample(n=20_000, random_state=1).reset_index(drop=True)
    cur["flag"] = rng.random(len(cur)) < 0.5
    reference = fit_reference(ref, categorical=["code"])
    assert [reference.columns[c].dtype for c in ("flag", "kind", "code")] == ["boolean", "string", "numeric"]
    assert reference.columns["flag"].categories.keys() == {"true", "false"}
    report = detect_drift(reference, cur)
    assert report.drifted_columns == ["flag"]
    assert report.to_dict() == detect_drift(reference, pa.Table.from_pandas(cur, preserve_index=False)).to_dict()
    # duplicate names in a window: the first one counts
    dup = pd.concat([cur[["x0"]], cur[["x0"]] + 5.0], axis=1)
    assert detect_drift(reference, dup).columns["x0"].drifted is False


def test_numeric_hist_and_type_change_within_a_stream() -> None:
    df = frame("breast_cancer")
    ref, cur = halves(df, 9)
    reference = fit_reference(ref)
    hist = detect_drift(reference, cur.assign(**{"mean area": cur["mean area"] * 3})).columns["mean area"].hist
    assert len(hist["edges"]) == len(hist["reference"]) + 1 == len(hist["current"]) + 1
    assert sum(hist["reference"]) == pytest.approx(1.0)
    assert sum(hist["current"]) + hist["current_below"] + hist["current_above"] == pytest.approx(1.0)
    assert hist["current_above"] > 0.2  # tripled areas: many beyond the reference maximum
    good = pa.Table.from_pandas(cur.iloc[:100], preserve_index=False).to_batches()[0]
    bad = pa.Table.from_pandas(cur.iloc[100:].assign(**{"mean area": "n/a"}), preserve_index=False).to_batches()[0]
    col = detect_drift(reference, iter([good, bad])).columns["mean area"]
    assert col.drifted is True and col.reason.startswith("type changed: numeric in the reference, string")
