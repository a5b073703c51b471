"""Verification of a prediction-file submission against its checkpoint.

An organiser reruns the attached checkpoint and scores its predictions; `compare_reports` then
compares the file's report with the run's on every split and every task. The submission is
verified when every AUC difference is within the tolerance. An undefined AUC (one class only)
agrees only with an undefined AUC; a score that one report lacks agrees with nothing, since a
missing score says nothing about the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from evaluator.schema import SPLITS, TASKS, Split, Task
from evaluator.scoring import ScoreReport, TaskScore

DEFAULT_TOLERANCE = 1e-4


class AucComparisonJson(TypedDict):
    file_auc: float | None
    ckpt_auc: float | None
    diff: float | None
    within_tolerance: bool


@dataclass(frozen=True)
class AucComparison:
    """One (split, task): the file's AUC, the checkpoint's, |difference| (None unless both
    are defined) and whether they agree."""

    split: Split
    task: Task
    file_auc: float | None
    ckpt_auc: float | None
    diff: float | None
    within_tolerance: bool

    def to_json(self) -> AucComparisonJson:
        return {
            "file_auc": self.file_auc,
            "ckpt_auc": self.ckpt_auc,
            "diff": self.diff,
            "within_tolerance": self.within_tolerance,
        }


@dataclass(frozen=True)
class ReportComparison:
    """Every (split, task) comparison of two score reports, in `SPLITS` × `TASKS` order."""

    verified: bool
    tolerance: float
    comparisons: tuple[AucComparison, ...]

    @property
    def splits(self) -> dict[Split, dict[Task, AucComparison]]:
        """The comparisons by split, then task."""
        by_split: dict[Split, dict[Task, AucComparison]] = {split: {} for split in SPLITS}
        for c in self.comparisons:
            by_split[c.split][c.task] = c
        return by_split

    @property
    def max_difference(self) -> float | None:
        differences = [c.diff for c in self.comparisons if c.diff is not None]
        return max(differences) if differences else None

    def to_json(self) -> dict[Split, dict[Task, AucComparisonJson]]:
        """``{split: {task: {"file_auc", "ckpt_auc", "diff", "within_tolerance"}}}``."""
        return {
            split: {task: c.to_json() for task, c in tasks.items()}
            for split, tasks in self.splits.items()
        }


# The name the service imported before the result had a name of its own; `ReportComparison`
# does not clash with the service's Verification table.
Verification = ReportComparison


def _auc(score: TaskScore | None) -> float | None:
    return None if score is None else score.auc


def compare_reports(
    file_report: ScoreReport,
    ckpt_report: ScoreReport,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ReportComparison:
    """Compare the AUCs of the two reports on every split and task.

    Both reports must come from the same scorer version: scores of different definitions are
    not comparable, however close they are.

    >>> from evaluator.scoring import ScoreReport, TaskScore
    >>> def report(auc):
    ...     score = TaskScore(auc, None, None, None, 1, 1)
    ...     return ScoreReport("1", {s: {t: score for t in TASKS} for s in SPLITS})
    >>> compare_reports(report(0.7), report(0.70005)).verified
    True
    >>> result = compare_reports(report(0.7), report(0.71))
    >>> result.verified, result.splits["private"]["cvr"].within_tolerance
    (False, False)
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    if file_report.scorer_version != ckpt_report.scorer_version:
        raise ValueError(
            f"the reports come from scorer versions {file_report.scorer_version!r} and "
            f"{ckpt_report.scorer_version!r}; compare reports of one version"
        )
    comparisons: list[AucComparison] = []
    for split in SPLITS:
        for task in TASKS:
            file_score = file_report.scores.get(split, {}).get(task)
            ckpt_score = ckpt_report.scores.get(split, {}).get(task)
            file_auc, ckpt_auc = _auc(file_score), _auc(ckpt_score)
            diff: float | None = None
            if file_score is None or ckpt_score is None:
                within = False
            elif file_auc is None or ckpt_auc is None:
                within = file_auc is None and ckpt_auc is None
            else:
                diff = abs(file_auc - ckpt_auc)
                within = diff <= tolerance
            comparisons.append(AucComparison(split, task, file_auc, ckpt_auc, diff, within))
    return ReportComparison(
        verified=all(c.within_tolerance for c in comparisons),
        tolerance=tolerance,
        comparisons=tuple(comparisons),
    )
