"""A warning for a checkpoint whose outputs look swapped against what it declared.

Models of the multi-task library the baselines come from return (pCTR, pCTCVR). A pCTCVR is the
probability of a click *and* a purchase, so it never exceeds pCTR; a pCVR (purchase given a
click) usually does, on real data. A checkpoint declared `ctr,cvr` whose second output is below
its first on most rows is most likely returning pCTCVR; one declared `ctr,ctcvr` whose second
output is above its first on most rows cannot be returning pCTCVR. Either way it is scored as
declared: the warning is shown on the submission so the team can fix its declaration.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# More than half of the rows: "most rows".
MOST = 0.5


def output_order_warning(outputs: str | None, ctr: npt.ArrayLike,
                         second: npt.ArrayLike) -> str | None:
    """The warning for a checkpoint's raw outputs (first and second), or None."""
    first = np.asarray(ctr, dtype=np.float64)
    other = np.asarray(second, dtype=np.float64)
    if first.size == 0 or first.shape != other.shape:
        return None
    declared = outputs or "ctr,cvr"
    if declared == "ctr,cvr":
        share = float(np.mean(other < first))
        if share > MOST:
            return (f"declared ctr,cvr, but the second output is below the first (pCTR) on "
                    f"{share:.0%} of the rows: this is what a model returning (pCTR, pCTCVR) "
                    "gives, as the multi-task library's models do. If so, declare the outputs "
                    "ctr,ctcvr.")
    elif declared == "ctr,ctcvr":
        share = float(np.mean(other > first))
        if share > MOST:
            return (f"declared ctr,ctcvr, but the second output is above the first (pCTR) on "
                    f"{share:.0%} of the rows; a pCTCVR can never exceed pCTR. If the second "
                    "output is pCVR, declare the outputs ctr,cvr.")
    return None
