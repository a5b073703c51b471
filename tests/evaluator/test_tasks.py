"""The rows and labels of each task and the derived outputs (evaluator/tasks.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scoring_factories import make_prepared, random_predictions, random_prepared
from sklearn.metrics import roc_auc_score

from evaluator.checkpoint import OutputsSpec, derive_probabilities
from evaluator.predictions import Predictions, parse_prediction_file
from evaluator.schema import TASKS, Task
from evaluator.scoring import score_predictions
from evaluator.tasks import derive_outputs, task_rows

CLICK = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=np.int8)
CONVERSION = np.array([1, 0, 0, 1, 0, 0, 0, 0], dtype=np.int8)


@pytest.mark.parametrize("task", ["ctr", "ctcvr"])
def test_ctr_and_ctcvr_use_every_row(task: Task) -> None:
    rows = task_rows(task, CLICK, CONVERSION)
    assert rows.index is None
    assert rows.indices().tolist() == list(range(CLICK.size))
    values = np.arange(CLICK.size, dtype=np.float64)
    assert rows.take(values) is values


def test_cvr_uses_only_the_clicked_rows() -> None:
    rows = task_rows("cvr", CLICK, CONVERSION)
    assert rows.indices().tolist() == [0, 2, 3, 6]
    assert rows.take(np.arange(8.0)).tolist() == [0.0, 2.0, 3.0, 6.0]


def test_ctr_is_labelled_by_click_and_the_others_by_conversion() -> None:
    assert task_rows("ctr", CLICK, CONVERSION).labels.tolist() == CLICK.astype(bool).tolist()
    assert task_rows("ctcvr", CLICK, CONVERSION).labels.tolist() == CONVERSION.astype(
        bool).tolist()
    assert task_rows("cvr", CLICK, CONVERSION).labels.tolist() == [True, False, True, False]


def test_labels_given_as_booleans_select_the_same_rows() -> None:
    as_ints = task_rows("cvr", CLICK, CONVERSION)
    as_bools = task_rows("cvr", CLICK.astype(bool), CONVERSION.astype(bool))
    np.testing.assert_array_equal(as_ints.indices(), as_bools.indices())
    np.testing.assert_array_equal(as_ints.labels, as_bools.labels)


def test_labels_of_unequal_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        task_rows("ctr", CLICK, CONVERSION[:-1])


def test_no_click_leaves_cvr_without_rows() -> None:
    rows = task_rows("cvr", np.zeros(4, np.int8), np.zeros(4, np.int8))
    assert rows.indices().size == 0 and rows.labels.size == 0


def test_the_scorer_scores_each_task_on_its_rows(tmp_path: Path) -> None:
    data = random_prepared(tmp_path)
    predictions = random_predictions(data)
    report = score_predictions(data, predictions)
    for task in TASKS:
        rows = task_rows(task, data.click, data.conversion)
        expected = roc_auc_score(rows.labels, rows.take(getattr(predictions, task)))
        assert report.scores["full"][task].auc == pytest.approx(expected, abs=1e-12)
        assert report.scores["full"][task].n_pos + report.scores["full"][task].n_neg == (
            rows.labels.size)


def test_cvr_scores_ignore_predictions_on_unclicked_rows(tmp_path: Path) -> None:
    click = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    conversion = np.array([1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    data = make_prepared(tmp_path, click, conversion, np.ones(8, dtype=bool))
    ctr = np.full(8, 0.5)
    cvr = np.array([0.9, 0.1, 0.8, 0.2, 0.0, 0.0, 0.0, 0.0])
    other = cvr.copy()
    other[~click] = 1.0  # unclicked rows would rank above every clicked row if they counted
    first = score_predictions(data, Predictions(ctr=ctr, cvr=cvr, ctcvr=ctr * cvr))
    second = score_predictions(data, Predictions(ctr=ctr, cvr=other, ctcvr=ctr * cvr))
    assert first.scores["full"]["cvr"].auc == second.scores["full"]["cvr"].auc == 1.0
    assert first.scores["full"]["cvr"].n_pos + first.scores["full"]["cvr"].n_neg == 4


def test_ctcvr_is_derived_as_the_product_of_ctr_and_cvr() -> None:
    ctr = np.array([0.1, 0.5, 0.0])
    cvr = np.array([0.5, 0.2, 0.7])
    out_ctr, out_cvr, ctcvr = derive_outputs(ctr, cvr=cvr)
    assert out_ctr is ctr and out_cvr is cvr
    np.testing.assert_array_equal(ctcvr, ctr * cvr)


def test_cvr_is_derived_as_ctcvr_over_ctr_clipped_and_zero_without_ctr() -> None:
    ctr = np.array([0.0, 0.5, 0.2, 0.4, 0.0])
    ctcvr = np.array([0.0, 0.25, 0.3, 0.1, 0.2])
    _, cvr, same = derive_outputs(ctr, ctcvr=ctcvr)
    assert same is ctcvr
    np.testing.assert_array_equal(cvr, [0.0, 0.5, 1.0, 0.1 / 0.4, 0.0])


def test_a_tiny_ctr_gives_a_cvr_of_one_without_warnings() -> None:
    with np.errstate(all="raise"):
        _, cvr, _ = derive_outputs(np.array([5e-324]), ctcvr=np.array([0.5]))
    assert cvr.tolist() == [1.0]


def test_three_given_outputs_are_kept_as_they_are() -> None:
    ctr, cvr, ctcvr = np.array([0.5]), np.array([0.5]), np.array([0.1])
    out = derive_outputs(ctr, cvr=cvr, ctcvr=ctcvr)
    assert all(got is given for got, given in zip(out, (ctr, cvr, ctcvr), strict=True))


def test_deriving_needs_cvr_or_ctcvr() -> None:
    with pytest.raises(ValueError, match="needs cvr or ctcvr"):
        derive_outputs(np.array([0.5]))


def test_outputs_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="ctcvr has shape"):
        derive_outputs(np.array([0.5, 0.5]), ctcvr=np.array([0.1]))


@pytest.mark.parametrize("outputs", ["ctr,cvr", "ctr,ctcvr", "ctr,cvr,ctcvr"])
def test_a_file_and_a_checkpoint_with_the_same_outputs_give_the_same_predictions(
    tmp_path: Path, outputs: OutputsSpec
) -> None:
    rng = np.random.default_rng(11)
    n = 500
    ctr, second, third = np.round(rng.random((3, n)), 4)
    ctr[:25] = 0.0  # no click expected: pCVR must come out 0 on both paths
    second[25:50] = 1.0  # pCTCVR above pCTR: pCVR must be capped on both paths
    columns = [ctr, second] + ([third] if outputs == "ctr,cvr,ctcvr" else [])
    lines = [",".join([str(i), *(repr(float(c[i])) for c in columns)]) for i in range(n)]
    path = tmp_path / "pred.csv"
    path.write_text("\n".join([f"row_id,{outputs}", *lines]) + "\n")
    from_file = parse_prediction_file(path, n)
    from_checkpoint = derive_probabilities(
        ctr, second, third if outputs == "ctr,cvr,ctcvr" else None, outputs)
    for task, got in zip(TASKS, from_checkpoint, strict=True):
        assert getattr(from_file, task).tobytes() == got.tobytes(), task


def test_docstring_examples_hold() -> None:
    import doctest

    import evaluator.tasks

    assert doctest.testmod(evaluator.tasks).failed == 0
