from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evaluator.checkpoint.verify import compare_reports
from evaluator.data.prepared import PreparedData
from evaluator.predictions import Predictions
from evaluator.schema import SPLITS, TASKS, Task
from evaluator.scoring import ScoreReport, TaskScore, score_predictions


def _report(auc: float | None, cvr_auc: float | None = None) -> ScoreReport:
    def score(task: str) -> TaskScore:
        value = cvr_auc if task == "cvr" and cvr_auc is not None else auc
        return TaskScore(value, None, None, None, 3, 5, None if value is not None else "one class")

    return ScoreReport("1", {split: {task: score(task) for task in TASKS} for split in SPLITS})


def test_equal_reports_are_verified_with_zero_differences() -> None:
    result = compare_reports(_report(0.7), _report(0.7))
    assert result.verified
    assert result.max_difference == 0.0
    assert len(result.comparisons) == len(SPLITS) * len(TASKS)


def test_a_difference_at_the_tolerance_is_verified() -> None:
    assert compare_reports(_report(0.5), _report(0.5 + 2**-14), tolerance=2**-14).verified


def test_a_difference_past_the_tolerance_is_not_verified_and_names_the_task() -> None:
    result = compare_reports(_report(0.7), _report(0.7, cvr_auc=0.71))
    assert not result.verified
    failing = {(c.split, c.task) for c in result.comparisons if not c.within_tolerance}
    assert failing == {(split, "cvr") for split in SPLITS}
    assert result.max_difference == pytest.approx(0.01)


def test_an_auc_undefined_on_both_sides_counts_as_agreeing() -> None:
    assert compare_reports(_report(None), _report(None)).verified


def test_an_auc_undefined_on_one_side_only_is_not_verified() -> None:
    assert not compare_reports(_report(0.7), _report(None)).verified


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        compare_reports(_report(0.7), _report(0.7), tolerance=-1)


def test_the_json_form_lists_every_comparison() -> None:
    # verified and tolerance are the result's own fields; the JSON is split → task → comparison.
    result = compare_reports(_report(0.7), _report(0.7))
    data = result.to_json()
    assert result.verified is True
    assert result.tolerance == 1e-4
    assert {(split, task) for split, tasks in data.items() for task in tasks} == {
        (split, task) for split in SPLITS for task in TASKS
    }


def test_the_json_form_gives_both_aucs_the_difference_and_the_verdict() -> None:
    data = compare_reports(_report(0.7), _report(0.7, cvr_auc=0.75)).to_json()
    assert list(data) == list(SPLITS)
    assert data["public"]["ctr"] == {
        "file_auc": 0.7, "ckpt_auc": 0.7, "diff": 0.0, "within_tolerance": True}
    cvr = data["full"]["cvr"]
    assert (cvr["file_auc"], cvr["ckpt_auc"], cvr["within_tolerance"]) == (0.7, 0.75, False)
    assert cvr["diff"] == pytest.approx(0.05)
    assert json.loads(json.dumps(data)) == data


def _with_private(report: ScoreReport, task: Task, auc: float | None) -> ScoreReport:
    scores = {split: dict(tasks) for split, tasks in report.scores.items()}
    scores["private"][task] = replace(scores["private"][task], auc=auc)
    return ScoreReport(report.scorer_version, scores)


@pytest.mark.parametrize("task", TASKS)
def test_a_mismatch_on_the_private_split_alone_is_not_verified(task: Task) -> None:
    # The public and full AUCs agree: a comparison of those alone would pass.
    result = compare_reports(_report(0.7), _with_private(_report(0.7), task, 0.8))
    assert not result.verified
    failing = {(c.split, c.task) for c in result.comparisons if not c.within_tolerance}
    assert failing == {("private", task)}
    assert result.splits["private"][task].diff == pytest.approx(0.1)
    assert result.splits["public"][task].within_tolerance
    assert result.splits["full"][task].within_tolerance


def test_an_auc_undefined_on_the_private_split_of_one_report_is_not_verified() -> None:
    result = compare_reports(_report(0.7), _with_private(_report(0.7), "ctcvr", None))
    assert not result.verified
    private = result.splits["private"]["ctcvr"]
    assert (private.file_auc, private.ckpt_auc, private.diff) == (0.7, None, None)


def test_a_score_missing_from_one_report_is_not_verified() -> None:
    partial = _report(0.7)
    del partial.scores["private"]["cvr"]
    result = compare_reports(_report(0.7), partial)
    assert not result.verified
    assert not result.splits["private"]["cvr"].within_tolerance
    assert not compare_reports(partial, partial).verified


def test_reports_of_different_scorer_versions_are_refused() -> None:
    other = ScoreReport("0", _report(0.7).scores)
    with pytest.raises(ValueError, match="scorer versions"):
        compare_reports(_report(0.7), other)


def _noisy_predictions(data: PreparedData) -> Predictions:
    rng = np.random.default_rng(5)
    noise = rng.random((2, data.n_rows))
    ctr = np.clip(0.3 * np.asarray(data.click) + 0.7 * noise[0], 0, 1)
    cvr = np.clip(0.3 * np.asarray(data.conversion) + 0.7 * noise[1], 0, 1)
    return Predictions(ctr=ctr, cvr=cvr, ctcvr=ctr * cvr)


def test_a_checkpoint_run_scored_like_its_file_is_verified_on_every_split(
    prepared: Path,
) -> None:
    data = PreparedData.open(prepared)
    predictions = _noisy_predictions(data)
    from_file = score_predictions(data, predictions)
    rerun = Predictions(ctr=predictions.ctr.copy(), cvr=predictions.cvr.copy(),
                        ctcvr=predictions.ctcvr.copy())
    assert compare_reports(from_file, score_predictions(data, rerun)).verified
    # Change the predictions on private rows only: public scores cannot tell.
    private = ~np.asarray(data.public)
    rerun.ctr[private] = 1.0 - rerun.ctr[private]
    result = compare_reports(from_file, score_predictions(data, rerun))
    assert not result.verified
    assert result.splits["public"]["ctr"].within_tolerance
    assert not result.splits["private"]["ctr"].within_tolerance
    assert not result.splits["full"]["ctr"].within_tolerance


def test_docstring_examples_hold() -> None:
    import doctest

    import evaluator.checkpoint.verify

    assert doctest.testmod(evaluator.checkpoint.verify).failed == 0
