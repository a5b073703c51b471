"""DNN, the challenge's single-task baseline (MTReclib "SingleTask"): each task has its own
embedding, bottom and tower; nothing is shared. Outputs (ctr, ctcvr)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from baselines.config import ModelConfig
from baselines.models.layers import MLP, EmbeddedInput, Tower


class SingleTaskNet(nn.Module):
    def __init__(self, field_dims: Sequence[int], cfg: ModelConfig, task: str) -> None:
        super().__init__()
        self.embed = EmbeddedInput(field_dims, cfg.embed_dim)
        self.bottom = MLP(self.embed.output_dim, cfg.bottom_dims, cfg.dropout)
        self.tower = Tower(self.bottom.output_dim, cfg.tower_dims, cfg.dropout, task)

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        probability: torch.Tensor = self.tower(self.bottom(self.embed(categorical, numerical)))
        return probability


class DNN(nn.Module):
    def __init__(self, field_dims: Sequence[int], cfg: ModelConfig) -> None:
        super().__init__()
        self.ctr = SingleTaskNet(field_dims, cfg, "ctr")
        self.ctcvr = SingleTaskNet(field_dims, cfg, "ctcvr")

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [self.ctr(categorical, numerical), self.ctcvr(categorical, numerical)], 1
        )
