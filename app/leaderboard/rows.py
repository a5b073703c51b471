"""Which test rows and labels make each leaderboard column (SPEC "Metrics").

A column is one split of one task: the task's rows and labels are the scorer's
(`evaluator.tasks.task_rows`; CVR: the clicked rows only), kept where they fall in the split.
The paired tests and the ROC curves use them on stored predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evaluator.data.prepared import PreparedData
from evaluator.schema import Split, Task
from evaluator.tasks import task_rows


@dataclass(frozen=True)
class ColumnRows:
    """Indices of the column's rows in the test set, and their labels in that order."""

    index: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int8]


def column_rows(data: PreparedData, split: Split, task: Task) -> ColumnRows:
    rows = task_rows(task, np.asarray(data.click), np.asarray(data.conversion))
    index, labels = rows.indices(), rows.labels
    if split != "full":
        public = rows.take(np.asarray(data.public, dtype=bool))
        in_split = public if split == "public" else ~public
        index, labels = index[in_split], labels[in_split]
    return ColumnRows(index=index, labels=np.ascontiguousarray(labels, dtype=np.int8))
