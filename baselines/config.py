"""Typed configuration of one baseline run. Defaults are SPEC's "Reference baseline settings"."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

ModelName = Literal["dnn", "mmoe", "ple", "esmm", "aitm", "sharedbottom", "omoe"]
MODEL_NAMES: tuple[ModelName, ...] = ("dnn", "mmoe", "ple", "esmm", "aitm", "sharedbottom", "omoe")
# The five the challenge publishes results for (the demo trains these).
CHALLENGE_MODELS: tuple[ModelName, ...] = ("dnn", "mmoe", "ple", "esmm", "aitm")
Preset = Literal["spec", "demo"]


def parse_model(value: str) -> ModelName:
    name = value.strip().lower()
    for model in MODEL_NAMES:
        if name == model:
            return model
    raise ValueError(f"unknown model {value!r}: expected one of {', '.join(MODEL_NAMES)}")


@dataclass(frozen=True)
class ModelConfig:
    embed_dim: int = 128
    bottom_dims: tuple[int, ...] = (512, 256)  # bottoms and experts
    tower_dims: tuple[int, ...] = (128, 64)
    dropout: float = 0.2
    n_experts: int = 8  # MMoE / OMoE
    ple_shared_experts: int = 4
    ple_task_experts: int = 4


@dataclass(frozen=True)
class TrainConfig:
    model: ModelName
    country: str
    arch: ModelConfig = field(default_factory=ModelConfig)
    lr: float = 1e-3
    weight_decay: float = 1e-6
    batch_size: int = 2048
    max_epochs: int = 50
    patience: int = 2
    # Share of train's search pages held out to choose the epoch: never the test set.
    val_fraction: float = 0.1
    # AITM's label-constraint loss weight (the paper's 0.6); 0 switches it off.
    aitm_calibration: float = 0.6
    # Output biases start at the labels' base rates (see `Tower.set_prior`); False keeps the
    # multi-task library's plain initialisation.
    prior_init: bool = True
    seed: int = 2022
    device: str = "auto"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        # JSON turns the dimension tuples into lists; the dataclass compares them as tuples.
        arch: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.get("arch", {}).items()
        }
        return cls(**{**data, "arch": ModelConfig(**arch)})

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(path.read_text()))


# Small enough that five models x four countries of the synthetic demo data train in minutes on
# two CPU cores; the same architectures, narrower.
DEMO_ARCH = ModelConfig(
    embed_dim=16,
    bottom_dims=(64, 32),
    tower_dims=(32, 16),
    n_experts=4,
    ple_shared_experts=2,
    ple_task_experts=2,
)


def preset_config(preset: Preset, model: ModelName, country: str) -> TrainConfig:
    base = TrainConfig(model=model, country=country)
    if preset == "demo":
        return replace(base, arch=DEMO_ARCH, batch_size=512, max_epochs=8, val_fraction=0.2)
    return base
