"""A face-landmark estimator for judging generated frames, trained on the synthetic corpus.

The paper measures LMD and blinks with landmarks from a pretrained face-alignment network; none
can be downloaded here. So the project trains its own small one on the corpus, where every frame
has exact ground truth: :class:`LandmarkEstimator` maps an aligned face crop to the 68 iBUG
landmarks, the eye openness (1 open, 0 shut) and the mouth opening (the renderer's ``jaw_open``).
It reads the same canonical crops the generator makes, so it judges generated frames directly.

It is a plain CNN regressor (stride-2 conv stages down to 4 x 4, then two linear layers): the
crops are aligned, so landmarks sit near fixed positions and a global regressor from the whole
feature map is accurate enough; the landmark output starts at the corpus's mean shape.
Training (:func:`train_landmarks`, ``train/train_landmarks.py``) adds extra blur and noise to the
corpus's own camera degradations, because generated frames are softer than rendered ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn
from torch.utils.data import DataLoader, Dataset

from talking.config import RESOLUTION
from talking.data import Clip, load_split
from talking.errors import TalkingError

NUM_LANDMARKS = 68


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
        images = _to_tensor(frames[start:start + batch_size]).to(model.device, model.dtype)
        parts.append([t.float().cpu().numpy() for t in model(images).to_tuple()])
    landmarks, eye, mouth = (np.concatenate(p) for p in zip(*parts, strict=True))
    return FaceTrack(landmarks, eye, mouth)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    frames = np.array(frames)  # a copy: memory-mapped frames are read-only
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


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
        return {"image": _to_tensor(image[None])[0], "landmarks": torch.from_numpy(landmarks[t]),
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


def estimator_loss(output: LandmarkOutput, batch: dict, resolution: int) -> tuple[torch.Tensor, dict]:
    """L1 of the landmarks in pixels plus L1 of both openings scaled by the crop's side / 10 (an
    error of 0.1 in openness weighs as much as ~1.3 px at 128): (total, terms)."""
    terms = {"landmarks": F.l1_loss(output.landmarks, batch["landmarks"]),
             "eye_openness": F.l1_loss(output.eye_openness, batch["eye_openness"]),
             "mouth_opening": F.l1_loss(output.mouth_opening, batch["mouth_opening"])}
    total = terms["landmarks"] + resolution / 10 * (terms["eye_openness"] + terms["mouth_opening"])
    return total, terms


@dataclass
class LandmarkTrainConfig:
    """One training run of the estimator (``train/configs/landmarks.yaml``)."""

    corpus: str
    out: str = "checkpoints/landmarks"
    steps: int = 3000
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    threads: int = 1  # the estimator is small; leave the other cores to the MAN runs
    log_every: int = 100
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 128])
    hidden: int = 256


def train_landmarks(config: LandmarkTrainConfig) -> dict[str, float]:
    """Train on the corpus's train split, save to ``config.out`` with ``validation.json`` (its
    errors on the val split) and return those errors."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # before building the model, so the seed decides its init
    clips = load_split(config.corpus, "train")
    resolution = clips[0].frames.shape[1]
    model = LandmarkEstimator(resolution=resolution, channels=tuple(config.channels), hidden=config.hidden)
    model.start_at_mean_shape(np.concatenate([clip.landmarks for clip in clips]))
    data = LandmarkFrames(clips, augment=True)
    loader = DataLoader(data, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(config.seed))
    optimizer = torch.optim.AdamW(model.parameters(), config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=config.steps)
    model.train()
    step, started = 0, time.perf_counter()
    while step < config.steps:
        for batch in loader:
            total, terms = estimator_loss(model(batch["image"]), batch, resolution)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % config.log_every == 0 or step == config.steps:
                print(f"step {step}/{config.steps} {time.perf_counter() - started:.0f}s "
                      + " ".join(f"{k} {v.item():.3f}" for k, v in terms.items()), flush=True)
            if step == config.steps:
                break
    model.eval()
    errors = validation_errors(model, load_split(config.corpus, "val"))
    model.save_pretrained(config.out)
    (Path(config.out) / "validation.json").write_text(json.dumps(
        {"errors": errors, "config": asdict(config)}, indent=2) + "\n")
    return errors


def validation_errors(model: LandmarkEstimator, clips: list[Clip]) -> dict[str, float]:
    """Mean absolute errors of ``model`` on ``clips``: landmark distance in pixels (all, mouth
    48-67, eyes 36-47) and the two openings."""
    distances, eye_errors, mouth_errors = [], [], []
    for clip in clips:
        landmarks, eye, mouth = clip_targets(clip)
        track = estimate(model, np.asarray(clip.frames))
        distances.append(np.linalg.norm(track.landmarks - landmarks, axis=-1))  # (N, 68)
        eye_errors.append(np.abs(track.eye_openness - eye))
        mouth_errors.append(np.abs(track.mouth_opening - mouth))
    distance = np.concatenate(distances)
    return {"landmarks_px": float(distance.mean()), "mouth_landmarks_px": float(distance[:, 48:68].mean()),
            "eye_landmarks_px": float(distance[:, 36:48].mean()),
            "eye_openness": float(np.concatenate(eye_errors).mean()),
            "mouth_opening": float(np.concatenate(mouth_errors).mean())}
