"""The warning for a checkpoint whose outputs contradict their declared order."""

from __future__ import annotations

import numpy as np

from app.jobs.output_order import output_order_warning

RNG = np.random.default_rng(0)
CTR = RNG.uniform(0.01, 0.05, 1000)
CVR = CTR * 1.5  # a pCVR above pCTR, as on real data
CTCVR = CTR * 0.03  # pCTCVR = pCTR · pCVR: always below pCTR


def test_declared_ctr_cvr_but_returning_pctcvr_is_warned() -> None:
    warning = output_order_warning("ctr,cvr", CTR, CTCVR)
    assert warning is not None
    assert "100% of the rows" in warning and "ctr,ctcvr" in warning


def test_declared_ctr_ctcvr_but_second_output_above_the_first_is_warned() -> None:
    warning = output_order_warning("ctr,ctcvr", CTR, CVR)
    assert warning is not None
    assert "never exceed pCTR" in warning and "ctr,cvr" in warning


def test_outputs_that_agree_with_their_declaration_are_not_warned() -> None:
    assert output_order_warning("ctr,cvr", CTR, CVR) is None
    assert output_order_warning(None, CTR, CVR) is None
    assert output_order_warning("ctr,ctcvr", CTR, CTCVR) is None
    assert output_order_warning("ctr,cvr,ctcvr", CTR, CTCVR) is None


def test_most_rows_means_more_than_half() -> None:
    second = CTR.copy()
    second[:500] = CTR[:500] * 0.5  # below on exactly half: not most
    second[500:] = CTR[500:] * 2
    assert output_order_warning("ctr,cvr", CTR, second) is None
    second[500] = CTR[500] * 0.5
    assert output_order_warning("ctr,cvr", CTR, second) is not None
