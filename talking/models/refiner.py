"""The inside of the mouth at more than the crop's resolution: a small network that refines the
generator's rendering, upsampled ``scale`` times, where the mouth is open.

The generator renders at the crop's resolution (128 px), and a photo's face is often 3-7 photo
pixels to a crop pixel: upsampled, its mouth's inside is a soft grey-to-dark gradient where a
real mouth shows the dark of the cavity, the edges of the teeth and the shadow under the lips.
The refiner is trained on the synthetic corpus re-rendered at ``scale`` times its resolution
(:mod:`talking.training.refiner`): from the generator's own rendering of a frame (upsampled
bicubically) and the opening's weight, it makes that frame's inside as the renderer draws it at
the higher resolution. Its convolutions run at the crop's resolution on the inputs folded into
channels (each crop pixel's ``scale`` x ``scale`` block, :func:`torch.nn.functional.pixel_unshuffle`),
and its output is unfolded back into blocks: a residual on the upsampled rendering. Dilated
3x3 convolutions see ~37 crop pixels around each pixel, the whole mouth; folded, a frame's
inside costs ~3 ms on one core (unfolded, at 4x, 26 ms).

Shapes: rendering (B, 3, h, w) in [-1, 1] at ``scale`` pixels per crop pixel, alpha (B, 1, h, w)
in [0, 1] (where it shows) -> (B, 3, h, w) in [-1, 1].
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F


class MouthRefiner(ModelMixin, ConfigMixin):
    """The generator's rendering, upsampled ``scale`` times, made sharp inside the mouth.

    Args:
        scale: its pixels per crop pixel (the corpus is re-rendered at this many times its size).
        channels: feature channels of every layer.
        dilations: one residual 3x3 convolution per entry, at that dilation.
    """

    @register_to_config
    def __init__(self, scale: int = 4, channels: int = 48,
                 dilations: tuple[int, ...] = (1, 2, 4, 8, 1)) -> None:
        super().__init__()
        self.inp = nn.Conv2d(4 * scale**2, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=d, dilation=d) for d in dilations)
        self.out = nn.Conv2d(channels, 3 * scale**2, 3, padding=1)

    def forward(self, rendering: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """rendering (B, 3, h, w), alpha (B, 1, h, w), h and w multiples of ``scale`` -> the
        refined rendering (B, 3, h, w)."""
        scale = self.config.scale
        folded = F.pixel_unshuffle(torch.cat([rendering, alpha], dim=1), scale)  # (B, 4 s^2, h/s, w/s)
        features = F.relu(self.inp(folded))
        for conv in self.body:
            features = features + F.relu(conv(features))
        return (rendering + F.pixel_shuffle(self.out(features), scale)).clamp(-1, 1)
