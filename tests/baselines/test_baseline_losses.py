"""Training losses (baselines/losses.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from baselines_factories import FIELD_DIMS, TINY_ARCH, random_inputs
from sklearn.metrics import log_loss

from baselines.losses import multitask_loss
from baselines.models import build_model
from baselines.models.esmm import ESMM

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _labels(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    click = (torch.arange(n) % 3 == 0).float()
    conversion = click * (torch.arange(n) % 2 == 0).float()
    return click, conversion


def test_loss_is_the_mean_of_ctr_and_ctcvr_log_losses() -> None:
    outputs = torch.rand(50, 2, generator=torch.Generator().manual_seed(0)) * 0.98 + 0.01
    click, conversion = _labels(50)
    loss = multitask_loss(outputs, click, conversion, ("ctr", "ctcvr"))
    expected = (
        log_loss(click.numpy(), outputs[:, 0].double().numpy())
        + log_loss(conversion.numpy(), outputs[:, 1].double().numpy())
    ) / 2
    assert np.isclose(loss.item(), expected, rtol=1e-5)


def test_esmm_cvr_column_receives_no_direct_loss() -> None:
    outputs = (torch.rand(40, 3) * 0.9 + 0.05).requires_grad_()
    click, conversion = _labels(40)
    loss = multitask_loss(outputs, click, conversion, ("ctr", "cvr", "ctcvr"))
    # torch ships Tensor.backward without annotations.
    loss.backward()  # type: ignore[no-untyped-call]
    assert outputs.grad is not None
    assert bool((outputs.grad[:, 1] == 0).all())
    assert bool((outputs.grad[:, 0] != 0).any()) and bool((outputs.grad[:, 2] != 0).any())


def test_esmm_cvr_tower_still_learns_through_ctcvr() -> None:
    model = build_model("esmm", FIELD_DIMS, TINY_ARCH)
    assert isinstance(model, ESMM)
    click, conversion = _labels(32)
    loss = multitask_loss(model(*random_inputs(32)), click, conversion, ("ctr", "cvr", "ctcvr"))
    # torch ships Tensor.backward without annotations.
    loss.backward()  # type: ignore[no-untyped-call]
    grads = [p.grad for p in model.cvr_tower.parameters()]
    assert all(g is not None for g in grads)
    assert any(bool(g.abs().sum() > 0) for g in grads if g is not None)


def test_calibration_term_is_zero_when_ctcvr_never_exceeds_ctr() -> None:
    outputs = torch.tensor([[0.5, 0.1], [0.3, 0.3], [0.2, 0.05]])
    click, conversion = torch.tensor([1.0, 0, 0]), torch.tensor([1.0, 0, 0])
    plain = multitask_loss(outputs, click, conversion, ("ctr", "ctcvr"))
    calibrated = multitask_loss(outputs, click, conversion, ("ctr", "ctcvr"), calibration=0.6)
    assert calibrated.item() == plain.item()


def test_calibration_term_adds_the_weighted_mean_excess_of_ctcvr_over_ctr() -> None:
    outputs = torch.tensor([[0.2, 0.5], [0.3, 0.3], [0.4, 0.1]])
    click, conversion = torch.tensor([1.0, 0, 0]), torch.tensor([1.0, 0, 0])
    plain = multitask_loss(outputs, click, conversion, ("ctr", "ctcvr"))
    calibrated = multitask_loss(outputs, click, conversion, ("ctr", "ctcvr"), calibration=0.6)
    assert np.isclose(calibrated.item() - plain.item(), 0.6 * 0.3 / 3, rtol=1e-5)
