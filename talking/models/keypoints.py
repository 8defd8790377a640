"""Keypoint heatmap predictor (paper 4.3.1, Fig. 12) and the heatmaps it learns to draw.

The heatmaps are *contour* heatmaps, one channel per facial-part contour of the 68-point iBUG
landmarks (as in boundary-aware face alignment, Wu et al. 2018): the value at a pixel is
``exp(-d^2 / (2 sigma^2))`` with ``d`` the distance to the contour's polyline, so it is 1 on the
contour and falls off with a Gaussian. The paper uses 15 channels; we split the jaw into two
cheeks and the chin (the chin is the part that moves with speech), which with the brows, the
nose bridge and base, four eyelids and four lip contours makes 15.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from talking.config import HISTORY, N_MELS, RESOLUTION, AudioConfig
from talking.models.encoders import conv_block
from talking.models.hourglass import Hourglass, check_config, with_audio

# name -> landmark indices of the polyline, in drawing order (iBUG 68-point numbering).
CONTOURS: dict[str, tuple[int, ...]] = {
    "cheek_left": (0, 1, 2, 3, 4, 5),
    "chin": (5, 6, 7, 8, 9, 10, 11),
    "cheek_right": (11, 12, 13, 14, 15, 16),
    "brow_left": (17, 18, 19, 20, 21),
    "brow_right": (22, 23, 24, 25, 26),
    "nose_bridge": (27, 28, 29, 30),
    "nose_base": (31, 32, 33, 34, 35),
    "eyelid_left_upper": (36, 37, 38, 39),
    "eyelid_left_lower": (39, 40, 41, 36),
    "eyelid_right_upper": (42, 43, 44, 45),
    "eyelid_right_lower": (45, 46, 47, 42),
    "lip_outer_upper": (48, 49, 50, 51, 52, 53, 54),
    "lip_outer_lower": (54, 55, 56, 57, 58, 59, 48),
    "lip_inner_upper": (60, 61, 62, 63, 64),
    "lip_inner_lower": (64, 65, 66, 67, 60),
}
LIP_CONTOURS = tuple(i for i, name in enumerate(CONTOURS) if name.startswith("lip_"))


def landmarks_to_heatmaps(
    landmarks: torch.Tensor, size: int | tuple[int, int], sigma: float = 1.5
) -> torch.Tensor:
    """Draw the contours of ``landmarks`` (B, 68, 2) -> heatmaps (B, len(CONTOURS), H, W) in [0, 1].

    Landmarks are pixel coordinates (x, y) of an image of ``size`` (H, W), pixel centres at
    integer coordinates; ``sigma`` is the Gaussian falloff in pixels.
    """
    height, width = (size, size) if isinstance(size, int) else size
    ys = torch.arange(height, device=landmarks.device, dtype=landmarks.dtype)
    xs = torch.arange(width, device=landmarks.device, dtype=landmarks.dtype)
    pixels = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)  # (HW, 2)
    heatmaps = []
    for indices in CONTOURS.values():
        points = landmarks[:, list(indices)]  # (B, P, 2)
        start, step = points[:, :-1, None], (points[:, 1:] - points[:, :-1])[:, :, None]  # (B, S, 1, 2)
        # Closest point of each segment to each pixel: start + t * step, t clamped to [0, 1].
        t = ((pixels - start) * step).sum(-1) / step.square().sum(-1).clamp_min(1e-12)
        nearest = start + t.clamp(0, 1)[..., None] * step  # (B, S, HW, 2)
        distance2 = (pixels - nearest).square().sum(-1).amin(dim=1)  # (B, HW)
        heatmaps.append(torch.exp(-distance2 / (2 * sigma**2)))
    return torch.stack(heatmaps, dim=1).reshape(len(landmarks), len(CONTOURS), height, width)


@dataclass
class KeypointPredictorOutput(BaseOutput):
    """
    Args:
        heatmaps: (B, K, H, W), one contour heatmap per channel (see ``CONTOURS``), regressed
            towards the [0, 1] targets of :func:`landmarks_to_heatmaps`.
    """

    heatmaps: torch.Tensor


class KeypointPredictor(ModelMixin, ConfigMixin):
    """Predicts the next frame's contour heatmaps from the source, the previous frames and the mel
    window: an hourglass with the mel embedding joined at its bottleneck, a linear head at H/2,
    upsampled bilinearly to H. Keypoints are read off the heatmaps by a max (paper 4.3.1).
    The head is linear, not a sigmoid: under the heatmap MSE a sigmoid saturates at zero within
    a few steps (thin contours, mostly background) and never recovers.

    Args:
        resolution: frame size H = W.
        n_mels: mel bins per audio frame.
        audio_window: mel frames per video frame (W).
        history: previous frames T seen by the predictor (5 in the paper).
        num_heatmaps: K, 15 to match ``CONTOURS`` and :func:`landmarks_to_heatmaps`.
        channels: hourglass widths, one per halving of the resolution.
        audio_channels: width of the mel embedding.
        audio_encoder: "conv" or "lstm".
    """

    @register_to_config
    def __init__(
        self,
        resolution: int = RESOLUTION,
        n_mels: int = N_MELS,
        audio_window: int = AudioConfig().window,
        history: int = HISTORY,
        num_heatmaps: int = len(CONTOURS),
        channels: tuple[int, ...] = (16, 32, 64, 64),
        audio_channels: int = 64,
        audio_encoder: str = "conv",
    ) -> None:
        super().__init__()
        check_config(resolution, channels, audio_encoder)
        if num_heatmaps < 1:
            raise ValueError(f"num_heatmaps must be positive, got {num_heatmaps}")
        self.hourglass = Hourglass(resolution, history, n_mels, audio_window, channels,
                                   audio_channels, audio_encoder)
        self.fuse = conv_block("conv", channels[-1] + audio_channels, channels[-1])
        self.to_heatmaps = nn.Conv2d(channels[0], num_heatmaps, 3, padding=1)

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, W, n_mels) -> (B, audio_channels); independent of the frames, so batchable."""
        return self.hourglass.encode_audio(mel)

    def predict(
        self, source: torch.Tensor, history: torch.Tensor, audio: torch.Tensor
    ) -> KeypointPredictorOutput:
        """source (B, 3, H, W), history (B, T, 3, H, W), audio (B, A) from :meth:`encode_audio`."""
        features = self.hourglass.encode(source, history)
        x = self.hourglass.decode(self.fuse(with_audio(features[-1], audio)), features, audio)
        heatmaps = self.to_heatmaps(x)  # (B, K, H/2, W/2)
        heatmaps = F.interpolate(heatmaps, size=source.shape[-2:], mode="bilinear",
                                 align_corners=False)
        return KeypointPredictorOutput(heatmaps=heatmaps)

    def forward(
        self,
        source: torch.Tensor,
        history: torch.Tensor,
        mel: torch.Tensor,
        return_dict: bool = True,
    ) -> KeypointPredictorOutput | tuple[torch.Tensor]:
        """source (B, 3, H, W), history (B, T, 3, H, W) in [-1, 1], mel (B, W, n_mels) log-mel."""
        output = self.predict(source, history, self.encode_audio(mel))
        return output if return_dict else output.to_tuple()
