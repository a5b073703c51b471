"""ROC curves through score quantiles (evaluator/compare.py roc_quantile_points): no step of a
curve shown to participants holds fewer than 1 % of the rows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from evaluator.compare import roc_points, roc_quantile_points


def rows_per_step(labels: np.ndarray, points: list[tuple[float, float]]) -> list[int]:
    n_pos, n_neg = int(labels.sum()), int((~labels.astype(bool)).sum())
    counts = [round(x * n_neg) + round(y * n_pos) for x, y in points]
    return [b - a for a, b in itertools.pairwise(counts)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [100, 999, 5000])
def test_every_step_holds_at_least_one_percent_of_the_rows(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.int8)
    # coarse scores make tie groups, some larger than 1 %
    scores = np.round(rng.random(n) + labels * 0.5, int(rng.integers(1, 4)))
    points = roc_quantile_points(labels, scores)
    assert points[0] == (0.0, 0.0)
    assert points[-1] == pytest.approx((1.0, 1.0))
    steps = rows_per_step(labels, points)
    assert min(steps) >= int(np.ceil(0.01 * n))
    assert sum(steps) == n
    assert len(points) <= 102


def test_points_lie_on_the_full_curve() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(20_000) < 0.2).astype(np.int8)
    scores = rng.random(20_000) + labels * 0.3
    full = set(roc_points(labels, scores, max_points=10**6))
    assert set(roc_quantile_points(labels, scores)) <= full


def test_distinct_scores_on_fewer_rows_than_one_percent_draw_one_step() -> None:
    # the attack: 50 chosen rows of 10,000 scored apart, the rest tied at 0
    labels = (np.arange(10_000) % 3 == 0).astype(np.int8)
    scores = np.zeros(10_000)
    scores[:50] = np.linspace(1.0, 0.5, 50)
    assert roc_quantile_points(labels, scores) == [(0.0, 0.0), (1.0, 1.0)]


def test_one_class_has_no_curve() -> None:
    assert roc_quantile_points(np.zeros(10, dtype=np.int8), np.linspace(0, 1, 10)) == []
