"""Embedded input and towers (baselines/models/layers.py)."""

from __future__ import annotations

import pytest
import torch

from baselines.models.layers import MLP, EmbeddedInput, Tower


def test_embedded_input_width_is_seventeen_fields() -> None:
    layer = EmbeddedInput([3] * 16, embed_dim=5)
    out = layer(torch.zeros(2, 16, dtype=torch.int64), torch.zeros(2, 63))
    assert out.shape == (2, 17 * 5)
    assert layer.output_dim == 85


def test_fields_use_their_own_rows_of_the_shared_table() -> None:
    layer = EmbeddedInput([2] * 16, embed_dim=3)
    out = layer(torch.ones(1, 16, dtype=torch.int64), torch.zeros(1, 63)).view(17, 3)
    # Field f, index 1 sits at row 2 f + 1 of the table.
    expected = layer.embedding.weight[[2 * f + 1 for f in range(16)]]
    torch.testing.assert_close(out[:16], expected)


@pytest.mark.parametrize("dims", [[3] * 15, [3] * 15 + [0]])
def test_embedded_input_refuses_bad_field_sizes(dims: list[int]) -> None:
    with pytest.raises(ValueError, match="field_dims"):
        EmbeddedInput(dims, embed_dim=4)


def test_mlp_layers_are_linear_batchnorm_relu_dropout() -> None:
    mlp = MLP(10, (6, 4), dropout=0.2, head=True)
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert mlp.output_dim == 1


def test_tower_prior_sets_the_output_to_the_base_rate() -> None:
    tower = Tower(8, (4,), dropout=0.0, task="ctcvr").eval()
    head = tower.mlp[-1]
    assert isinstance(head, torch.nn.Linear)
    with torch.no_grad():
        head.weight.zero_()
    tower.set_prior(0.0007)
    torch.testing.assert_close(tower(torch.randn(5, 8)), torch.full((5,), 0.0007))
