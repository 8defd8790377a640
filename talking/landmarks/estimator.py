"""The face-landmark estimator that judges generated frames, and :func:`estimate` to run it.

:class:`LandmarkEstimator` maps an aligned face crop to the 68 iBUG landmarks, the eye openness
(1 open, 0 shut) and the mouth opening (the renderer's ``jaw_open``). It reads the same canonical
crops the generator makes, so it judges generated frames directly. It is a plain CNN regressor
(stride-2 conv stages down to 4 x 4, then two linear layers): the crops are aligned, so
landmarks sit near fixed positions and a global regressor from the whole feature map is
accurate enough; the landmark output starts at the corpus's mean shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from talking.config import RESOLUTION
from talking.ibug import NUM_LANDMARKS


@dataclass
class LandmarkOutput(BaseOutput):
    """
    Args:
        landmarks: (B, 68, 2) iBUG landmarks in pixels (pixel centres at integers).
        eye_openness: (B,) 1 open as the face's neutral, 0 shut; the mean of both eyes.
        mouth_opening: (B,) jaw opening in [0, 1] as the renderer's ``jaw_open`` parameter.
    """

    landmarks: torch.Tensor
    eye_openness: torch.Tensor
    mouth_opening: torch.Tensor


class LandmarkEstimator(ModelMixin, ConfigMixin):
    """Aligned face crop -> 68 landmarks, eye openness and mouth opening.

    Args:
        resolution: side R of the square input crops.
        channels: widths of the stride-2 stages; the first halves the crop, each next one again.
        hidden: width of the hidden linear layer.
    """

    @register_to_config
    def __init__(self, resolution: int = RESOLUTION, channels: tuple[int, ...] = (16, 32, 64, 128, 128),
                 hidden: int = 256) -> None:
        super().__init__()
        if resolution % 2 ** len(channels):
            raise ValueError(f"resolution {resolution} must be divisible by 2^{len(channels)}")
        stages = []
        for i, (c_in, c_out) in enumerate(pairwise([3, *channels])):
            layers = [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            if i > 0:  # a second conv at every scale but the largest, where it would cost the most
                layers += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            stages.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*stages)
        side = resolution // 2 ** len(channels)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * side * side, hidden), nn.ReLU(),
                                  nn.Linear(hidden, NUM_LANDMARKS * 2 + 2))

    def forward(self, images: torch.Tensor, return_dict: bool = True) -> LandmarkOutput | tuple:
        """images: (B, 3, R, R) in [-1, 1]."""
        out = self.head(self.features(images))  # (B, 138)
        R = self.config.resolution
        landmarks = out[:, : NUM_LANDMARKS * 2].view(-1, NUM_LANDMARKS, 2) * R - 0.5  # [0, 1] -> pixels
        output = LandmarkOutput(landmarks, out[:, -2], out[:, -1])
        return output if return_dict else output.to_tuple()

    def start_at_mean_shape(self, landmarks: np.ndarray) -> None:
        """Set the landmark output's bias to the mean of ``landmarks`` (N, 68, 2) pixels, so
        training starts from the average face; the openness outputs start half open."""
        mean = (np.asarray(landmarks, np.float64).reshape(-1, NUM_LANDMARKS, 2).mean(0) + 0.5) / \
            self.config.resolution
        with torch.no_grad():
            self.head[-1].bias[: NUM_LANDMARKS * 2] = torch.from_numpy(mean.ravel()).float()
            self.head[-1].bias[-2:] = 0.5


@dataclass
class FaceTrack:
    """What the estimator reads off N frames: landmarks (N, 68, 2) pixels, eye_openness (N,),
    mouth_opening (N,), all float32 numpy."""

    landmarks: np.ndarray
    eye_openness: np.ndarray
    mouth_opening: np.ndarray


@torch.inference_mode()
def estimate(model: LandmarkEstimator, frames: np.ndarray, batch_size: int = 64) -> FaceTrack:
    """Run ``model`` (in eval mode) over ``frames`` (N, R, R, 3) uint8 RGB aligned crops."""
    R = model.config.resolution
    if frames.ndim != 4 or frames.shape[1:] != (R, R, 3):
        raise ValueError(f"frames must be (N, {R}, {R}, 3), got {frames.shape}")
    parts = []
    for start in range(0, len(frames), batch_size):
        images = to_tensor(frames[start:start + batch_size]).to(model.device, model.dtype)
        parts.append([t.float().cpu().numpy() for t in model(images).to_tuple()])
    landmarks, eye, mouth = (np.concatenate(p) for p in zip(*parts, strict=True))
    return FaceTrack(landmarks, eye, mouth)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    frames = np.array(frames)  # a copy: memory-mapped frames are read-only
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
