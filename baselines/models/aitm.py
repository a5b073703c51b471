"""AITM (Xi et al., KDD 2021) as in the multi-task library: one bottom per task; the click task's
representation is transferred (Linear) and attended together with the conversion task's own
representation. The paper's label-constraint loss lives in `baselines.losses`.
Outputs (ctr, ctcvr)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from baselines.config import ModelConfig
from baselines.models.layers import MLP, EmbeddedInput, Tower


class AITM(nn.Module):
    def __init__(self, field_dims: Sequence[int], cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = EmbeddedInput(field_dims, cfg.embed_dim)
        hidden = cfg.bottom_dims[-1]
        self.bottoms = nn.ModuleList(
            [MLP(self.embed.output_dim, cfg.bottom_dims, cfg.dropout) for _ in range(2)]
        )
        self.transfer = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.query = nn.Linear(hidden, hidden)
        self.scale = math.sqrt(hidden)
        self.towers = nn.ModuleList(
            [Tower(hidden, cfg.tower_dims, cfg.dropout, task) for task in ("ctr", "ctcvr")]
        )

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        emb = self.embed(categorical, numerical)
        click = self.bottoms[0](emb)
        own = self.bottoms[1](emb)
        items = torch.stack([self.transfer(click), own], 1)  # [B, 2, H]
        scores = (self.key(items) * self.query(items)).sum(2, keepdim=True) / self.scale
        conversion = (torch.softmax(scores, dim=1) * self.value(items)).sum(1)
        return torch.stack([self.towers[0](click), self.towers[1](conversion)], 1)
