"""The reference models. Every model maps (categorical int64 [B, 16], numerical float32 [B, 63])
to probabilities [B, K] whose columns are named by `OUTPUTS[model]` (SPEC "Checkpoint")."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from baselines.config import ModelConfig, ModelName
from baselines.models.aitm import AITM
from baselines.models.dnn import DNN
from baselines.models.esmm import ESMM
from baselines.models.mmoe import MMoE, OMoE
from baselines.models.ple import PLE
from baselines.models.sharedbottom import SharedBottom

_BUILDERS: dict[ModelName, Callable[[Sequence[int], ModelConfig], nn.Module]] = {
    "dnn": DNN,
    "mmoe": MMoE,
    "ple": PLE,
    "esmm": ESMM,
    "aitm": AITM,
    "sharedbottom": SharedBottom,
    "omoe": OMoE,
}

# Two-head models are trained, as in the multi-task library, on click and on conversion over all
# impressions, so their second head is pCTCVR; only ESMM gives pCVR itself.
OUTPUTS: dict[ModelName, tuple[str, ...]] = {
    name: ("ctr", "cvr", "ctcvr") if name == "esmm" else ("ctr", "ctcvr") for name in _BUILDERS
}

DISPLAY_NAMES: dict[ModelName, str] = {
    "dnn": "DNN",
    "mmoe": "MMoE",
    "ple": "PLE",
    "esmm": "ESMM",
    "aitm": "AITM",
    "sharedbottom": "SharedBottom",
    "omoe": "OMoE",
}


def build_model(name: ModelName, field_dims: Sequence[int], cfg: ModelConfig) -> nn.Module:
    return _BUILDERS[name](field_dims, cfg)


__all__ = ["DISPLAY_NAMES", "OUTPUTS", "build_model"]
