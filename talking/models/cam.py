"""The class activation map (CAM) layer of U-GAT-IT (Kim et al. 2020), used by the generator and,
under spectral norm, by every discriminator scale (paper Fig. 8 and Eq. 9).

Global average pooling and global max pooling each feed a one-logit classifier; the classifier
weights then weigh the channels of the feature map, the two weighted maps are fused by a 1x1
convolution, and the channel sum of the result is the attention map.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from talking.models.encoders import activation


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """``module`` under spectral norm (a parametrisation, so ``module.weight`` is the normalised
    weight) when ``enabled``."""
    return spectral_norm(module) if enabled else module


class CAMHead(nn.Module):
    """x (B, C, h, w) -> (features (B, C, h, w), logits (B, 2), attention (B, 1, h, w)).

    ``logits`` are the GAP and GMP classifier outputs. The channel weights are read from
    ``fc.weight`` once per call, which under spectral norm is the normalised weight the logits
    were computed with (not ``weight_orig``, the slip in U-GAT-IT's reference code).
    """

    def __init__(self, channels: int, spectral_norm: bool = False) -> None:
        super().__init__()
        self.gap_fc = maybe_spectral_norm(nn.Linear(channels, 1, bias=False), spectral_norm)
        self.gmp_fc = maybe_spectral_norm(nn.Linear(channels, 1, bias=False), spectral_norm)
        self.fuse = maybe_spectral_norm(nn.Conv2d(2 * channels, channels, 1), spectral_norm)
        self.act = activation()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w_gap = self.gap_fc.weight  # (1, C)
        w_gmp = self.gmp_fc.weight
        logits = torch.cat([x.mean(dim=(2, 3)) @ w_gap.T, x.amax(dim=(2, 3)) @ w_gmp.T], dim=1)
        weighted = torch.cat([x * w_gap[0, :, None, None], x * w_gmp[0, :, None, None]], dim=1)
        features = self.act(self.fuse(weighted))  # (B, C, h, w)
        return features, logits, features.sum(dim=1, keepdim=True)
