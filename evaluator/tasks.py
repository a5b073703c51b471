"""The three tasks: which test rows and labels each is scored on, and the outputs a submission
may leave out (SPEC "Metrics", "Prediction file", "Checkpoint").

| task  | labels       | scores                              | rows                  |
|-------|--------------|-------------------------------------|-----------------------|
| ctr   | `click`      | pCTR                                | every row             |
| cvr   | `conversion` | pCVR (given, else pCTCVR / pCTR)    | rows with `click == 1`|
| ctcvr | `conversion` | pCTCVR (given, else pCTR · pCVR)    | every row             |

Every part of the evaluator and of the service that selects a task's rows or derives a missing
output calls `task_rows` or `derive_outputs`, so that a file, a checkpoint, the scorer and the
leaderboard's paired tests and ROC curves can never disagree about them.

>>> import numpy as np
>>> click = np.array([1, 0, 1, 0], dtype=np.int8)
>>> conversion = np.array([1, 0, 0, 0], dtype=np.int8)
>>> rows = task_rows("cvr", click, conversion)
>>> rows.indices().tolist(), rows.labels.tolist()
([0, 2], [True, False])
>>> _, cvr, _ = derive_outputs(np.array([0.0, 0.5, 0.2]), ctcvr=np.array([0.0, 0.25, 0.3]))
>>> cvr.tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from evaluator.schema import Task

LabelColumn = Literal["click", "conversion"]

LABEL_COLUMN: Final[Mapping[Task, LabelColumn]] = MappingProxyType(
    {"ctr": "click", "cvr": "conversion", "ctcvr": "conversion"}
)
# CVR is a probability given a click: an impression nobody clicked has no CVR label to speak of.
CLICKED_ROWS_ONLY: Final[frozenset[Task]] = frozenset({"cvr"})

FloatArray = npt.NDArray[np.float64]
LabelArray = npt.NDArray[np.integer] | npt.NDArray[np.bool_]
Outputs = tuple[FloatArray, FloatArray, FloatArray]

ScalarT = TypeVar("ScalarT", bound=np.generic)


@dataclass(frozen=True)
class TaskRows:
    """The test rows one task is scored on, and their labels in the same order.

    `index` is None when the task uses every row in test-set order: a test set has millions of
    rows, and callers then use their whole arrays as they are instead of copies.
    """

    task: Task
    index: npt.NDArray[np.int64] | None
    labels: npt.NDArray[np.bool_]

    def take(self, values: npt.NDArray[ScalarT]) -> npt.NDArray[ScalarT]:
        """`values`, one per test row, restricted to the task's rows (in order)."""
        return values if self.index is None else values[self.index]

    def indices(self) -> npt.NDArray[np.int64]:
        """Positions in the test set (row ids) of the task's rows, ascending."""
        if self.index is None:
            return np.arange(self.labels.size, dtype=np.int64)
        return self.index


def task_rows(task: Task, click: LabelArray, conversion: LabelArray) -> TaskRows:
    """The rows and labels `task` is scored on, from the test set's 0/1 `click` and `conversion`.

    CTR and CTCVR use every row; CVR only the clicked rows. The labels are `click` for CTR and
    `conversion` for CVR and CTCVR.
    """
    clicked = np.asarray(click, dtype=np.bool_)
    converted = np.asarray(conversion, dtype=np.bool_)
    if clicked.ndim != 1 or clicked.shape != converted.shape:
        raise ValueError(
            f"click {clicked.shape} and conversion {converted.shape} must be equal 1-D shapes"
        )
    labels = clicked if LABEL_COLUMN[task] == "click" else converted
    if task in CLICKED_ROWS_ONLY:
        index = np.flatnonzero(clicked).astype(np.int64, copy=False)
        return TaskRows(task=task, index=index, labels=labels[index])
    return TaskRows(task=task, index=None, labels=labels)


def derive_outputs(
    ctr: FloatArray,
    *,
    cvr: FloatArray | None = None,
    ctcvr: FloatArray | None = None,
) -> Outputs:
    """(ctr, cvr, ctcvr) from pCTR and pCVR or pCTCVR (or both), deriving the one left out.

    pCTCVR = pCTR · pCVR. pCVR = pCTCVR / pCTR clipped to [0, 1], and 0 where pCTR is 0. Given
    arrays are returned as they are, not copied.

    >>> import numpy as np
    >>> _, _, ctcvr = derive_outputs(np.array([0.5, 0.1]), cvr=np.array([0.5, 1.0]))
    >>> ctcvr.tolist()
    [0.25, 0.1]
    """
    for name, other in (("cvr", cvr), ("ctcvr", ctcvr)):
        if other is not None and other.shape != ctr.shape:
            raise ValueError(f"{name} has shape {other.shape}, ctr has {ctr.shape}")
    if cvr is not None:
        return ctr, cvr, ctr * cvr if ctcvr is None else ctcvr
    if ctcvr is None:
        raise ValueError("derive_outputs needs cvr or ctcvr besides ctr")
    # 0 where pCTR is 0: no click expected, so no purchase after one either. Clipped because a
    # model may predict pCTCVR > pCTR. The inner where keeps 0/0 out of the division; a tiny
    # pCTR may still overflow to inf, which the clip turns into 1.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        derived = np.where(ctr > 0, np.clip(ctcvr / np.where(ctr > 0, ctr, 1.0), 0.0, 1.0), 0.0)
    return ctr, derived, ctcvr
