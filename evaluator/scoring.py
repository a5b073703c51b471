"""Scores of a submission per split and task (SPEC "Metrics").

Each task is scored on the rows and labels `evaluator.tasks.task_rows` gives (CVR: the clicked
rows only), within each split.

Splits: `public` (rows where the prepared `public` mask is True), `private` (the rest) and
`full` (all rows). JSON shape (what `leaderboard score` prints and the service stores)::

    {"scorer_version": "1",
     "splits": {"public": {"ctr": {"auc": 0.71, "ci_low": 0.70, "ci_high": 0.72,
                                   "logloss": 0.09, "n_pos": 120, "n_neg": 5000}, ...}, ...}}

`auc`, `ci_low`, `ci_high` are null when a split's labels hold one class; `reason` then says
why (it is present only when there is something to say).
"""

from __future__ import annotations

import math
import os
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from evaluator.data.prepared import PreparedData
from evaluator.memory import small_pages
from evaluator.metrics import LOGLOSS_EPS, AucResult, auc_partition
from evaluator.predictions import Predictions
from evaluator.schema import SPLITS, TASKS, Split, Task
from evaluator.tasks import task_rows

# Bump when anything that changes a score changes; scores are stored per scorer version.
SCORER_VERSION = "1"

_FIELDS = ("auc", "ci_low", "ci_high", "logloss", "n_pos", "n_neg")


@dataclass(frozen=True)
class TaskScore:
    auc: float | None
    ci_low: float | None
    ci_high: float | None
    logloss: float | None
    n_pos: int
    n_neg: int
    reason: str | None = None  # why auc is None (one class only), or why the CI is [0, 1]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "score") -> TaskScore:
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
        missing = [name for name in _FIELDS if name not in obj]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)}")
        unknown = set(obj) - {*_FIELDS, "reason"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")

        def number(name: str) -> float | None:
            value = obj[name]
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}.{name}: expected a number or null, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{where}.{name}: not finite ({value!r})")
            return float(value)

        def count(name: str) -> int:
            value = obj[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{where}.{name}: expected a count, got {value!r}")
            return value

        reason = obj.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ValueError(f"{where}.reason: expected a string, got {reason!r}")
        return cls(
            auc=number("auc"), ci_low=number("ci_low"), ci_high=number("ci_high"),
            logloss=number("logloss"), n_pos=count("n_pos"), n_neg=count("n_neg"),
            reason=reason,
        )


@dataclass(frozen=True)
class ScoreReport:
    scorer_version: str
    scores: dict[Split, dict[Task, TaskScore]]

    def to_json(self) -> dict[str, Any]:
        return {
            "scorer_version": self.scorer_version,
            "splits": {
                split: {task: score.to_json() for task, score in tasks.items()}
                for split, tasks in self.scores.items()
            },
        }

    @classmethod
    def from_json(cls, obj: Any) -> ScoreReport:
        """The inverse of `to_json`; refuses anything of another shape with a clear error."""
        if not isinstance(obj, dict) or set(obj) != {"scorer_version", "splits"}:
            raise ValueError("expected an object with exactly scorer_version and splits")
        version = obj["scorer_version"]
        if not isinstance(version, str):
            raise ValueError(f"scorer_version: expected a string, got {version!r}")
        splits = obj["splits"]
        if not isinstance(splits, dict):
            raise ValueError("splits: expected an object")
        scores: dict[Split, dict[Task, TaskScore]] = {}
        for split_name, tasks in splits.items():
            split = next((s for s in SPLITS if s == split_name), None)
            if split is None:
                raise ValueError(f"splits: unknown split {split_name!r}")
            if not isinstance(tasks, dict):
                raise ValueError(f"splits.{split}: expected an object")
            per_task: dict[Task, TaskScore] = {}
            for task_name, value in tasks.items():
                task = next((t for t in TASKS if t == task_name), None)
                if task is None:
                    raise ValueError(f"splits.{split}: unknown task {task_name!r}")
                per_task[task] = TaskScore.from_json(value, f"splits.{split}.{task}")
            scores[split] = per_task
        return cls(scorer_version=version, scores=scores)


def _row_losses(labels: npt.NDArray[np.bool_], probs: npt.NDArray[np.float64],
                out: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float64]:
    # In place (and in `out` when given): each fresh array of a test set's size costs its page
    # faults.
    chosen = np.clip(probs, LOGLOSS_EPS, 1.0 - LOGLOSS_EPS, out=out)
    np.subtract(1.0, chosen, out=chosen, where=~labels)
    return np.negative(np.log(chosen, out=chosen), out=chosen)


def _mean(values: npt.NDArray[np.float64]) -> float | None:
    return float(values.mean()) if values.size else None


def _task_score(result: AucResult, logloss: float | None) -> TaskScore:
    return TaskScore(
        auc=result.auc, ci_low=result.ci_low, ci_high=result.ci_high, logloss=logloss,
        n_pos=result.n_pos, n_neg=result.n_neg, reason=result.reason,
    )


def score_predictions(data: PreparedData, predictions: Predictions) -> ScoreReport:
    """AUC with 95 % DeLong interval and log-loss per split and task.

    Each score vector is sorted once for all three splits (see `metrics.auc_partition`), and
    each row's log-loss term is computed once and averaged per split. The tasks' AUCs and
    log-losses are independent, and numpy releases the GIL in its sorts and loops, so they run
    in a few threads.
    """
    n = data.n_rows
    for task in TASKS:
        size = getattr(predictions, task).shape
        if size != (n,):
            raise ValueError(f"predictions.{task} has shape {size}; the test set has {n} rows")
    # As booleans once here, so that task_rows takes them as they are for each of the tasks.
    click = np.asarray(data.click, dtype=bool)
    conversion = np.asarray(data.conversion, dtype=bool)
    public = np.asarray(data.public, dtype=bool)
    probabilities: dict[Task, npt.NDArray[np.float64]] = {
        "ctr": predictions.ctr, "cvr": predictions.cvr, "ctcvr": predictions.ctcvr,
    }
    inputs = {}
    for task in TASKS:
        rows = task_rows(task, click, conversion)
        probs = np.asarray(rows.take(probabilities[task]), dtype=np.float64)
        inputs[task] = (rows.labels, probs, rows.take(public))
    workers = min(2, os.cpu_count() or 1)
    # Two float64 buffers of the test set's size per worker, reused by every task, on small
    # pages (`evaluator.memory`): fresh ones per task cost more in page faults than the sorts
    # and logs they hold.
    free: queue.SimpleQueue[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = (
        queue.SimpleQueue())
    for _ in range(workers):
        free.put((small_pages(n, np.float64), small_pages(n, np.float64)))

    def score_task(task: Task) -> tuple[TaskScore, TaskScore, TaskScore]:
        labels, probs, part = inputs[task]
        work, picked = free.get()
        try:
            full, in_part, rest = auc_partition(labels, probs, part, scratch=work)
            losses = _row_losses(labels, probs, out=work[: probs.size])
            # Each split's mean over its rows in row order, copied into `picked`: the same sum
            # as a mean of `losses[part]`, without a fresh array.
            means = [_mean(losses)]
            for rows_in in (part, ~part):
                k = int(np.count_nonzero(rows_in))
                means.append(_mean(np.compress(rows_in, losses, out=picked[:k])))
        finally:
            free.put((work, picked))
        return (_task_score(full, means[0]), _task_score(in_part, means[1]),
                _task_score(rest, means[2]))

    scores: dict[Split, dict[Task, TaskScore]] = {split: {} for split in SPLITS}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for task, future in [(task, pool.submit(score_task, task)) for task in TASKS]:
            full_score, part_score, rest_score = future.result()
            scores["full"][task] = full_score
            scores["public"][task] = part_score
            scores["private"][task] = rest_score
    ordered: dict[Split, dict[Task, TaskScore]] = {
        split: {task: scores[split][task] for task in TASKS} for split in SPLITS
    }
    return ScoreReport(scorer_version=SCORER_VERSION, scores=ordered)
