"""Tie groups, rankings, Pareto fronts and ROC points of evaluator/compare.py."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve

from evaluator.compare import (
    PairedTestResult,
    column_ranks,
    pareto_front,
    rank_by_average_rank,
    rank_by_mean_auc,
    roc_points,
    tie_groups,
)
from evaluator.metrics import roc_curve_points


def direct_delong_p(labels: npt.NDArray[np.int8], a: npt.NDArray[np.float64],
                    b: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """DeLong et al. (1988) written out with the O(m·n) placement values: (auc_a, auc_b, p)."""
    pos = labels == 1
    placements10 = []
    placements01 = []
    for s in (a, b):
        x = s[pos][:, None]
        y = s[~pos][None, :]
        psi = (x > y).astype(float) + 0.5 * (x == y)
        placements10.append(psi.mean(axis=1))
        placements01.append(psi.mean(axis=0))
    v10 = np.vstack(placements10)
    v01 = np.vstack(placements01)
    aucs = v10.mean(axis=1)
    s10 = np.cov(v10)
    s01 = np.cov(v01)
    contrast = np.array([1.0, -1.0])
    var = contrast @ s10 @ contrast / v10.shape[1] + contrast @ s01 @ contrast / v01.shape[1]
    if var <= 0:
        return float(aucs[0]), float(aucs[1]), float("nan")
    z = (aucs[0] - aucs[1]) / math.sqrt(var)
    return float(aucs[0]), float(aucs[1]), math.erfc(abs(z) / math.sqrt(2))


def make_labels(rng: np.random.Generator, n: int, rate: float = 0.3) -> npt.NDArray[np.int8]:
    labels = (rng.random(n) < rate).astype(np.int8)
    labels[:2] = (0, 1)  # both classes always present
    return labels


def noisy_scores(rng: np.random.Generator, labels: npt.NDArray[np.int8],
                 signal: float) -> npt.NDArray[np.float64]:
    return signal * labels + rng.normal(size=labels.size)


def test_identical_prediction_vectors_share_the_top_group() -> None:
    rng = np.random.default_rng(0)
    labels = make_labels(rng, 500)
    scores = noisy_scores(rng, labels, 1.0)
    groups = tie_groups(labels, {"a": scores, "b": scores.copy()})
    assert groups["a"].group == 1
    assert groups["b"].group == 1
    assert groups["a"].auc == pytest.approx(groups["b"].auc)


def test_clearly_better_entry_leads_alone() -> None:
    rng = np.random.default_rng(1)
    labels = make_labels(rng, 1500)
    groups = tie_groups(labels, {"weak": noisy_scores(rng, labels, 0.2),
                                 "strong": noisy_scores(rng, labels, 2.0)})
    assert groups["strong"].group == 1
    assert groups["strong"].is_leader
    assert groups["weak"].group == 2
    assert groups["weak"].is_leader  # it leads the second group


def test_grouping_matches_direct_delong_computation() -> None:
    rng = np.random.default_rng(2)
    labels = make_labels(rng, 600)
    base = rng.normal(size=labels.size)
    # Entries that share most of their noise, so that paired tests separate some and not others.
    entries = {
        f"e{i}": signal * labels + base + 0.4 * rng.normal(size=labels.size)
        for i, signal in enumerate([1.0, 0.95, 0.9, 0.7, 0.5, 0.2, 1.02])
    }
    groups = tie_groups(labels, entries)

    direct_auc = {k: roc_auc_score(labels, s) for k, s in entries.items()}
    for key, result in groups.items():
        assert result.auc == pytest.approx(direct_auc[key], abs=1e-12)
        if result.is_leader:
            continue
        leader = result.leader
        assert isinstance(leader, str)
        _, _, p = direct_delong_p(labels, entries[leader], entries[key])
        assert result.p_value == pytest.approx(p, rel=1e-6)
        assert p >= 0.05
    # Every entry outside a group is significantly different from that group's leader, and each
    # leader has the best AUC of the entries not yet grouped.
    n_groups = max(r.group for r in groups.values())
    assert n_groups >= 2
    for g in range(1, n_groups + 1):
        leader = next(k for k, r in groups.items() if r.group == g and r.is_leader)
        later = [k for k, r in groups.items() if r.group >= g]
        assert direct_auc[leader] == max(direct_auc[k] for k in later)
        for key in (k for k, r in groups.items() if r.group > g):
            assert direct_delong_p(labels, entries[leader], entries[key])[2] < 0.05


def test_tie_groups_refuses_scores_of_another_length() -> None:
    labels = np.array([0, 1, 0, 1], dtype=np.int8)
    with pytest.raises(ValueError, match="entry 'b'"):
        tie_groups(labels, {"a": np.zeros(4), "b": np.zeros(3)})


def test_tie_groups_of_no_entries_is_empty() -> None:
    assert tie_groups(np.array([0, 1]), {}) == {}


def test_mean_auc_ranks_complete_rows_before_incomplete_ones() -> None:
    rows = rank_by_mean_auc(
        {"partial": {"x": 0.99, "y": None}, "low": {"x": 0.6, "y": 0.6},
         "high": {"x": 0.8, "y": 0.7}, "empty": {}},
        ["x", "y"],
    )
    assert [(r.key, r.rank, r.complete) for r in rows] == [
        ("high", 1, True), ("low", 2, True), ("partial", 3, False), ("empty", None, False)
    ]
    assert rows[0].value == pytest.approx(0.75)
    assert rows[2].n_cells == 1


def test_equal_mean_aucs_share_a_rank() -> None:
    rows = rank_by_mean_auc({"a": {"x": 0.7}, "b": {"x": 0.7}, "c": {"x": 0.6}}, ["x"])
    assert [r.rank for r in rows] == [1, 1, 3]


def test_column_ranks_give_tied_aucs_the_mean_place() -> None:
    assert column_ranks({"a": 0.8, "b": 0.9, "c": 0.8, "d": 0.5}) == {
        "a": 2.5, "b": 1.0, "c": 2.5, "d": 4.0
    }


def test_average_rank_orders_by_mean_place() -> None:
    cells = {
        "a": {"x": 0.9, "y": 0.9, "z": 0.1},  # places 1, 1, 3 -> 5/3
        "b": {"x": 0.8, "y": 0.8, "z": 0.9},  # places 2, 2, 1 -> 5/3
        "c": {"x": 0.7, "y": 0.7, "z": 0.5},  # places 3, 3, 2 -> 8/3
    }
    rows = rank_by_average_rank(cells, ["x", "y", "z"])
    assert [(r.key, r.rank) for r in rows] == [("a", 1), ("b", 1), ("c", 3)]
    assert rows[2].value == pytest.approx(8 / 3)


def test_average_rank_puts_incomplete_rows_last() -> None:
    rows = rank_by_average_rank({"best_x_only": {"x": 0.99}, "both": {"x": 0.5, "y": 0.5}},
                                ["x", "y"])
    assert [r.key for r in rows] == ["both", "best_x_only"]
    assert not rows[1].complete


@given(st.dictionaries(st.integers(0, 30),
                       st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=12))
def test_pareto_front_holds_exactly_the_non_dominated_points(
    points: dict[int, tuple[float, float]],
) -> None:
    front = pareto_front(points)

    def dominated(k: int) -> bool:
        x, y = points[k]
        return any(ox >= x and oy >= y and (ox, oy) != (x, y) for ox, oy in points.values())

    assert front == {k for k in points if not dominated(k)}
    assert front  # some point is always non-dominated


def test_roc_points_match_sklearn_roc_curve() -> None:
    rng = np.random.default_rng(3)
    labels = make_labels(rng, 300)
    scores = np.round(noisy_scores(rng, labels, 1.0), 1)  # rounding creates tied scores
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    points = roc_points(labels, scores, max_points=10_000)
    assert np.allclose(np.array(points), np.column_stack([fpr, tpr]))


def test_roc_points_are_thinned_but_keep_both_ends() -> None:
    rng = np.random.default_rng(4)
    labels = make_labels(rng, 5000)
    points = roc_points(labels, noisy_scores(rng, labels, 1.0), max_points=50)
    assert len(points) <= 52
    assert points[0] == (0.0, 0.0)
    assert points[-1] == (1.0, 1.0)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(points))


def test_roc_points_of_one_class_are_empty() -> None:
    assert roc_points(np.zeros(5, dtype=np.int8), np.linspace(0, 1, 5)) == []


def test_roc_points_are_the_metrics_curve_as_pairs() -> None:
    rng = np.random.default_rng(5)
    labels = make_labels(rng, 3000)
    scores = np.round(noisy_scores(rng, labels, 1.0), 2)
    fpr, tpr = roc_curve_points(labels, scores, max_points=80)
    assert roc_points(labels, scores, max_points=80) == list(zip(fpr, tpr, strict=True))


def test_memo_reuses_earlier_paired_tests() -> None:
    from evaluator.metrics import delong_paired_test

    calls: list[int] = []

    def counted(
        y: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
        a: npt.NDArray[np.floating],
        b: npt.NDArray[np.floating],
    ) -> PairedTestResult:
        calls.append(1)
        return delong_paired_test(y, a, b)

    rng = np.random.default_rng(5)
    labels = make_labels(rng, 400)
    scores = {k: noisy_scores(rng, labels, s) for k, s in (("a", 2.0), ("b", 1.0), ("c", 0.1))}
    memo: dict[tuple[str, str], PairedTestResult] = {}
    first = tie_groups(labels, {k: scores[k] for k in ("a", "b")}, paired_test=counted,
                       memo=memo)
    before = len(calls)
    second = tie_groups(labels, scores, paired_test=counted, memo=memo)
    assert len(calls) - before <= 2  # only the new entry's tests ran
    assert second["a"].group == first["a"].group
    assert second == tie_groups(labels, scores)  # same answer as without a memo
