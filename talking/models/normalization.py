"""Multimodal adaptive normalization (MAN), the paper's normalisation layer (Fig. 7, Eq. 5-6).

The activation is instance-normalised, then modulated as SPADE does, ``IN(x) * (1 + gamma) + beta``,
where gamma and beta are linear combinations of per-modality affine parameters::

    gamma = sum_m rho_gamma[m] * gamma_m        beta = sum_m rho_beta[m] * beta_m

- spatial modalities (the person's image, the predicted flow or keypoint heatmaps) arrive as feature
  maps from their 2D encoders; a 1x1 convolution per modality turns the map, resized to the
  layer's resolution, into spatial gamma_m, beta_m (B, C, h, w);
- vector modalities (mel, pitch, energy embeddings) give per-channel gamma_m, beta_m (B, C, 1, 1)
  through a linear layer.

The weights rho are ``sigmoid`` of free parameters, so they stay in [0, 1] whatever the optimiser
does. A modality that is not listed has no head, no rho and no computation.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


class MultimodalAdaptiveNorm(nn.Module):
    """``x`` (B, C, h, w) -> IN(x) * (1 + gamma) + beta, conditioned on several modalities.

    Args:
        channels: C, the channels of the normalised activation.
        spatial_channels: name -> channels of each spatial modality's feature map.
        vector_channels: name -> width of each vector modality's embedding.
    """

    def __init__(
        self, channels: int, spatial_channels: Mapping[str, int], vector_channels: Mapping[str, int]
    ) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.spatial = nn.ModuleDict(
            {name: nn.Conv2d(width, 2 * channels, 1) for name, width in spatial_channels.items()}
        )
        self.vector = nn.ModuleDict(
            {name: nn.Linear(width, 2 * channels) for name, width in vector_channels.items()}
        )
        # rho = sigmoid(rho_logit): row 0 weighs the gammas, row 1 the betas; 0.5 at start.
        self.rho_logit = nn.Parameter(torch.zeros(2, len(self.spatial) + len(self.vector)))

    @property
    def modalities(self) -> list[str]:
        """Modality names in the column order of :attr:`rho`."""
        return [*self.spatial, *self.vector]

    @property
    def rho(self) -> torch.Tensor:
        """(2, M) weights in [0, 1]: row 0 for the gammas, row 1 for the betas."""
        return torch.sigmoid(self.rho_logit)

    def forward(
        self,
        x: torch.Tensor,
        spatial: Mapping[str, torch.Tensor],
        vector: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        """x (B, C, h, w); spatial[name] (B, C_name, h', w'); vector[name] (B, D_name)."""
        size = x.shape[-2:]
        params = []  # (B, 2C, h or 1, w or 1) per modality, in `modalities` order
        for name, head in self.spatial.items():
            features = spatial[name]
            if features.shape[-2:] != size:
                features = F.interpolate(features, size=size, mode="bilinear", align_corners=False)
            params.append(head(features))
        for name, head in self.vector.items():
            params.append(head(vector[name])[:, :, None, None])
        out = self.norm(x)
        if not params:
            return out
        rho = self.rho
        gamma = sum(rho[0, m] * p[:, : x.shape[1]] for m, p in enumerate(params))
        beta = sum(rho[1, m] * p[:, x.shape[1] :] for m, p in enumerate(params))
        return out * (1 + gamma) + beta
