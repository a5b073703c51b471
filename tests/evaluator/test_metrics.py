"""Metrics against scikit-learn and against direct (quadratic) DeLong implementations."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score, roc_curve

from evaluator.metrics import (
    auc_partition,
    auc_with_ci,
    delong_paired_test,
    log_loss,
    roc_curve_points,
    structural_components,
)

# ------------------------------------------------------------------------------- factories


def _labelled(n: int, rate: float, seed: int, decimals: int | None = None) -> tuple[
    npt.NDArray[np.int8], npt.NDArray[np.float64]
]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.int8)
    y[0], y[1] = 0, 1  # both classes, always
    s = rng.random(n) + 0.3 * y
    if decimals is not None:
        s = np.round(s, decimals)
    return y, s


def _direct_components(
    y: npt.NDArray[np.integer], s: npt.NDArray[np.floating]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """DeLong's structural components straight from the definition, O(m·n)."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def _direct_variance(y: npt.NDArray[np.integer], s: npt.NDArray[np.floating]) -> float:
    v10, v01 = _direct_components(y, s)
    return float(v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size)


# --------------------------------------------------------------------------------- AUC


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_sklearn_on_random_scores(seed: int) -> None:
    y, s = _labelled(5000, 0.1, seed)
    assert auc_with_ci(y, s).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("decimals", [0, 1, 2])
def test_auc_equals_sklearn_with_heavy_ties(decimals: int) -> None:
    y, s = _labelled(20000, 0.3, decimals, decimals=decimals)
    assert auc_with_ci(y, s).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_of_constant_scores_is_one_half_as_in_sklearn() -> None:
    y, _ = _labelled(1000, 0.2, 0)
    s = np.full(y.size, 0.25)
    result = auc_with_ci(y, s)
    assert result.auc == roc_auc_score(y, s) == 0.5


def test_auc_equals_sklearn_with_a_handful_of_positives_among_two_million() -> None:
    rng = np.random.default_rng(7)
    n = 2_000_000
    y = np.zeros(n, dtype=np.int8)
    y[rng.choice(n, size=5, replace=False)] = 1
    s = np.round(rng.random(n), 4)
    result = auc_with_ci(y, s)
    assert result.n_pos == 5
    assert result.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=20)), min_size=2, max_size=60
    )
)
def test_auc_matches_sklearn_on_any_input(rows: list[tuple[bool, int]]) -> None:
    y = np.array([r[0] for r in rows], dtype=np.int8)
    s = np.array([r[1] for r in rows], dtype=np.float64) / 7.0
    if y.min() == y.max():
        assert auc_with_ci(y, s).auc is None
    else:
        assert auc_with_ci(y, s).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=2, max_size=60).filter(
        lambda rows: len({r[0] for r in rows}) == 2
    )
)
def test_flipping_the_labels_gives_one_minus_the_auc(rows: list[tuple[bool, float]]) -> None:
    y = np.array([r[0] for r in rows], dtype=np.int8)
    s = np.array([r[1] for r in rows])
    auc, flipped = auc_with_ci(y, s).auc, auc_with_ci(1 - y, s).auc
    assert auc is not None and flipped is not None
    assert flipped == pytest.approx(1.0 - auc, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(-50, 50)), min_size=2, max_size=60).filter(
        lambda rows: len({r[0] for r in rows}) == 2
    )
)
def test_auc_and_interval_are_unchanged_by_a_strictly_increasing_transform(
    rows: list[tuple[bool, int]],
) -> None:
    y = np.array([r[0] for r in rows], dtype=np.int8)
    s = np.array([r[1] for r in rows], dtype=np.float64)
    # Distinct integers stay distinct (and in order) under exp(x / 10) in floating point.
    assert auc_with_ci(y, np.exp(s / 10.0)) == auc_with_ci(y, s)


def test_one_class_gives_a_reason_and_no_auc() -> None:
    result = auc_with_ci(np.zeros(10, dtype=np.int8), np.linspace(0, 1, 10))
    assert result.auc is None and result.ci_low is None and result.variance is None
    assert result.reason is not None and "no positives" in result.reason
    assert (result.n_pos, result.n_neg) == (0, 10)


def test_no_rows_gives_a_reason_and_no_auc() -> None:
    result = auc_with_ci(np.zeros(0, dtype=np.int8), np.zeros(0))
    assert result.auc is None and result.reason == "no rows; AUC is undefined"


def test_a_single_positive_has_an_auc_but_an_interval_of_zero_to_one() -> None:
    y = np.array([0, 0, 1, 0])
    s = np.array([0.1, 0.5, 0.4, 0.2])
    result = auc_with_ci(y, s)
    assert result.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert result.variance is None
    assert (result.ci_low, result.ci_high) == (0.0, 1.0)
    assert result.reason is not None and "only 1 positive" in result.reason


def test_labels_other_than_zero_and_one_are_refused_with_the_first_index() -> None:
    with pytest.raises(ValueError, match=r"1 are not \(first at index 2: np.int64\(2\)\)"):
        auc_with_ci(np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]))


def test_non_finite_scores_are_refused_with_the_first_index() -> None:
    with pytest.raises(ValueError, match="first at index 1"):
        auc_with_ci(np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]))


def test_labels_and_scores_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match=r"labels \(3\) and scores \(2\) differ"):
        auc_with_ci(np.array([0, 1, 1]), np.array([0.1, 0.3]))


# ---------------------------------------------------------------------------- variance / CI


@pytest.mark.parametrize(("seed", "decimals"), [(0, None), (1, 1), (2, 2), (3, 0)])
def test_variance_equals_the_direct_delong_variance(seed: int, decimals: int | None) -> None:
    y, s = _labelled(300, 0.25, seed, decimals)
    result = auc_with_ci(y, s)
    assert result.variance == pytest.approx(_direct_variance(y, s), rel=1e-10, abs=1e-15)


def test_structural_components_equal_the_direct_ones() -> None:
    y, s = _labelled(200, 0.3, 4, decimals=1)
    v10, v01 = structural_components(y, s)
    d10, d01 = _direct_components(y, s)
    np.testing.assert_allclose(v10, d10, rtol=0, atol=1e-15)
    np.testing.assert_allclose(v01, d01, rtol=0, atol=1e-15)


def test_interval_is_auc_plus_minus_normal_quantile_times_standard_error() -> None:
    y, s = _labelled(400, 0.2, 5)
    result = auc_with_ci(y, s, level=0.9)
    assert result.auc is not None and result.variance is not None
    half = NormalDist().inv_cdf(0.95) * math.sqrt(result.variance)
    assert result.ci_low == pytest.approx(result.auc - half, abs=1e-15)
    assert result.ci_high == pytest.approx(result.auc + half, abs=1e-15)


def test_interval_is_clipped_to_zero_and_one() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.65])
    result = auc_with_ci(y, s)
    assert result.auc == 1.0 and result.ci_high == 1.0


def test_delong_interval_covers_the_true_auc_in_93_to_97_percent_of_draws() -> None:
    # Binormal scores: negatives N(0, 1), positives N(d, 1), so the true AUC is Φ(d / √2).
    rng = np.random.default_rng(20260101)
    d, m, n, draws = 1.0, 150, 300, 1000
    true_auc = NormalDist().cdf(d / math.sqrt(2.0))
    y = np.concatenate([np.ones(m, dtype=np.int8), np.zeros(n, dtype=np.int8)])
    covered = 0
    for _ in range(draws):
        s = np.concatenate([rng.normal(d, 1.0, m), rng.normal(0.0, 1.0, n)])
        result = auc_with_ci(y, s)
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= true_auc <= result.ci_high
    assert 0.93 <= covered / draws <= 0.97


def test_partition_equals_separate_calls_on_each_part() -> None:
    y, s = _labelled(3000, 0.2, 6, decimals=2)
    part = np.random.default_rng(60).random(y.size) < 0.3
    full, in_part, rest = auc_partition(y, s, part)
    assert full == auc_with_ci(y, s)
    assert in_part == auc_with_ci(y[part], s[part])
    assert rest.auc == pytest.approx(auc_with_ci(y[~part], s[~part]).auc, abs=1e-15)
    assert rest.variance == pytest.approx(auc_with_ci(y[~part], s[~part]).variance, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 1.0, 0.5, 1e-300, 5e-324])
                       | st.floats(0, 1)), max_size=80),
    st.booleans(),
)
def test_one_sort_of_class_keys_gives_each_class_sorted(
    rows: list[tuple[int, float]], negate_zero: bool
) -> None:
    from evaluator.metrics import _sorted_classes

    code = np.array([r[0] for r in rows], dtype=np.uint8)
    s = np.array([r[1] for r in rows], dtype=np.float64)
    if negate_zero:  # -0.0 is not a probability's bit pattern: the per-class sorts take it
        s[s == 0.0] = -0.0
    runs = _sorted_classes(code, s, 4)
    for c in range(4):
        np.testing.assert_array_equal(runs[c], np.sort(s[code == c]))


@pytest.mark.parametrize("decimals", [None, 2, 0])
def test_auc_and_partition_of_probabilities_equal_sklearn(decimals: int | None) -> None:
    rng = np.random.default_rng(decimals or 9)
    n = 40_000
    s = rng.random(n) ** 3
    if decimals is not None:
        s = np.round(s, decimals)
    s[:50], s[50:100] = 0.0, 1.0
    y = (rng.random(n) < 0.1 + 0.5 * s).astype(np.int8)
    part = rng.random(n) < 0.3
    result = auc_with_ci(y, s)
    assert result.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    full, in_part, rest = auc_partition(y, s, part)
    assert full == result
    assert in_part.auc == pytest.approx(roc_auc_score(y[part], s[part]), abs=1e-12)
    assert rest.auc == pytest.approx(roc_auc_score(y[~part], s[~part]), abs=1e-12)
    small = slice(0, 3000)
    assert auc_with_ci(y[small], s[small]).variance == pytest.approx(
        _direct_variance(y[small], s[small]), rel=1e-9)


def test_partition_reports_a_part_with_one_class() -> None:
    y = np.array([0, 1, 0, 0, 1, 0])
    part = np.array([True, False, True, True, False, False])
    _, in_part, rest = auc_partition(y, np.linspace(0, 1, 6), part)
    assert in_part.auc is None and in_part.reason is not None
    assert rest.auc is not None


# ------------------------------------------------------------------------------- paired


def _direct_paired(
    y: npt.NDArray[np.integer], a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]
) -> tuple[float, float]:
    """z and p from the 2×2 covariance matrices of DeLong et al. (1988), computed directly."""
    a10, a01 = _direct_components(y, a)
    b10, b01 = _direct_components(y, b)
    s10 = np.cov(np.vstack([a10, b10]), ddof=1)
    s01 = np.cov(np.vstack([a01, b01]), ddof=1)
    cov = s10 / a10.size + s01 / a01.size
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ cov @ contrast)
    z = (a10.mean() - b10.mean()) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2.0))


@pytest.mark.parametrize(("seed", "decimals"), [(0, None), (1, 1), (2, 2)])
def test_paired_test_equals_the_direct_implementation(seed: int, decimals: int | None) -> None:
    y, a = _labelled(250, 0.3, seed, decimals)
    rng = np.random.default_rng(seed + 100)
    b = a + rng.normal(0, 0.3, a.size)
    if decimals is not None:
        b = np.round(b, decimals)
    result = delong_paired_test(y, a, b)
    z, p = _direct_paired(y, a, b)
    assert result.auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result.auc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert result.z == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-9)


def test_paired_test_of_one_ranking_twice_has_p_one() -> None:
    y, a = _labelled(500, 0.2, 3)
    result = delong_paired_test(y, a, a**3 + 2.0)
    assert (result.difference, result.z, result.p_value, result.variance) == (0.0, 0.0, 1.0, 0.0)


def test_paired_test_finds_a_clearly_better_ranking() -> None:
    rng = np.random.default_rng(11)
    y = (rng.random(4000) < 0.3).astype(np.int8)
    good = y + rng.normal(0, 0.5, y.size)
    bad = y + rng.normal(0, 3.0, y.size)
    result = delong_paired_test(y, good, bad)
    assert result.difference > 0 and result.p_value < 1e-6


def test_paired_test_with_one_class_gives_a_reason_and_p_one() -> None:
    result = delong_paired_test(np.ones(4), np.linspace(0, 1, 4), np.linspace(1, 0, 4))
    assert result.auc_a is None and result.p_value == 1.0 and result.reason is not None


# ------------------------------------------------------------------------------ log-loss


def test_log_loss_equals_sklearn_on_clipped_probabilities() -> None:
    y, s = _labelled(5000, 0.1, 8)
    p = np.clip(s / s.max(), 0, 1)
    p[:10] = 0.0
    p[10:20] = 1.0
    expected = sk_log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])
    assert log_loss(y, p) == pytest.approx(expected, rel=1e-12)


def test_log_loss_of_a_certain_wrong_answer_is_capped_by_the_clip() -> None:
    assert log_loss(np.array([1]), np.array([0.0])) == pytest.approx(-math.log(1e-7), rel=1e-12)


def test_log_loss_refuses_probabilities_outside_zero_one() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        log_loss(np.array([1, 0]), np.array([0.5, 1.5]))


# --------------------------------------------------------------------------------- ROC


def test_roc_points_equal_sklearn_roc_curve_when_not_thinned() -> None:
    y, s = _labelled(150, 0.3, 9, decimals=2)
    fpr, tpr = roc_curve_points(y, s, max_points=10_000)
    sk_fpr, sk_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-15)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-15)


def test_roc_points_are_thinned_to_about_max_points_from_corner_to_corner() -> None:
    y, s = _labelled(100_000, 0.2, 10)
    fpr, tpr = roc_curve_points(y, s, max_points=50)
    assert 10 <= fpr.size <= 52
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()


def test_roc_points_of_one_class_are_empty() -> None:
    fpr, tpr = roc_curve_points(np.zeros(5), np.linspace(0, 1, 5))
    assert fpr.size == 0 and tpr.size == 0


def test_docstring_examples_hold() -> None:
    import doctest

    import evaluator.metrics

    result = doctest.testmod(evaluator.metrics)
    assert result.attempted > 0 and result.failed == 0
