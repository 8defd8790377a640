"""The per-modality encoders that feed multimodal adaptive normalization (paper Fig. 9-11).

- 2D encoders for the spatial modalities (the person's image, the predicted flow or heatmaps). The
  paper's ablation (Table 6) compares three layer kinds, chosen by name:
  ``"conv"`` plain 3x3 convolution; ``"partial"`` partial-convolution padding (Liu et al. 2018: zero
  padding is treated as missing data, so border outputs are re-weighted instead of darkened);
  ``"eca"`` convolution followed by efficient channel attention (Wang et al. 2020).
- 1D encoders for the per-frame audio windows (mel, pitch, energy): ``"conv"`` (1D convolutions over
  time) or ``"lstm"`` (the last hidden state), also chosen by name (Table 6).

Every module here is a plain ``nn.Module``; the networks that own them are the diffusers models.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from talking.audio import LOG_MEL_FLOOR

SPATIAL_KINDS = ("conv", "partial", "eca")
TEMPORAL_KINDS = ("conv", "lstm")
PITCH_EMBEDDING = 32  # width of the learnt pitch-bin embedding (the paper's one-hot times a matrix)


def activation() -> nn.Module:
    """The one non-linearity used across the networks."""
    return nn.LeakyReLU(0.2)


class PartialConv2d(nn.Conv2d):
    """Convolution with partial-convolution padding (Liu et al. 2018).

    Each output is rescaled by ``kernel taps / taps that fall inside the image``, so a constant
    image stays constant up to the border instead of fading into the zero padding.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, self.weight, None, self.stride, self.padding)
        ones = x.new_ones(1, 1, *x.shape[-2:])
        taps = F.conv2d(ones, x.new_ones(1, 1, *self.kernel_size), None, self.stride, self.padding)
        out = out * (math.prod(self.kernel_size) / taps)
        return out + self.bias.view(1, -1, 1, 1)


class ECA(nn.Module):
    """Efficient channel attention (Wang et al. 2020): a 1D convolution across the pooled channels
    gives a sigmoid gate per channel; the kernel size grows with log2(channels)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        width = int(abs((math.log2(channels) + 1) / 2))
        width += 1 - width % 2  # odd, so the gate stays aligned with its channel
        self.conv = nn.Conv1d(1, 1, width, padding=width // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        gate = self.conv(x.mean(dim=(2, 3))[:, None, :])  # (B, 1, C)
        return x * torch.sigmoid(gate)[:, 0, :, None, None]


def conv_block(kind: str, in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution of ``kind`` ("conv", "partial" or "eca") and a LeakyReLU."""
    if kind not in SPATIAL_KINDS:
        raise ValueError(f"spatial encoder kind must be one of {SPATIAL_KINDS}, got {kind!r}")
    conv_class = PartialConv2d if kind == "partial" else nn.Conv2d
    layers = [conv_class(in_channels, out_channels, 3, stride=stride, padding=1), activation()]
    if kind == "eca":
        layers.append(ECA(out_channels))
    return nn.Sequential(*layers)


class SpatialEncoder(nn.Module):
    """(B, in_channels, H, W) -> (B, out_channels, H / 2^downsamples, W / 2^downsamples).

    ``downsamples`` stride-2 conv blocks of ``kind``. No normalisation: the magnitude of a flow
    or the height of a heatmap is the information, and instance norm would remove it.
    """

    def __init__(self, in_channels: int, out_channels: int, downsamples: int, kind: str) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * downsamples
        self.layers = nn.Sequential(
            *(conv_block(kind, c_in, c_out, stride=2) for c_in, c_out in pairwise(widths))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConvTemporalEncoder(nn.Module):
    """(B, W, in_channels) -> (B, out_channels): three 1D convolutions over time (two of stride
    2), then a linear layer over the flattened result, so the position within the window (what is
    said exactly at the frame) is kept."""

    def __init__(self, in_channels: int, out_channels: int, window: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, 3, padding=1), activation(),
            nn.Conv1d(out_channels, out_channels, 3, stride=2, padding=1), activation(),
            nn.Conv1d(out_channels, out_channels, 3, stride=2, padding=1), activation(),
        )
        reduced = (window + 3) // 4  # each stride-2 layer takes ceil(W / 2)
        self.project = nn.Linear(out_channels * reduced, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(x.transpose(1, 2)).flatten(1))


class LSTMTemporalEncoder(nn.Module):
    """(B, W, in_channels) -> (B, out_channels): the last hidden state of a one-layer LSTM."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_channels, out_channels, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(x)  # hidden: (1, B, out)
        return hidden[0]


def temporal_encoder(kind: str, in_channels: int, out_channels: int, window: int) -> nn.Module:
    """The audio-window encoder named by ``kind``: "conv" or "lstm"."""
    if kind not in TEMPORAL_KINDS:
        raise ValueError(f"audio encoder kind must be one of {TEMPORAL_KINDS}, got {kind!r}")
    if kind == "conv":
        return ConvTemporalEncoder(in_channels, out_channels, window)
    return LSTMTemporalEncoder(in_channels, out_channels)


class MelEncoder(nn.Module):
    """mel (B, W, n_mels) log-mel -> (B, out_channels).

    The log-mel is first mapped by ``1 - mel / LOG_MEL_FLOOR``: silence (the floor) reads exactly
    0 and a log-mel of 0 reads 1, a range the LSTM's gates do not saturate on.
    """

    def __init__(self, n_mels: int, window: int, out_channels: int, kind: str) -> None:
        super().__init__()
        self.temporal = temporal_encoder(kind, n_mels, out_channels, window)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.temporal(1.0 - mel / LOG_MEL_FLOOR)


class PitchEncoder(nn.Module):
    """pitch (B, W) int64 bins in [0, bins), 0 = unvoiced -> (B, out_channels).

    A learnt embedding per bin is the paper's one-hot vector times a matrix, without the matrix
    product."""

    def __init__(self, bins: int, window: int, out_channels: int, kind: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(bins, PITCH_EMBEDDING)
        self.temporal = temporal_encoder(kind, PITCH_EMBEDDING, out_channels, window)

    def forward(self, pitch: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.embed(pitch))  # (B, W, PITCH_EMBEDDING) -> (B, out)


class EnergyEncoder(nn.Module):
    """energy (B, W) log(1 + |STFT| norm) -> (B, out_channels)."""

    def __init__(self, window: int, out_channels: int, kind: str) -> None:
        super().__init__()
        self.temporal = temporal_encoder(kind, 1, out_channels, window)

    def forward(self, energy: torch.Tensor) -> torch.Tensor:
        return self.temporal(energy[..., None])
