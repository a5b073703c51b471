"""Shared-Bottom: one bottom MLP on the shared embedding, one tower per task.
Outputs (ctr, ctcvr)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from baselines.config import ModelConfig
from baselines.models.layers import MLP, EmbeddedInput, Tower


class SharedBottom(nn.Module):
    def __init__(self, field_dims: Sequence[int], cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = EmbeddedInput(field_dims, cfg.embed_dim)
        self.bottom = MLP(self.embed.output_dim, cfg.bottom_dims, cfg.dropout)
        self.towers = nn.ModuleList(
            [
                Tower(self.bottom.output_dim, cfg.tower_dims, cfg.dropout, task)
                for task in ("ctr", "ctcvr")
            ]
        )

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        shared = self.bottom(self.embed(categorical, numerical))
        return torch.stack([tower(shared) for tower in self.towers], 1)
