from __future__ import annotations

import pytest

from evaluator.checkpoint.verify import compare_reports
from evaluator.schema import SPLITS, TASKS
from evaluator.scoring import ScoreReport, TaskScore


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
    data = compare_reports(_report(0.7), _report(0.7)).to_json()
    assert data["verified"] is True
    assert data["tolerance"] == 1e-4
    assert {(c["split"], c["task"]) for c in data["comparisons"]} == {
        (split, task) for split in SPLITS for task in TASKS
    }
