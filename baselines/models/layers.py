"""Building blocks shared by every baseline: the embedded input and the MLP (SPEC "Reference
baseline settings", the multi-task library's `layers.py`)."""

# No `from __future__ import annotations` here: TorchScript reads the class-level buffer
# annotations below at runtime and cannot resolve them as strings.

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from evaluator.schema import N_CATEGORICAL, N_NUMERICAL


class EmbeddedInput(nn.Module):
    """One shared embedding table with per-field offsets; the 63 numerical values go through one
    Linear and count as a 17th field. Output: [B, 17 * embed_dim].

    Indices are clamped into each field's vocabulary: the evaluator feeds raw test values, and an
    index past the table (or a negative one) must give a prediction, not an IndexError.
    """

    offsets: Tensor
    max_index: Tensor

    def __init__(self, field_dims: Sequence[int], embed_dim: int) -> None:
        super().__init__()
        if len(field_dims) != N_CATEGORICAL or min(field_dims) < 1:
            raise ValueError(
                f"field_dims must hold {N_CATEGORICAL} sizes >= 1, got {list(field_dims)}"
            )
        sizes = torch.tensor(list(field_dims), dtype=torch.int64)
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)[:-1]])
        # Buffers, not numpy arrays, so that the archive carries them and jit.script accepts them.
        self.register_buffer("offsets", offsets)
        self.register_buffer("max_index", sizes - 1)
        self.embedding = nn.Embedding(int(sizes.sum()), embed_dim)
        nn.init.xavier_uniform_(self.embedding.weight)
        self.numerical = nn.Linear(N_NUMERICAL, embed_dim)
        self.output_dim = (N_CATEGORICAL + 1) * embed_dim

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        index = torch.minimum(categorical.long().clamp_min(0), self.max_index) + self.offsets
        fields = self.embedding(index)  # [B, 16, E]
        dense = self.numerical(numerical.float()).unsqueeze(1)  # [B, 1, E]
        return torch.cat([fields, dense], dim=1).flatten(1)


class MLP(nn.Sequential):
    """Linear → BatchNorm1d → ReLU → Dropout per layer; with `head`, a final Linear(→ 1)."""

    def __init__(
        self, input_dim: int, dims: Sequence[int], dropout: float, head: bool = False
    ) -> None:
        layers: list[nn.Module] = []
        for dim in dims:
            layers += [
                nn.Linear(input_dim, dim),
                nn.BatchNorm1d(dim),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            input_dim = dim
        if head:
            layers.append(nn.Linear(input_dim, 1))
            input_dim = 1
        super().__init__(*layers)
        self.output_dim = input_dim


class Tower(nn.Module):
    """A task tower ending in a probability: MLP(dims) → Linear(→ 1) → sigmoid, shape [B].
    `task` (ctr, cvr or ctcvr) names what the probability estimates."""

    def __init__(self, input_dim: int, dims: Sequence[int], dropout: float, task: str) -> None:
        super().__init__()
        self.mlp = MLP(input_dim, dims, dropout, head=True)
        self.task = task

    def set_prior(self, rate: float) -> None:
        """Start the output at the label's base rate instead of 0.5. At 0.07 % purchases the
        head's bias must reach about -7; Adam moves it ~lr per step, so from 0 that takes
        thousands of steps: within the first epoch on real data, but many epochs of a small data
        set, during which the CVR-AUC stopping rule would fire on noise."""
        rate = min(max(rate, 1e-6), 1 - 1e-6)
        head = self.mlp[-1]
        assert isinstance(head, nn.Linear)
        with torch.no_grad():
            head.bias.fill_(math.log(rate / (1 - rate)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(x).squeeze(1))
