"""Which test rows and labels make each leaderboard column (SPEC "Metrics").

CTR: `click` over all rows of the split; CVR: `conversion` over the split's clicked rows; CTCVR:
`conversion` over all rows of the split. The same definitions as the scorer's, applied to stored
predictions for the paired tests and the ROC curves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evaluator.data.prepared import PreparedData
from evaluator.schema import Split, Task


@dataclass(frozen=True)
class ColumnRows:
    """Indices of the column's rows in the test set, and their labels in that order."""

    index: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int8]


def column_rows(data: PreparedData, split: Split, task: Task) -> ColumnRows:
    click = np.asarray(data.click)
    if split == "full":
        mask = np.ones(click.shape[0], dtype=bool)
    else:
        public = np.asarray(data.public, dtype=bool)
        mask = public if split == "public" else ~public
    if task == "cvr":
        mask = mask & (click == 1)
    index = np.flatnonzero(mask).astype(np.int64)
    source = click if task == "ctr" else np.asarray(data.conversion)
    return ColumnRows(index=index, labels=np.ascontiguousarray(source[index], dtype=np.int8))
