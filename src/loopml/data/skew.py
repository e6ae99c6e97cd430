"""Training/serving skew: how far each column moved between two stored profiles.

Only the profiles are needed, never the data behind them, so a reference
profile stored with a dataset version can be compared with the profile of
any later batch.

* **numeric** columns: Population Stability Index over the reference
  histogram's bins, plus one open bin below and one above the reference range
  (where the reference has no mass, so current values outside the training
  range raise the index). The current column's share of each bin comes from
  its own profile: a monotone, piecewise-linear CDF through its histogram
  edges (cumulative counts), refined by its quantiles where they fall inside
  a bin. Between those points values are taken as uniform, so a share is exact
  where the two profiles' edges coincide and otherwise off by at most the
  count of the current bin it cuts. Empty bins get a share of ``1e-4`` so the
  logarithm stays finite. Like any binned PSI it grows with sampling noise on
  small data (about ``bins / n`` for two samples of ``n`` rows).
* **string, categorical, boolean** columns: Jensen–Shannon distance (base 2,
  between 0 and 1) between the value frequencies. Each value in either top
  list is its own bucket when its frequency is known on both sides (it is in
  that side's top list, or that side's top list covers every value, so it is
  0 there); all other values are pooled into one "other" bucket.
* a column in only one of the profiles is reported with metric ``"missing"``;
  a column whose kind changed with metric ``"kind"``; both count as drifted.
* a null rate that moved by more than ``null_rate_threshold`` (absolute) adds
  a ``"null_rate"`` finding.
* datetime and other columns get a finding with metric ``"none"`` (no
  distribution is stored for them), never drifted.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from loopml.data.models import ColumnProfile, Profile, SkewFinding

__all__ = ["compare_profiles", "jensen_shannon", "population_stability_index"]

#: share given to an empty bin in the PSI, so that ``log`` stays finite
PSI_EPSILON = 1e-4

_CATEGORY_KINDS = ("string", "categorical", "boolean")


def compare_profiles(
    reference: Profile,
    current: Profile,
    *,
    psi_threshold: float = 0.2,
    js_threshold: float = 0.1,
    null_rate_threshold: float = 0.1,
) -> list[SkewFinding]:
    """Compare two profiles column by column.

    Args:
        reference: the profile the model was trained on.
        current: the profile of the data it sees now.
        psi_threshold: numeric columns with a PSI above this are drifted (0.1 is a
            common "watch" level, 0.2 / 0.25 "act").
        js_threshold: string, categorical and boolean columns with a
            Jensen–Shannon distance above this are drifted.
        null_rate_threshold: absolute change in null rate above which a
            ``"null_rate"`` finding is added.

    Returns:
        One finding per column in either profile (plus null-rate findings),
        drifted ones first, then by value, largest first.
    """
    findings: list[SkewFinding] = []
    names = list(reference.columns) + [c for c in current.columns if c not in reference.columns]
    for name in names:
        ref, cur = reference.columns.get(name), current.columns.get(name)
        if ref is None or cur is None:
            present = ref if ref is not None else cur
            assert present is not None
            detail = "in the reference, missing from the current data" if cur is None else "new: not in the reference"
            findings.append(SkewFinding(name, present.kind, "missing", 1.0, 0.0, True, detail))
            continue
        findings.append(_column_finding(ref, cur, psi_threshold, js_threshold))
        moved = cur.null_rate - ref.null_rate
        if abs(moved) > null_rate_threshold:
            detail = f"null rate {ref.null_rate:.1%} → {cur.null_rate:.1%}"
            findings.append(SkewFinding(name, ref.kind, "null_rate", abs(moved), null_rate_threshold, True, detail))
    findings.sort(key=lambda f: (not f.drifted, -f.value))
    return findings


def _column_finding(ref: ColumnProfile, cur: ColumnProfile, psi_threshold: float, js_threshold: float) -> SkewFinding:
    name = ref.name
    if ref.kind != cur.kind:
        return SkewFinding(name, cur.kind, "kind", 1.0, 0.0, True, f"kind changed: {ref.kind} → {cur.kind}")
    if ref.kind == "numeric":
        if ref.histogram is None or cur.count == 0:
            side = "reference" if ref.histogram is None else "current data"
            return SkewFinding(name, "numeric", "psi", 0.0, psi_threshold, False, f"no values in the {side}")
        psi, outside = _numeric_psi(ref, cur)
        detail = f"PSI {psi:.3f}; mean {_num(ref.mean)} → {_num(cur.mean)}, std {_num(ref.std)} → {_num(cur.std)}"
        if outside >= 0.005:
            detail += f"; {outside:.1%} of current values outside the reference range"
        return SkewFinding(name, "numeric", "psi", psi, psi_threshold, psi > psi_threshold, detail)
    if ref.kind in _CATEGORY_KINDS:
        if ref.count == 0 or cur.count == 0:
            side = "reference" if ref.count == 0 else "current data"
            return SkewFinding(name, ref.kind, "jensen_shannon", 0.0, js_threshold, False, f"no values in the {side}")
        labels, p, q = _category_frequencies(ref, cur)
        js = jensen_shannon(p, q)
        return SkewFinding(name, ref.kind, "jensen_shannon", js, js_threshold, js > js_threshold, _moves(labels, p, q))
    return SkewFinding(name, ref.kind, "none", 0.0, 0.0, False, f"no distribution statistics for {ref.kind} columns")


# -- numeric --------------------------------------------------------------------------


def population_stability_index(
    expected: npt.ArrayLike, actual: npt.ArrayLike, *, epsilon: float = PSI_EPSILON
) -> float:
    """``Σ (a - e) ln(a / e)`` over bins, with both share vectors normalised and floored at ``epsilon``."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric_psi(ref: ColumnProfile, cur: ColumnProfile) -> tuple[float, float]:
    """PSI of the current column over the reference bins, and the current share outside the reference range."""
    assert ref.histogram is not None
    edges = np.asarray(ref.histogram.edges, dtype=np.float64)
    ref_share = np.concatenate([[0.0], np.asarray(ref.histogram.counts, dtype=np.float64), [0.0]])
    cdf = _cdf_knots(cur)
    at_edges = np.interp(edges, cdf[0], cdf[1], left=0.0, right=1.0)
    cur_share = np.diff(np.concatenate([[0.0], at_edges, [1.0]]))
    cur_share = np.maximum(cur_share, 0.0)
    outside = float(cur_share[0] + cur_share[-1])
    return population_stability_index(ref_share, cur_share), outside


def _cdf_knots(col: ColumnProfile) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Points ``(x, F(x))`` of a column's approximate CDF, increasing in both.

    The histogram's edges with its cumulative shares, refined by each quantile
    that falls strictly inside a bin and agrees with the bin's shares (so the
    CDF at the histogram's own edges is exactly the histogram's); without a
    histogram, the quantiles between min and max.
    """
    h = col.histogram
    if h is not None and any(h.counts):
        x = np.asarray(h.edges, dtype=np.float64)
        cum = np.concatenate([[0.0], np.cumsum(h.counts, dtype=np.float64)])
        f = cum / cum[-1]
        extra_x, extra_f = [], []
        for q, v in col.quantiles.items():
            xq, fq = float(v), float(q)
            j = int(np.searchsorted(x, xq, side="right")) - 1
            if 0 <= j < len(x) - 1 and x[j] < xq < x[j + 1] and f[j] < fq < f[j + 1]:
                extra_x.append(xq)
                extra_f.append(fq)
        if extra_x:
            x = np.concatenate([x, extra_x])
            f = np.concatenate([f, extra_f])
            order = np.argsort(x, kind="stable")
            x, f = x[order], f[order]
        return x, f
    pts = sorted((float(v), float(q)) for q, v in col.quantiles.items())
    if isinstance(col.min, int | float) and isinstance(col.max, int | float):
        pts = [(float(col.min), 0.0), *pts, (float(col.max), 1.0)]
    x = np.asarray([p[0] for p in pts], dtype=np.float64)
    f = np.maximum.accumulate(np.asarray([p[1] for p in pts], dtype=np.float64))
    ok = np.isfinite(x)
    return x[ok], f[ok]


# -- categories ------------------------------------------------------------------------


def jensen_shannon(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """Jensen–Shannon distance (square root of the divergence, base 2; between 0 and 1)."""
    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(q, dtype=np.float64)
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: npt.NDArray[np.float64]) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return math.sqrt(max(0.0, (kl(a) + kl(b)) / 2))


def _category_frequencies(
    ref: ColumnProfile, cur: ColumnProfile
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Bucket labels and the two frequency vectors (the last bucket is "other")."""
    rt = {v: c for v, c in ref.top}
    ct = {v: c for v, c in cur.top}
    r_complete = sum(rt.values()) >= ref.count
    c_complete = sum(ct.values()) >= cur.count
    values = list(rt) + [v for v in ct if v not in rt]
    known = [v for v in values if (v in rt or r_complete) and (v in ct or c_complete)]
    r = [rt.get(v, 0) for v in known]
    c = [ct.get(v, 0) for v in known]
    r.append(max(ref.count - sum(r), 0))
    c.append(max(cur.count - sum(c), 0))
    labels = [str(v) for v in known] + ["(other)"]
    return labels, np.asarray(r, np.float64) / ref.count, np.asarray(c, np.float64) / cur.count


def _moves(labels: list[str], p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> str:
    """The three buckets that moved most, e.g. ``'a' 50.0% → 20.0%``."""
    order = np.argsort(-np.abs(q - p), kind="stable")[:3]
    parts = [f"{labels[i]!r} {p[i]:.1%} → {q[i]:.1%}" for i in order if abs(q[i] - p[i]) >= 0.0005]
    return "; ".join(parts) if parts else "same frequencies"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
