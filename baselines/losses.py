"""Training losses. Only CTR and CTCVR are ever supervised: `conversion` is a label over all
impressions, so no head is fitted to it as if it were pCVR; ESMM's CVR column therefore gets no
direct loss (it learns through pCTCVR = pCTR · pCVR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multitask_loss(
    outputs: torch.Tensor,
    click: torch.Tensor,
    conversion: torch.Tensor,
    names: tuple[str, ...],
    calibration: float = 0.0,
) -> torch.Tensor:
    """Mean of BCE(click, pCTR) and BCE(conversion, pCTCVR); with `calibration` > 0, AITM's
    label constraint `calibration · mean(max(pCTCVR − pCTR, 0))` (a purchase needs a click)."""
    ctr = outputs[:, names.index("ctr")]
    ctcvr = outputs[:, names.index("ctcvr")]
    loss = (F.binary_cross_entropy(ctr, click) + F.binary_cross_entropy(ctcvr, conversion)) / 2
    if calibration > 0:
        loss = loss + calibration * torch.relu(ctcvr - ctr).mean()
    return loss
