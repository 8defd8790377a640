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

The rendering alone leaves open what a blurred inside stands for: the corpus draws teeth, a
tongue or the dark of the cavity by mouth parameters that the generator's motion input (flow or
contour heatmaps) does not carry, so it renders their mean, a soft grey lens. With
``mouth_parameters`` > 0 the refiner is also given the frame's mouth parameters
(:data:`~talking.config.MOUTH_PARAMETERS`: how far the teeth and the tongue show, ...), as
constant input channels.

Shapes: rendering (B, 3, h, w) in [-1, 1] at ``scale`` pixels per crop pixel, alpha (B, 1, h, w)
in [0, 1] (where it shows), parameters (B, P) in [0, 1] -> (B, 3, h, w) in [-1, 1].
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
        mouth_parameters: how many mouth parameters it is given with each frame (0: none).
    """

    @register_to_config
    def __init__(self, scale: int = 4, channels: int = 48,
                 dilations: tuple[int, ...] = (1, 2, 4, 8, 1), mouth_parameters: int = 0) -> None:
        super().__init__()
        self.inp = nn.Conv2d(4 * scale**2 + mouth_parameters, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=d, dilation=d) for d in dilations)
        self.out = nn.Conv2d(channels, 3 * scale**2, 3, padding=1)

    def forward(self, rendering: torch.Tensor, alpha: torch.Tensor,
                parameters: torch.Tensor | None = None) -> torch.Tensor:
        """rendering (B, 3, h, w), alpha (B, 1, h, w), h and w multiples of ``scale``, and the
        frames' mouth parameters (B, P), read only by a refiner that takes them -> the refined
        rendering (B, 3, h, w)."""
        scale, count = self.config.scale, self.config.mouth_parameters
        if count and (parameters is None or parameters.shape[-1] != count):
            given = None if parameters is None else tuple(parameters.shape)
            raise ValueError(f"this refiner takes {count} mouth parameters a frame, got {given}")
        folded = F.pixel_unshuffle(torch.cat([rendering, alpha], dim=1), scale)  # (B, 4 s^2, h/s, w/s)
        if count:
            constant = parameters.to(folded)[:, :, None, None].expand(-1, -1, *folded.shape[-2:])
            folded = torch.cat([folded, constant], dim=1)  # (B, 4 s^2 + P, h/s, w/s)
        features = F.relu(self.inp(folded))
        for conv in self.body:
            features = features + F.relu(conv(features))
        return (rendering + F.pixel_shuffle(self.out(features), scale)).clamp(-1, 1)
