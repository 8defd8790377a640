"""Training samples of the landmark estimator: every frame of synthetic clips with its ground
truth, and the extra blur and noise that make rendered frames look like generated ones."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from talking.data import Clip
from talking.errors import TalkingError
from talking.landmarks.estimator import to_tensor


def clip_targets(clip: Clip) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A clip's landmarks (N, 68, 2), eye openness (N,) and jaw opening (N,): a synthetic clip's
    ground truth or, for a prepared real clip (landmarks, no truth.npz), the openings measured
    off its landmarks (:func:`talking.realface.openings`; the eye aspect ratio over the clip's
    90th percentile, so that an open eye reads 1)."""
    truth = clip.truth
    if clip.landmarks is None:
        raise TalkingError(f"{clip.directory} has no landmarks.npy: landmark training and evaluation "
                           "need a synthetic corpus or one made by `python -m talking prepare`")
    if truth is None:
        from talking.realface import openings

        eye, jaw = openings(clip.landmarks)
        return clip.landmarks, np.clip(eye / np.percentile(eye, 90), 0, 1).astype(np.float32), \
            jaw.astype(np.float32)
    jaw = list(truth["mouth_parameters"]).index("jaw_open")
    return clip.landmarks, truth["eye_openness"].astype(np.float32), truth["mouth"][:, jaw].astype(np.float32)


class LandmarkFrames(Dataset):
    """Every frame of ``clips`` with its targets; with ``augment``, extra blur and noise."""

    def __init__(self, clips: list[Clip], augment: bool = True) -> None:
        self.clips = clips
        self.targets = [clip_targets(clip) for clip in clips]
        self.ends = np.cumsum([clip.num_frames for clip in clips])
        self.augment = augment

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        c = int(np.searchsorted(self.ends, index, side="right"))
        t = index - (int(self.ends[c - 1]) if c else 0)
        image = np.array(self.clips[c].frames[t])
        if self.augment:
            image = degrade(image, np.random.default_rng(int(torch.randint(2**31, ()))))  # torch-seeded
        landmarks, eye, mouth = self.targets[c]
        return {"image": to_tensor(image[None])[0], "landmarks": torch.from_numpy(landmarks[t]),
                "eye_openness": torch.tensor(eye[t]), "mouth_opening": torch.tensor(mouth[t])}


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 with, each half the time, a Gaussian blur (sigma up to 1.5 px at 128) and
    sensor noise (up to 6 grey levels): the softness and grain of generated frames."""
    out = image.astype(np.float32)
    if rng.uniform() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.5) * image.shape[0] / 128)
    if rng.uniform() < 0.5:
        out += rng.normal(0, rng.uniform(0, 6), out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
