"""Small data and model sizes for the baselines tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from baselines.config import ModelConfig, ModelName, TrainConfig

# Every architectural feature (two layers, several experts) at a size that trains in moments.
TINY_ARCH = ModelConfig(
    embed_dim=4,
    bottom_dims=(16, 8),
    tower_dims=(8,),
    dropout=0.2,
    n_experts=3,
    ple_shared_experts=2,
    ple_task_experts=2,
)
FIELD_DIMS = [1, 20, 35, 10, 10, 35, 185, 40, 40, 10, 10, 10, 10, 10, 10, 10]


def random_inputs(rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid indices for FIELD_DIMS (int64) and numericals in [0, 1] (float32)."""
    generator = torch.Generator().manual_seed(seed)
    categorical = torch.stack(
        [torch.randint(0, size, (rows,), generator=generator) for size in FIELD_DIMS], 1
    )
    numerical = torch.rand(rows, 63, generator=generator)
    return categorical, numerical


def tiny_config(model: ModelName, **changes: Any) -> TrainConfig:
    cfg = TrainConfig(
        model=model,
        country="NL",
        arch=TINY_ARCH,
        batch_size=256,
        max_epochs=3,
        val_fraction=0.2,
        device="cpu",
    )
    return replace(cfg, **changes)
