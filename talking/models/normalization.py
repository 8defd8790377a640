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

    def modulation(
        self,
        spatial: Mapping[str, torch.Tensor],
        vector: Mapping[str, torch.Tensor],
        size: torch.Size,
    ) -> torch.Tensor | None:
        """The rho-weighted sum of the given modalities' [gamma, beta]: (B, 2C, h, w), or
        (B, 2C, 1, 1) with only vector modalities; None when none of this layer's is given.

        A subset may be given: a modality that is the same for every frame (the person's image)
        is summed once per clip and passed to :meth:`forward` as ``fixed``."""
        rho, channels = self.rho, self.norm.num_features
        column = {name: m for m, name in enumerate(self.modalities)}
        total = None
        # rho folded into each head: its gamma rows scaled by rho[0, m], its beta rows by rho[1, m]
        for name, features in spatial.items():
            head, scale = self.spatial[name], rho[:, column[name]].repeat_interleave(channels)
            if features.shape[-2:] != size:
                features = F.interpolate(features, size=size, mode="bilinear", align_corners=False)
            part = F.conv2d(features, head.weight * scale[:, None, None, None], head.bias * scale)
            total = part if total is None else total + part
        for name, embedding in vector.items():
            head, scale = self.vector[name], rho[:, column[name]].repeat_interleave(channels)
            part = F.linear(embedding, head.weight * scale[:, None], head.bias * scale)[:, :, None, None]
            total = part if total is None else total + part
        return total

    def forward(
        self,
        x: torch.Tensor,
        spatial: Mapping[str, torch.Tensor],
        vector: Mapping[str, torch.Tensor],
        fixed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, C, h, w); spatial[name] (B, C_name, h', w'); vector[name] (B, D_name); ``fixed``
        (1 or B, 2C, h, w): :meth:`modulation` of the modalities not given here (each of this
        layer's modalities is given once, here or in ``fixed``)."""
        params = self.modulation(spatial, vector, x.shape[-2:])
        if fixed is not None:
            params = fixed if params is None else params + fixed
        out = self.norm(x)
        if params is None:
            return out
        gamma, beta = params.chunk(2, dim=1)
        return torch.addcmul(beta, out, gamma + 1)
