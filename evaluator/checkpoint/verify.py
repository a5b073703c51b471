"""Verification of a prediction-file submission against its checkpoint.

What the verification mark certifies (`CERTIFIES`): an organiser ran the submission's checkpoint
on the test set, and its predictions equal the file's on every row, for every output the
checkpoint declares, to within the tolerance (the largest absolute difference of a probability,
1e-4 by default); and run again on the test set with its rows shuffled, its predictions moved
with the rows. The verdict never looks at a label, so it says nothing about the test set's
labels (an AUC comparison would: a checkpoint differing from its file on one private row would
pass or fail by that row's label). The shuffled run fails a checkpoint that ignores its inputs
and replays the file by batch position.

`compare_predictions` is the row-by-row comparison, `compare_permuted` the shuffled one,
`permuted_copy` writes the shuffled test set. `compare_reports` (AUCs per split and task) is
kept for reports only; it does not decide the verdict.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import numpy.typing as npt

from evaluator.data.prepared import ARRAY_FILES, META_FILE, PreparedData
from evaluator.predictions import Predictions
from evaluator.schema import SPLITS, TASKS, Split, Task
from evaluator.scoring import ScoreReport, TaskScore

DEFAULT_TOLERANCE = 1e-4
CERTIFIES = (
    "the organisers ran this submission's checkpoint on the test set: it reproduced the file's "
    "prediction on every row to within {tolerance:g}, and its predictions followed the rows "
    "when they were shuffled"
)


class RowComparisonJson(TypedDict):
    max_abs_diff: float
    rows_over: int
    first_row_over: int | None
    within_tolerance: bool


@dataclass(frozen=True)
class RowComparison:
    """One output compared on every row: the largest |a - b|, how many rows differ by more than
    the tolerance and the first of them (a row_id)."""

    task: Task
    max_abs_diff: float
    rows_over: int
    first_row_over: int | None
    within_tolerance: bool

    def to_json(self) -> RowComparisonJson:
        return {
            "max_abs_diff": self.max_abs_diff,
            "rows_over": self.rows_over,
            "first_row_over": self.first_row_over,
            "within_tolerance": self.within_tolerance,
        }


@dataclass(frozen=True)
class PredictionComparison:
    verified: bool
    tolerance: float
    rows: tuple[RowComparison, ...]

    def to_json(self) -> dict[str, RowComparisonJson]:
        return {c.task: c.to_json() for c in self.rows}


def _compare(task: Task, a: npt.NDArray[np.float64], b: npt.NDArray[np.float64],
             tolerance: float) -> RowComparison:
    if a.shape != b.shape:
        return RowComparison(task, float("inf"), max(a.size, b.size), 0, False)
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    # NaN never agrees (a NaN difference fails `<=`).
    over = ~(diff <= tolerance)
    rows_over = int(over.sum())
    first = int(np.argmax(over)) if rows_over else None
    largest = 0.0 if not diff.size else float("inf") if np.isnan(diff).any() else float(diff.max())
    return RowComparison(task, largest, rows_over, first, rows_over == 0)


def declared_tasks(predictions: Predictions) -> tuple[Task, ...]:
    """The outputs a checkpoint (or file) gives itself; the third is derived from them."""
    declared = tuple(t for t in TASKS if t in predictions.columns)
    return declared or ("ctr", "cvr")


def compare_predictions(file: Predictions, checkpoint: Predictions,
                        tolerance: float = DEFAULT_TOLERANCE) -> PredictionComparison:
    """Row by row, on every row, for each output the checkpoint declares: verified when no
    prediction differs from the file's by more than `tolerance`. Labels play no part.

    >>> import numpy as np
    >>> f = Predictions(np.array([0.1, 0.5]), np.array([0.2, 0.3]), np.array([0.02, 0.15]))
    >>> c = Predictions(np.array([0.1, 0.50005]), np.array([0.2, 0.3]), np.array([0.02, 0.15]))
    >>> compare_predictions(f, c).verified, compare_predictions(f, c, 1e-5).verified
    (True, False)
    """
    _check_tolerance(tolerance)
    rows = tuple(
        _compare(task, getattr(file, task), getattr(checkpoint, task), tolerance)
        for task in declared_tasks(checkpoint)
    )
    return PredictionComparison(all(c.within_tolerance for c in rows), tolerance, rows)


def compare_permuted(plain: Predictions, permuted: Predictions, order: npt.NDArray[np.int64],
                     tolerance: float = DEFAULT_TOLERANCE) -> PredictionComparison:
    """`permuted` came from the test set whose row i is row `order[i]` of the original: each
    of its predictions must be the plain run's for that row."""
    _check_tolerance(tolerance)
    rows = tuple(
        _compare(task, getattr(plain, task)[order], getattr(permuted, task), tolerance)
        for task in declared_tasks(plain)
    )
    return PredictionComparison(all(c.within_tolerance for c in rows), tolerance, rows)


def permuted_copy(data: PreparedData, order: npt.NDArray[np.int64], out: Path) -> Path:
    """A prepared folder whose row i is row `order[i]` of `data` (every array, so that it opens
    like any prepared folder; the child reads only its features)."""
    if order.shape != (data.n_rows,) or not np.array_equal(np.sort(order),
                                                           np.arange(data.n_rows)):
        raise ValueError("order is not a permutation of the test set's rows")
    out.mkdir(parents=True, exist_ok=False)
    try:
        for name in ARRAY_FILES:
            np.save(out / f"{name}.npy", np.asarray(getattr(data, name))[order])
        (out / META_FILE).write_text(json.dumps(json.loads(data.meta.to_json())))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out


def _check_tolerance(tolerance: float) -> None:
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")


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
