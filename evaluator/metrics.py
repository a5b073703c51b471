"""Ranking metrics for binary labels: AUC with DeLong confidence intervals, the paired DeLong
test, log-loss and ROC points (SPEC "Metrics").

Every public function is pure and works in three stages, as scikit-learn's `_ranking.py` does:
validate (shapes, label values, finite scores) → format (boolean labels, float64 scores, sorted
per class) → compute. Degenerate input is explicit: labels of one class give an `AucResult`
whose `auc` is None with a `reason`, never NaN and never an exception.

How it is computed. With ``m`` positives and ``n`` negatives, the AUC is the Mann–Whitney
statistic ``U / (m n)`` where every (positive, negative) pair scores 1 when the positive ranks
higher and 1/2 when tied; that is exactly `sklearn.metrics.roc_auc_score`. DeLong's variance
uses the structural components (Sun & Xu, 2014, who obtain them from midranks):

* ``V10(x) = (#negatives below x + #negatives tied with x / 2) / n`` for each positive ``x``;
* ``V01(y) = (#positives above y + #positives tied with y / 2) / m`` for each negative ``y``;
* ``Var(AUC) = S10 / m + S01 / n`` with ``S10``, ``S01`` the sample variances (ddof 1).

Sun & Xu's midrank differences ``T_Z - T_X`` are exactly these counts. Rather than one argsort
of everything, the code sorts each class with `numpy.sort` (several times faster than an argsort)
and counts with binary searches over the *distinct* positive scores, so the work after the
sorts is O(k log n) for k distinct positive scores, and ``U`` is an exact integer.

>>> import numpy as np
>>> r = auc_with_ci(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
>>> r.auc
0.75
>>> auc_with_ci(np.array([1, 1]), np.array([0.2, 0.9])).reason
'only one class in the labels: 2 positives, no negatives; AUC is undefined'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

LOGLOSS_EPS = 1e-7

LabelArray = npt.NDArray[np.integer] | npt.NDArray[np.bool_] | npt.NDArray[np.floating]
ScoreArray = npt.NDArray[np.floating]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class AucResult:
    """AUC with its DeLong variance and confidence interval.

    `auc`, `variance`, `ci_low`, `ci_high` are None when the AUC is undefined (one class only);
    `variance` alone is None (and the interval is [0, 1]) when a class holds a single row, since
    a sample variance needs two. `reason` says which case applies.
    """

    auc: float | None
    variance: float | None
    ci_low: float | None
    ci_high: float | None
    n_pos: int
    n_neg: int
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.auc is not None


@dataclass(frozen=True)
class PairedTest:
    """Paired DeLong test of two score vectors on the same rows and labels.

    `difference` = auc_a − auc_b; `z` = difference / sqrt(variance of the difference); `p_value`
    is two-sided. When the difference has no variance (identical structural components, e.g. the
    same ranking) `z` is 0 and `p_value` is 1: the rows give no evidence that the two differ.
    When the labels hold one class, the AUCs are None, `p_value` is 1 and `reason` says why.
    """

    auc_a: float | None
    auc_b: float | None
    difference: float
    variance: float
    z: float
    p_value: float
    n_pos: int
    n_neg: int
    reason: str | None = None


# --------------------------------------------------------------------------- validate / format


def _validate(labels: LabelArray, scores: ScoreArray, name: str = "scores") -> tuple[
    npt.NDArray[np.bool_], FloatArray
]:
    y = np.asarray(labels)
    s = np.asarray(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"labels and {name} must be 1-D; got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and {name} ({s.size}) differ in length")
    if y.dtype != np.bool_:
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
            raise ValueError(f"labels must be 0/1 numbers or booleans, got dtype {y.dtype}")
        bad = (y != 0) & (y != 1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"labels must be 0 or 1: {int(bad.sum())} are not (first at index {first}: "
                f"{y[first]!r})"
            )
        y = y.astype(bool)
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {s.dtype}")
    values: FloatArray = np.asarray(s, dtype=np.float64)
    s = values
    finite = np.isfinite(s)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{name} must be finite: {int((~finite).sum())} are not (first at index {first}: "
            f"{s[first]!r})"
        )
    return np.asarray(y, dtype=np.bool_), values


def _one_class_reason(n_pos: int, n_neg: int) -> str | None:
    if n_pos and n_neg:
        return None
    if not n_pos and not n_neg:
        return "no rows; AUC is undefined"
    if not n_neg:
        return f"only one class in the labels: {n_pos} positives, no negatives; AUC is undefined"
    return f"only one class in the labels: {n_neg} negatives, no positives; AUC is undefined"


def _z_for_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


# --------------------------------------------------------------------------------- compute


@dataclass(frozen=True)
class _Counts:
    """For each distinct positive score u_k (ascending): positives with it, and the negatives
    strictly below it and tied with it. Everything DeLong needs for one AUC."""

    c_pos: npt.NDArray[np.int64]
    neg_below: npt.NDArray[np.int64]
    neg_tied: npt.NDArray[np.int64]
    n_pos: int
    n_neg: int


def _distinct(sorted_values: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    if sorted_values.size == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_values)) + 1))
    counts = np.diff(np.concatenate((starts, [sorted_values.size]))).astype(np.int64)
    return sorted_values[starts], counts


def _counts(pos_sorted: FloatArray, neg_sorted: FloatArray) -> _Counts:
    values, c_pos = _distinct(pos_sorted)
    lo = np.searchsorted(neg_sorted, values, side="left").astype(np.int64)
    hi = np.searchsorted(neg_sorted, values, side="right").astype(np.int64)
    return _Counts(c_pos, lo, hi - lo, int(pos_sorted.size), int(neg_sorted.size))


def _result_from_counts(counts: _Counts, z_level: float) -> AucResult:
    m, n = counts.n_pos, counts.n_neg
    reason = _one_class_reason(m, n)
    if reason is not None:
        return AucResult(None, None, None, None, m, n, reason)
    c, below, tied = counts.c_pos, counts.neg_below, counts.neg_tied
    # 2U is an integer: sum over positives of 2·(negatives below) + (negatives tied).
    twice_u = int(np.dot(c, 2 * below + tied))
    auc = twice_u / (2.0 * m * n)
    if m < 2 or n < 2:
        few = "positive" if m < 2 else "negative"
        return AucResult(
            auc, None, 0.0, 1.0, m, n,
            f"only 1 {few}: DeLong variance is undefined, the interval is [0, 1]",
        )
    v10 = (below + 0.5 * tied) / n
    s10 = float(np.dot(c, (v10 - auc) ** 2)) / (m - 1)
    # Negatives fall either on a distinct positive score (tied) or in the gap below one of them
    # (or above all of them); every negative of one group shares the same V01.
    cum_before = np.cumsum(c) - c
    v01_tied = (m - cum_before - 0.5 * c) / m
    gap = below - np.concatenate(([0], below[:-1] + tied[:-1]))
    v01_gap = (m - cum_before) / m
    tail = n - int(below[-1] + tied[-1])
    s01 = (
        float(np.dot(tied, (v01_tied - auc) ** 2))
        + float(np.dot(gap, (v01_gap - auc) ** 2))
        + tail * auc**2
    ) / (n - 1)
    variance = s10 / m + s01 / n
    half = z_level * math.sqrt(variance)
    return AucResult(
        auc, variance, max(0.0, auc - half), min(1.0, auc + half), m, n, None
    )


def auc_with_ci(labels: LabelArray, scores: ScoreArray, level: float = 0.95) -> AucResult:
    """ROC AUC (ties count one half) with DeLong's variance and a `level` confidence interval.

    The interval is AUC ± z·sqrt(variance), z the normal quantile, clipped to [0, 1].

    >>> import numpy as np
    >>> r = auc_with_ci(np.array([0, 1, 0, 1, 1]), np.array([0.2, 0.2, 0.1, 0.9, 0.7]))
    >>> round(r.auc, 4), r.n_pos, r.n_neg
    (0.9167, 3, 2)
    """
    z = _z_for_level(level)
    y, s = _validate(labels, scores)
    negatives, positives = _sorted_classes(y.view(np.uint8), s, 2)
    return _result_from_counts(_counts(positives, negatives), z)


def auc_partition(
    labels: LabelArray,
    scores: ScoreArray,
    part: npt.NDArray[np.bool_],
    level: float = 0.95,
    *,
    scratch: npt.NDArray[np.float64] | None = None,
) -> tuple[AucResult, AucResult, AucResult]:
    """AUCs with intervals on all rows, on the rows where `part` is True, and on the rest.

    `scratch`, a float64 array of at least as many elements as `scores`, is used for the sort
    instead of a fresh array (whose page faults cost more than the sort on a large test set).

    Equal to three calls of `auc_with_ci` but cheaper: each row is sorted once, within its side
    of the partition. Counts on all rows are the sums of the two sides' counts (a binary search
    in each), so the negatives of all rows together are never sorted.

    >>> import numpy as np
    >>> y = np.array([0, 1, 0, 1, 1, 0]); s = np.array([.1, .8, .3, .2, .9, .5])
    >>> full, part, rest = auc_partition(y, s, np.array([1, 1, 1, 0, 0, 0], dtype=bool))
    >>> full.auc == auc_with_ci(y, s).auc, part.auc, rest.auc
    (True, 1.0, 0.5)
    """
    z = _z_for_level(level)
    y, s = _validate(labels, scores)
    p = np.asarray(part)
    if p.dtype != np.bool_ or p.shape != y.shape:
        raise ValueError(f"part must be a boolean mask of shape {y.shape}, got {p.dtype} {p.shape}")
    # Class codes 0 … 3: (negative, rest), (negative, part), (positive, rest), (positive, part).
    code = np.left_shift(y.view(np.uint8), np.uint8(1))
    code |= p.view(np.uint8)
    keys = None if scratch is None else scratch[: s.size].view(np.uint64)
    neg_rest, neg_part, pos_rest, pos_part = _sorted_classes(code, s, 4, keys)
    neg_sides, pos_sides = (neg_part, neg_rest), (pos_part, pos_rest)
    full_pos = np.sort(np.concatenate(pos_sides))
    results = [
        _result_from_counts(_counts_in(full_pos, neg_sides), z),
        _result_from_counts(_counts(pos_sides[0], neg_sides[0]), z),
        _result_from_counts(_counts(pos_sides[1], neg_sides[1]), z),
    ]
    return results[0], results[1], results[2]


# Doubles in [0, 1] as unsigned integers sort as the doubles do and leave the top two bits
# clear (1.0 is 0x3FF0…0): room for a class code, so that one sort orders every class at once.
_ONE_BITS = int(np.float64(1.0).view(np.uint64))
_CODE_SHIFT = np.uint64(62)
_VALUE_MASK = np.uint64((1 << 62) - 1)


def _sorted_classes(
    code: npt.NDArray[np.uint8], s: FloatArray, classes: int,
    keys: npt.NDArray[np.uint64] | None = None,
) -> list[FloatArray]:
    """The scores of each class (``code`` 0 … classes − 1, at most 4), each sorted ascending.

    Scores in [0, 1] (probabilities, the usual case) take one sort of 64-bit keys, the class
    code in the top bits and the score's bits below: each class comes out as one sorted run,
    with no boolean-mask copy of the scores per class. Other scores are copied per class and
    sorted one class at a time."""
    bits = s.view(np.uint64)
    if s.size == 0 or int(bits.max()) > _ONE_BITS:
        return [np.sort(s[code == c]) for c in range(classes)]
    keys = np.left_shift(code, _CODE_SHIFT, dtype=np.uint64, out=keys)
    keys |= bits
    keys.sort()
    bounds = np.searchsorted(keys, np.arange(1, classes, dtype=np.uint64) << _CODE_SHIFT)
    keys &= _VALUE_MASK
    values = keys.view(np.float64)
    edges = [0, *(int(b) for b in bounds), values.size]
    return [values[edges[c] : edges[c + 1]] for c in range(classes)]


def _counts_in(pos_sorted: FloatArray, neg_parts: tuple[FloatArray, ...]) -> _Counts:
    """`_counts` against the union of several sorted arrays of negatives."""
    values, c_pos = _distinct(pos_sorted)
    below = np.zeros(values.size, dtype=np.int64)
    tied = np.zeros(values.size, dtype=np.int64)
    for neg in neg_parts:
        lo = np.searchsorted(neg, values, side="left")
        below += lo
        tied += np.searchsorted(neg, values, side="right") - lo
    return _Counts(c_pos, below, tied, int(pos_sorted.size), sum(n.size for n in neg_parts))


def structural_components(
    labels: LabelArray, scores: ScoreArray
) -> tuple[FloatArray, FloatArray]:
    """DeLong's structural components: V10 for each positive and V01 for each negative, in the
    order the rows appear. Their means both equal the AUC.

    >>> import numpy as np
    >>> v10, v01 = structural_components(np.array([1, 0, 1, 0]), np.array([.9, .1, .5, .5]))
    >>> v10.tolist(), v01.tolist()
    ([1.0, 0.75], [1.0, 0.75])
    """
    y, s = _validate(labels, scores)
    return _components(y, s)


def _components(y: npt.NDArray[np.bool_], s: FloatArray) -> tuple[FloatArray, FloatArray]:
    pos, neg = s[y], s[~y]
    pos_sorted, neg_sorted = np.sort(pos), np.sort(neg)
    m, n = pos.size, neg.size
    lo = np.searchsorted(neg_sorted, pos, side="left")
    hi = np.searchsorted(neg_sorted, pos, side="right")
    v10 = (lo + 0.5 * (hi - lo)) / max(n, 1)
    # Binary searches with keys in random order miss the cache on every step (13 s for 8 M
    # keys); searching the keys in sorted order and scattering back is an order faster.
    order = np.argsort(neg)
    neg_in_order = neg[order]
    lo = np.searchsorted(pos_sorted, neg_in_order, side="left")
    hi = np.searchsorted(pos_sorted, neg_in_order, side="right")
    v01 = np.empty(n, dtype=np.float64)
    v01[order] = ((m - hi) + 0.5 * (hi - lo)) / max(m, 1)
    return v10.astype(np.float64), v01


def delong_paired_test(
    labels: LabelArray, scores_a: ScoreArray, scores_b: ScoreArray
) -> PairedTest:
    """Paired DeLong test: do two score vectors on the same rows have different AUCs?

    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 0, 1])
    >>> s = np.array([.1, .2, .8, .9, .3, .7])
    >>> t = delong_paired_test(y, s, s ** 2)
    >>> t.difference, t.p_value
    (0.0, 1.0)
    """
    y, a = _validate(labels, scores_a, "scores_a")
    _, b = _validate(labels, scores_b, "scores_b")
    m = int(y.sum())
    n = int(y.size - m)
    reason = _one_class_reason(m, n)
    if reason is not None:
        return PairedTest(None, None, 0.0, 0.0, 0.0, 1.0, m, n, reason)
    auc_a = _result_from_counts(_counts(np.sort(a[y]), np.sort(a[~y])), 1.96).auc
    auc_b = _result_from_counts(_counts(np.sort(b[y]), np.sort(b[~y])), 1.96).auc
    assert auc_a is not None and auc_b is not None
    v10_a, v01_a = _components(y, a)
    v10_b, v01_b = _components(y, b)
    difference = auc_a - auc_b
    # The components come from integer counts, so one ranking gives bit-identical ones.
    if np.array_equal(v10_a, v10_b) and np.array_equal(v01_a, v01_b):
        return PairedTest(auc_a, auc_b, difference, 0.0, 0.0, 1.0, m, n, None)
    d10 = v10_a - v10_b
    d01 = v01_a - v01_b
    var10 = float(np.var(d10, ddof=1)) if m > 1 else 0.0
    var01 = float(np.var(d01, ddof=1)) if n > 1 else 0.0
    variance = var10 / m + var01 / n
    if variance <= 0.0:
        return PairedTest(auc_a, auc_b, difference, 0.0, 0.0, 1.0, m, n, None)
    z = difference / math.sqrt(variance)
    p_value = math.erfc(abs(z) / math.sqrt(2.0))
    return PairedTest(auc_a, auc_b, difference, variance, z, p_value, m, n, None)


def log_loss(labels: LabelArray, probabilities: ScoreArray) -> float | None:
    """Mean binary cross-entropy, probabilities clipped to [1e-7, 1 − 1e-7]; None for no rows.

    >>> import numpy as np
    >>> round(log_loss(np.array([1, 0]), np.array([0.9, 0.2])), 6)
    0.164252
    """
    y, p = _validate(labels, probabilities, "probabilities")
    if y.size == 0:
        return None
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    clipped = np.clip(p, LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
    # log of the probability given to the true class: one log per row instead of two.
    chosen = np.where(y, clipped, 1.0 - clipped)
    return float(-np.log(chosen).mean())


def roc_curve_points(
    labels: LabelArray, scores: ScoreArray, max_points: int = 200
) -> tuple[FloatArray, FloatArray]:
    """(fpr, tpr) of the ROC curve from (0, 0) to (1, 1), thinned to about `max_points` points
    spread evenly along the curve (steep and flat parts both keep their shape).

    One step per distinct score, as `sklearn.metrics.roc_curve` with drop_intermediate=False.
    Labels of one class have no curve: both arrays are empty.

    >>> import numpy as np
    >>> fpr, tpr = roc_curve_points(np.array([0, 1, 1, 0]), np.array([.1, .9, .4, .4]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    y, s = _validate(labels, scores)
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    if pos.size == 0 or neg.size == 0:
        empty = np.zeros(0, dtype=np.float64)
        return empty, empty.copy()
    thresholds = np.unique(s)[::-1]
    tps = pos.size - np.searchsorted(pos, thresholds, side="left")
    fps = neg.size - np.searchsorted(neg, thresholds, side="left")
    tpr = np.concatenate(([0.0], tps / pos.size))
    fpr = np.concatenate(([0.0], fps / neg.size))
    if tpr.size > max_points:
        arc = np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(fpr), np.diff(tpr)))))
        targets = np.linspace(0.0, arc[-1], max_points)
        idx = np.unique(np.searchsorted(arc, targets).clip(0, tpr.size - 1))
        idx = np.unique(np.concatenate(([0], idx, [tpr.size - 1])))
        fpr, tpr = fpr[idx], tpr[idx]
    return fpr.astype(np.float64), tpr.astype(np.float64)
