"""MMoE and its one-gate relative OMoE: experts on the shared embedding, mixed per task by a
softmax gate over the embedding (per task for MMoE, one for both tasks for OMoE).
Outputs (ctr, ctcvr)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from baselines.config import ModelConfig
from baselines.models.layers import MLP, EmbeddedInput, Tower


class MMoE(nn.Module):
    def __init__(
        self, field_dims: Sequence[int], cfg: ModelConfig, shared_gate: bool = False
    ) -> None:
        super().__init__()
        self.embed = EmbeddedInput(field_dims, cfg.embed_dim)
        width = self.embed.output_dim
        self.experts = nn.ModuleList(
            [MLP(width, cfg.bottom_dims, cfg.dropout) for _ in range(cfg.n_experts)]
        )
        n_gates = 1 if shared_gate else 2
        self.gates = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(width, cfg.n_experts), nn.Softmax(dim=1))
                for _ in range(n_gates)
            ]
        )
        self.towers = nn.ModuleList(
            [
                Tower(cfg.bottom_dims[-1], cfg.tower_dims, cfg.dropout, task)
                for task in ("ctr", "ctcvr")
            ]
        )
        self.shared_gate = shared_gate

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        emb = self.embed(categorical, numerical)
        experts = torch.stack([expert(emb) for expert in self.experts], 1)  # [B, n, D]
        weights = [gate(emb) for gate in self.gates]  # each [B, n]
        outputs: list[torch.Tensor] = []
        for task, tower in enumerate(self.towers):
            weight = weights[0] if self.shared_gate else weights[task]
            mixed = torch.bmm(weight.unsqueeze(1), experts).squeeze(1)
            outputs.append(tower(mixed))
        return torch.stack(outputs, 1)


class OMoE(MMoE):
    def __init__(self, field_dims: Sequence[int], cfg: ModelConfig) -> None:
        super().__init__(field_dims, cfg, shared_gate=True)
