"""Verification of a prediction-file submission against its checkpoint.

An organiser reruns the attached checkpoint; per split and task, the AUC from the file and the
AUC from the run are compared, and the submission is "verified" when every difference is within
the tolerance. A task whose AUC is undefined (one class only) must be undefined on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evaluator.schema import SPLITS, TASKS, Split, Task
from evaluator.scoring import ScoreReport

DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class AucComparison:
    split: Split
    task: Task
    file_auc: float | None
    checkpoint_auc: float | None
    difference: float | None
    within_tolerance: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "task": self.task,
            "file_auc": self.file_auc,
            "checkpoint_auc": self.checkpoint_auc,
            "difference": self.difference,
            "within_tolerance": self.within_tolerance,
        }


@dataclass(frozen=True)
class Verification:
    verified: bool
    tolerance: float
    comparisons: tuple[AucComparison, ...]

    @property
    def max_difference(self) -> float | None:
        differences = [c.difference for c in self.comparisons if c.difference is not None]
        return max(differences) if differences else None

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "tolerance": self.tolerance,
            "max_difference": self.max_difference,
            "comparisons": [c.to_json() for c in self.comparisons],
        }


def compare_reports(
    from_file: ScoreReport,
    from_checkpoint: ScoreReport,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Verification:
    """Compare every (split, task) AUC of the two reports.

    >>> from evaluator.scoring import ScoreReport, TaskScore
    >>> def report(auc):
    ...     score = TaskScore(auc, None, None, None, 1, 1)
    ...     return ScoreReport("1", {s: {t: score for t in TASKS} for s in SPLITS})
    >>> compare_reports(report(0.7), report(0.70005)).verified
    True
    >>> compare_reports(report(0.7), report(0.71)).verified
    False
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    comparisons: list[AucComparison] = []
    for split in SPLITS:
        for task in TASKS:
            file_score = from_file.scores.get(split, {}).get(task)
            run_score = from_checkpoint.scores.get(split, {}).get(task)
            file_auc = file_score.auc if file_score is not None else None
            run_auc = run_score.auc if run_score is not None else None
            if file_auc is None or run_auc is None:
                difference = None
                within = file_auc is None and run_auc is None
            else:
                difference = abs(file_auc - run_auc)
                within = difference <= tolerance
            comparisons.append(AucComparison(split, task, file_auc, run_auc, difference, within))
    return Verification(
        verified=all(c.within_tolerance for c in comparisons),
        tolerance=tolerance,
        comparisons=tuple(comparisons),
    )
