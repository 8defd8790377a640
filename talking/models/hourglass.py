"""The trunk shared by the two motion predictors (paper 4.3.1-4.3.2): an hourglass (U-Net) over the
source image and the previous frames, with the frame's mel embedding joined at the bottleneck and
again at every level of the decoder.

Input: ``source`` (B, 3, H, W) and ``history`` (B, T, 3, H, W), both in [-1, 1], are stacked into
(B, 3 (1 + T), H, W). ``channels[i]`` is the width at H / 2^(i + 1); the decoder climbs back to
H / 2 through skip connections. The audio at every decoder level gives the mouth, which the skips
locate at full detail, a short path to the audio that moves it. The predictors put their own head
on each end: a variational bottleneck and a flow head (:mod:`talking.models.flow`), or a heatmap
head (:mod:`talking.models.keypoints`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from talking.models.encoders import TEMPORAL_KINDS, MelEncoder, conv_block


def check_config(resolution: int, channels: Sequence[int], audio_encoder: str) -> None:
    """Raise ValueError for a motion-predictor configuration that cannot be built."""
    if len(channels) < 2:
        raise ValueError(f"channels needs at least 2 levels, got {list(channels)}")
    if resolution % 2 ** len(channels):
        raise ValueError(
            f"resolution {resolution} must be divisible by 2^{len(channels)} "
            f"(one halving per entry of channels={list(channels)})"
        )
    if audio_encoder not in TEMPORAL_KINDS:
        raise ValueError(f"audio_encoder must be one of {TEMPORAL_KINDS}, got {audio_encoder!r}")


def with_audio(features: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """features (B, C, h, w) and audio (B, A) -> (B, C + A, h, w), the audio broadcast over space."""
    return torch.cat([features, audio[:, :, None, None].expand(-1, -1, *features.shape[-2:])], 1)


class Hourglass(nn.Module):
    """source + history -> per-level features; bottleneck + features + audio -> (B, channels[0], H/2, W/2)."""

    def __init__(
        self,
        resolution: int,
        history: int,
        n_mels: int,
        audio_window: int,
        channels: Sequence[int],
        audio_channels: int,
        audio_encoder: str,
    ) -> None:
        super().__init__()
        self.resolution, self.history, self.n_mels, self.audio_window = (
            resolution, history, n_mels, audio_window)
        self.mel = MelEncoder(n_mels, audio_window, audio_channels, audio_encoder)
        widths = [3 * (1 + history), *channels]
        self.down = nn.ModuleList(
            conv_block("conv", c_in, c_out, stride=2) for c_in, c_out in pairwise(widths)
        )
        self.up = nn.ModuleList(
            conv_block("conv", channels[i + 1] + channels[i] + audio_channels, channels[i])
            for i in reversed(range(len(channels) - 1))
        )

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, W, n_mels) -> (B, audio_channels)."""
        expected = (self.audio_window, self.n_mels)
        if mel.ndim != 3 or tuple(mel.shape[1:]) != expected:
            raise ValueError(f"mel must be (B, {expected[0]}, {expected[1]}), got {tuple(mel.shape)}")
        return self.mel(mel)

    def encode(self, source: torch.Tensor, history: torch.Tensor) -> list[torch.Tensor]:
        """source (B, 3, H, W), history (B, T, 3, H, W) -> [(B, channels[i], H/2^(i+1), ...)]."""
        size = (self.resolution, self.resolution)
        if source.ndim != 4 or source.shape[1] != 3 or tuple(source.shape[-2:]) != size:
            raise ValueError(f"source must be (B, 3, {size[0]}, {size[1]}), got {tuple(source.shape)}")
        if history.shape[1:] != (self.history, *source.shape[1:]):
            raise ValueError(
                f"history must be (B, {self.history}, 3, {size[0]}, {size[1]}), "
                f"got {tuple(history.shape)}"
            )
        x = torch.cat([source, history.flatten(1, 2)], dim=1)  # (B, 3 (1 + T), H, W)
        features = []
        for layer in self.down:
            x = layer(x)
            features.append(x)
        return features

    def decode(self, x: torch.Tensor, features: list[torch.Tensor], audio: torch.Tensor) -> torch.Tensor:
        """x (B, channels[-1], H/2^n, W/2^n), audio (B, audio_channels) -> (B, channels[0], H/2, W/2),
        skips from ``features``."""
        for layer, skip in zip(self.up, reversed(features[:-1]), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = layer(with_audio(torch.cat([x, skip], dim=1), audio))
        return x
