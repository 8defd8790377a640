"""Multiscale frame discriminator (paper 4.4, Eq. 9): Pix2PixHD's PatchGAN at several scales, each
with a CAM layer (U-GAT-IT) between its trunk and its patch classifier.

Scale s sees the input average-pooled s times (``AvgPool2d(3, 2, 1, count_include_pad=False)``).
Each scale returns its intermediate features (for feature matching, Eq. 12), its patch logits
(adversarial loss, Eq. 10) and its CAM logits (CAM adversarial loss, Eq. 9 / 14).

Conditional input (``conditional=True``, the default): the discriminator sees the frame stacked
with the source image, as pix2pix conditions on its input, so it can also judge whether the
frame shows the same person as the photo, not only whether it looks like a face.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from talking.config import RESOLUTION
from talking.models.cam import CAMHead, maybe_spectral_norm
from talking.models.encoders import activation


@dataclass
class DiscriminatorOutput(BaseOutput):
    """
    Args:
        features: per scale, the activation of every trunk layer and of the CAM layer
            ([s][l]: (B, C_l, h_s,l, w_s,l)), for feature matching.
        logits: per scale, patch logits (B, 1, h_s, w_s).
        cam_logits: per scale, the CAM layer's GAP and GMP logits (B, 2).
    """

    features: list[list[torch.Tensor]]
    logits: list[torch.Tensor]
    cam_logits: list[torch.Tensor]


class PatchDiscriminator(nn.Module):
    """One scale: 4x4 stride-2 convs for all but the last width, a 3x3 stride-1 conv for the
    last, the CAM layer and a 3x3 conv to one logit per patch."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], spectral_norm: bool) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.trunk = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairwise(widths)):
            last = i == len(channels) - 1
            conv = nn.Conv2d(c_in, c_out, 3 if last else 4, stride=1 if last else 2, padding=1)
            self.trunk.append(nn.Sequential(maybe_spectral_norm(conv, spectral_norm), activation()))
        self.cam = CAMHead(channels[-1], spectral_norm=spectral_norm)
        self.classify = maybe_spectral_norm(nn.Conv2d(channels[-1], 1, 3, padding=1), spectral_norm)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        features = []
        for layer in self.trunk:
            x = layer(x)
            features.append(x)
        x, cam_logits, _ = self.cam(x)
        features.append(x)
        return features, self.classify(x), cam_logits


class MultiscaleDiscriminator(ModelMixin, ConfigMixin):
    """Judges frames at ``num_scales`` scales.

    Args:
        resolution: frame size H = W.
        conditional: stack the source image with the frame (6 input channels instead of 3).
        num_scales: scales, each at half the resolution of the one before.
        channels: widths of each scale's trunk (all but the last halve the resolution).
        spectral_norm: spectral normalisation on every convolution and the CAM classifiers.
    """

    @register_to_config
    def __init__(
        self,
        resolution: int = RESOLUTION,
        conditional: bool = True,
        num_scales: int = 3,
        channels: tuple[int, ...] = (32, 64, 128, 128),
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        smallest = resolution // 2 ** (num_scales - 1 + len(channels) - 1)
        if num_scales < 1 or len(channels) < 2 or smallest < 1:
            raise ValueError(
                f"{num_scales} scales of {len(channels)} layers (channels={list(channels)}) "
                f"leave no patch of a {resolution}x{resolution} frame; use fewer scales or layers"
            )
        in_channels = 6 if conditional else 3
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, tuple(channels), spectral_norm) for _ in range(num_scales)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(
        self, frame: torch.Tensor, source: torch.Tensor | None = None, return_dict: bool = True
    ) -> DiscriminatorOutput | tuple:
        """frame (B, 3, H, W) in [-1, 1]; source (B, 3, H, W), required when conditional."""
        size = (self.config.resolution, self.config.resolution)
        if frame.ndim != 4 or frame.shape[1] != 3 or tuple(frame.shape[-2:]) != size:
            raise ValueError(f"frame must be (B, 3, {size[0]}, {size[1]}), got {tuple(frame.shape)}")
        if not self.config.conditional:
            if source is not None:
                raise ValueError("this discriminator is unconditional (conditional=False): pass no source")
            x = frame
        elif source is None or source.shape != frame.shape:
            shape = None if source is None else tuple(source.shape)
            raise ValueError(f"a conditional discriminator needs source {tuple(frame.shape)}, got {shape}")
        else:
            x = torch.cat([frame, source], dim=1)  # (B, 6, H, W)
        features, logits, cam_logits = [], [], []
        for i, scale in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            f, patch, cam = scale(x)
            features.append(f)
            logits.append(patch)
            cam_logits.append(cam)
        output = DiscriminatorOutput(features=features, logits=logits, cam_logits=cam_logits)
        return output if return_dict else output.to_tuple()
