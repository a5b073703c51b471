"""ESMM (Ma et al., SIGIR 2018): a CTR tower and a CVR tower on one shared embedding;
pCTCVR = pCTR · pCVR. Only CTR and CTCVR are supervised (see `baselines.losses`): the CVR tower
learns through the product over all impressions, which is the point of the model.
Outputs (ctr, cvr, ctcvr)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from baselines.config import ModelConfig
from baselines.models.layers import MLP, EmbeddedInput, Tower


class ESMM(nn.Module):
    def __init__(self, field_dims: Sequence[int], cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = EmbeddedInput(field_dims, cfg.embed_dim)
        width = self.embed.output_dim
        self.ctr_bottom = MLP(width, cfg.bottom_dims, cfg.dropout)
        self.ctr_tower = Tower(self.ctr_bottom.output_dim, cfg.tower_dims, cfg.dropout, "ctr")
        self.cvr_bottom = MLP(width, cfg.bottom_dims, cfg.dropout)
        self.cvr_tower = Tower(self.cvr_bottom.output_dim, cfg.tower_dims, cfg.dropout, "cvr")

    def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
        emb = self.embed(categorical, numerical)
        ctr = self.ctr_tower(self.ctr_bottom(emb))
        cvr = self.cvr_tower(self.cvr_bottom(emb))
        return torch.stack([ctr, cvr, ctr * cvr], 1)
