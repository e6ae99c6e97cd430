"""Calibration: without any shift, the drift tests raise false alarms at (no more than) their nominal rate.

Each check draws many reference/window pairs from the same distribution
(synthetic NumPy data, and random halves of scikit-learn's bundled datasets),
runs the real :func:`fit_reference` and :func:`detect_drift` with the
effect-size floor switched off, and counts how often a column is flagged. A
count is accepted when it is within the binomial upper 0.1 % quantile for the
nominal rate (with a Bonferroni split of that risk over the columns checked),
so a correct test fails these checks with probability below 0.1 %; all seeds
are fixed, so the outcome is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from loopml.monitoring.drift import DEFAULT_MIN_EFFECT, DriftConfig, detect_drift, fit_reference

ALPHA = 0.05
REPS = 200
NO_FLOOR = {method: 0.0 for method in DEFAULT_MIN_EFFECT}
PER_COLUMN = DriftConfig(alpha=ALPHA, correction="none", min_effect=NO_FLOOR)  # one column: no correction
WITH_BH = DriftConfig(alpha=ALPHA, correction="bh", min_effect=NO_FLOOR)

Split = Callable[[int], tuple[pa.Table, pa.Table]]


def upper(rate: float, trials: int, tests: int = 1, risk: float = 1e-3) -> float:
    """The largest share of false alarms a test with false-alarm rate ``rate`` reaches with probability ``risk``."""
    return float(stats.binom.ppf(1 - risk / tests, trials, rate)) / trials


def false_alarms(
    split: Split, categorical: list[str], reps: int = REPS, sample_size: int = 100_000
) -> tuple[dict[str, float], float]:
    """Per-column false-alarm rates of the uncorrected tests, and the rate of windows with any column flagged under BH.

    One report per window gives both: each column's ``p_value`` is its uncorrected test (with the
    floor at 0, "flagged without correction" is ``p_value < alpha``), ``drifted_columns`` the BH verdict.
    """
    flags: dict[str, int] = {}
    any_bh = 0
    for rep in range(reps):
        ref, cur = split(rep)
        reference = fit_reference(ref, categorical=categorical, config=DriftConfig(sample_size=sample_size), seed=rep)
        report = detect_drift(reference, cur, config=WITH_BH)
        for name, col in report.columns.items():
            assert col.p_value is not None, col.reason
            flags[name] = flags.get(name, 0) + (col.p_value < ALPHA)
        any_bh += bool(report.drifted_columns)
    return {name: n / reps for name, n in flags.items()}, any_bh / reps


def check(rates: dict[str, float], any_bh: float) -> None:
    limit = upper(ALPHA, REPS, tests=len(rates))
    too_high = {name: rate for name, rate in rates.items() if rate > limit}
    assert not too_high, f"false-alarm rates above {limit:.3f}: {too_high}"
    # averaged over the columns (correlated, so judged like a single column)
    assert np.mean(list(rates.values())) <= upper(ALPHA, REPS)
    # BH: with no column shifted, a window has any flagged column at most alpha of the time
    assert any_bh <= upper(ALPHA, REPS), any_bh


# -- synthetic ------------------------------------------------------------------------------


def synthetic(n: int, rng: np.random.Generator) -> pa.Table:
    colours = np.array(["red", "green", "blue", "white", "black"])
    rare = np.array([f"r{i}" for i in range(15)])
    return pa.table(
        {
            "normal": rng.normal(size=n),
            "lognormal": rng.lognormal(sigma=1.2, size=n),
            "student_t3": rng.standard_t(3, size=n),
            "uniform": rng.uniform(size=n),
            "poisson": rng.poisson(2.0, size=n).astype(np.int64),  # ties: KS is conservative
            "bimodal": np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(1, 1, n)),
            "binary": rng.random(n) < 0.2,
            "colour": colours[rng.choice(5, n, p=[0.4, 0.25, 0.2, 0.1, 0.05])],
            # geometric shares: the rare categories need pooling (expected counts < 5)
            "rare": rare[np.minimum(rng.geometric(0.35, n) - 1, 14)],
        }
    )


def test_synthetic_data_false_alarm_rates() -> None:
    def split(rep: int) -> tuple[pa.Table, pa.Table]:
        rng = np.random.default_rng(rep)
        return synthetic(500, rng), synthetic(200, rng)

    rates, any_bh = false_alarms(split, categorical=[])
    check(rates, any_bh)


def test_false_alarm_rates_against_a_sampled_reference() -> None:
    # the reference has more rows than it keeps: the KS test runs against its uniform sample
    def split(rep: int) -> tuple[pa.Table, pa.Table]:
        rng = np.random.default_rng(10_000 + rep)
        return synthetic(3000, rng), synthetic(400, rng)

    rates, any_bh = false_alarms(split, categorical=[], sample_size=300)
    check(rates, any_bh)


# -- real data: random halves of scikit-learn's datasets ------------------------------------


def real(name: str) -> tuple[pa.Table, list[str]]:
    loader = {"breast_cancer": load_breast_cancer, "wine": load_wine, "diabetes": load_diabetes}[name]
    df: pd.DataFrame = loader(as_frame=True).frame
    if name == "diabetes":
        df["sex"] = np.where(df["sex"] > 0, "m", "f")
        return pa.Table.from_pandas(df, preserve_index=False), []
    return pa.Table.from_pandas(df, preserve_index=False), ["target"]  # integer class labels


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
def test_real_data_false_alarm_rates(name: str) -> None:
    table, categorical = real(name)

    def split(rep: int) -> tuple[pa.Table, pa.Table]:
        idx = np.random.default_rng(rep).permutation(table.num_rows)
        h = table.num_rows // 2
        return table.take(idx[:h]), table.take(idx[h:])

    rates, any_bh = false_alarms(split, categorical)
    check(rates, any_bh)


# -- two-sample versus one-sample chi-squared -----------------------------------------------


def one_sample_chi2_p(ref: np.ndarray, cur: np.ndarray) -> float:
    """The naive test: the window's counts against the reference's shares taken as exact."""
    seen = ref > 0
    expected = ref[seen] / ref[seen].sum() * cur[seen].sum()
    return float(stats.chisquare(cur[seen], expected).pvalue)


def chi2_false_alarms(draw: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """False-alarm rates of loopml's two-sample test and of the one-sample test, on the same draws."""
    two = one = 0
    for rep in range(REPS):
        ref, cur = draw(np.random.default_rng(rep))
        reference = fit_reference(pd.DataFrame({"c": ref}))
        col = detect_drift(reference, pd.DataFrame({"c": cur}), config=PER_COLUMN).columns["c"]
        two += bool(col.drifted)
        labels = sorted(set(ref) | set(cur))
        ref_counts = np.array([np.sum(ref == v) for v in labels])
        cur_counts = np.array([np.sum(cur == v) for v in labels])
        one += one_sample_chi2_p(ref_counts, cur_counts) < ALPHA
    return two / REPS, one / REPS


def test_one_sample_chi2_inflates_false_alarms_and_two_sample_does_not() -> None:
    labels = np.array(["a", "b", "c", "d", "e"])
    shares = [0.35, 0.25, 0.2, 0.12, 0.08]

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # a smallish reference (150 rows) and a larger window (1000 rows) of the same distribution
        return labels[rng.choice(5, 150, p=shares)], labels[rng.choice(5, 1000, p=shares)]

    two, one = chi2_false_alarms(draw)
    assert two <= upper(ALPHA, REPS), two
    # the reference shares are off by sampling noise, which the one-sample test mistakes for drift
    assert one > 5 * ALPHA, one


def test_one_sample_chi2_inflation_on_real_data() -> None:
    # the wine cultivars: a 40-row reference against the remaining 138 rows
    classes = load_wine().target.astype(str)

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.permutation(len(classes))
        return classes[idx[:40]], classes[idx[40:]]

    two, one = chi2_false_alarms(draw)
    assert two <= upper(ALPHA, REPS), two
    assert one > 2 * ALPHA, one
