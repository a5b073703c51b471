"""Row-by-row verification: the comparison, the shuffled rerun and the shuffled test set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluator.checkpoint.verify import (
    compare_permuted,
    compare_predictions,
    permuted_copy,
)
from evaluator.data.prepared import PreparedData
from evaluator.predictions import Predictions


def _predictions(ctr: np.ndarray, cvr: np.ndarray) -> Predictions:
    return Predictions(ctr=ctr, cvr=cvr, ctcvr=ctr * cvr, columns=("row_id", "ctr", "cvr"))


def test_one_row_past_the_tolerance_fails_and_is_named() -> None:
    rng = np.random.default_rng(0)
    ctr, cvr = rng.random(100), rng.random(100)
    changed = ctr.copy()
    changed[42] += 2e-4
    result = compare_predictions(_predictions(ctr, cvr), _predictions(changed, cvr))
    assert not result.verified
    by_task = {c.task: c for c in result.rows}
    assert set(by_task) == {"ctr", "cvr"}
    assert (by_task["ctr"].rows_over, by_task["ctr"].first_row_over) == (1, 42)
    assert by_task["ctr"].max_abs_diff == pytest.approx(2e-4)
    assert by_task["cvr"].within_tolerance


def test_differences_within_the_tolerance_are_verified() -> None:
    ctr = np.linspace(0, 1, 50)
    result = compare_predictions(_predictions(ctr, ctr), _predictions(ctr + 5e-5, ctr))
    assert result.verified


def test_a_nan_never_agrees() -> None:
    ctr = np.full(5, 0.5)
    other = ctr.copy()
    other[2] = np.nan
    result = compare_predictions(_predictions(ctr, ctr), _predictions(other, ctr))
    assert not result.verified and result.rows[0].max_abs_diff == float("inf")


def test_outputs_that_follow_their_rows_pass_and_a_replay_by_position_fails() -> None:
    rng = np.random.default_rng(1)
    ctr, cvr = rng.random(200), rng.random(200)
    order = rng.permutation(200)
    plain = _predictions(ctr, cvr)
    assert compare_permuted(plain, _predictions(ctr[order], cvr[order]), order).verified
    assert not compare_permuted(plain, plain, order).verified


def test_the_permuted_copy_moves_every_array_with_its_rows(prepared: Path,
                                                           tmp_path: Path) -> None:
    data = PreparedData.open(prepared)
    order = np.random.default_rng(2).permutation(data.n_rows)
    copy = PreparedData.open(permuted_copy(data, order, tmp_path / "shuffled"))
    assert copy.n_rows == data.n_rows
    for name in ("categorical", "numerical", "click", "public"):
        np.testing.assert_array_equal(getattr(copy, name), np.asarray(getattr(data, name))[order])


def test_an_order_that_is_not_a_permutation_is_refused(prepared: Path, tmp_path: Path) -> None:
    data = PreparedData.open(prepared)
    with pytest.raises(ValueError, match="not a permutation"):
        permuted_copy(data, np.zeros(data.n_rows, dtype=np.int64), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
