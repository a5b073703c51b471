"""PLE (Tang et al., RecSys 2020): extraction layers (one per entry of `bottom_dims`) of task
experts and shared experts, each a one-layer MLP. A task's gate mixes its own experts with the
shared ones; the shared gate mixes all of them and feeds the next layer's shared experts (so the
last layer has none). Outputs (ctr, ctcvr)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from baselines.config import ModelConfig
from baselines.models.layers import MLP, EmbeddedInput, Tower

TASKS = ("ctr", "ctcvr")


def _gate(width: int, n_experts: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width, n_experts), nn.Softmax(dim=1))


def _mix(weights: torch.Tensor, experts: list[torch.Tensor]) -> torch.Tensor:
    """Gate weights [B, n] times the n expert outputs [B, D] each."""
    return torch.bmm(weights.unsqueeze(1), torch.stack(experts, 1)).squeeze(1)


class ExpertGroup(nn.Module):
    """`n` one-layer experts on the same input; returns their outputs as a list."""

    def __init__(self, width: int, dim: int, n: int, dropout: float) -> None:
        super().__init__()
        self.experts = nn.ModuleList([MLP(width, (dim,), dropout) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [expert(x) for expert in self.experts]


class ExtractionLayer(nn.Module):
    def __init__(self, width: int, dim: int, cfg: ModelConfig, with_shared_gate: bool) -> None:
        super().__init__()
        n_task, n_shared = cfg.ple_task_experts, cfg.ple_shared_experts
        self.task_experts = nn.ModuleList(
            [ExpertGroup(width, dim, n_task, cfg.dropout) for _ in TASKS]
        )
        self.shared_experts = ExpertGroup(width, dim, n_shared, cfg.dropout)
        self.task_gates = nn.ModuleList([_gate(width, n_task + n_shared) for _ in TASKS])
        # An identity stand-in keeps the attribute's type fixed for TorchScript on the last layer.
        n_all = n_shared + len(TASKS) * n_task
        self.shared_gate = _gate(width, n_all) if with_shared_gate else nn.Identity()
        self.with_shared_gate = with_shared_gate

    def forward(
        self, task_inputs: list[torch.Tensor], shared_input: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        shared: list[torch.Tensor] = self.shared_experts(shared_input)
        everything = list(shared)
        own: list[list[torch.Tensor]] = []
        for task, experts in enumerate(self.task_experts):
            outputs: list[torch.Tensor] = experts(task_inputs[task])
            own.append(outputs)
            everything.extend(outputs)
        mixed: list[torch.Tensor] = []
        for task, gate in enumerate(self.task_gates):
            mixed.append(_mix(gate(task_inputs[task]), own[task] + shared))
        if self.with_shared_gate:
            return mixed, _mix(self.shared_gate(shared_input), everything)
        return mixed, shared_input


class PLE(nn.Module):
    def __init__(self, field_dims: Sequence[int], cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = EmbeddedInput(field_dims, cfg.embed_dim)
        widths = [self.embed.output_dim, *cfg.bottom_dims[:-1]]
        last = len(cfg.bottom_dims) - 1
        self.layers = nn.ModuleList(
            [
                ExtractionLayer(width, dim, cfg, with_shared_gate=i < last)
                for i, (width, dim) in enumerate(zip(widths, cfg.bottom_dims, strict=True))
            ]
        )
        self.towers = nn.ModuleList(
            [Tower(cfg.bottom_dims[-1], cfg.tower_dims, cfg.dropout, task) for task in TASKS]
        )

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        emb = self.embed(categorical, numerical)
        tasks = [emb, emb]  # both tasks start from the shared embedding
        shared = emb
        for layer in self.layers:
            tasks, shared = layer(tasks, shared)
        return torch.stack([tower(tasks[i]) for i, tower in enumerate(self.towers)], 1)
