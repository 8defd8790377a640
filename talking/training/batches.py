"""Training samples: every frame of every clip of a corpus split, with what both stages need.

One sample, for frame ``t`` of a clip (tensors; frames in [-1, 1])::

    frame           (3, H, W)         the target frame t
    source          (3, H, W)         a frame of the same clip drawn with (seed, index): the
                                      person's image (no global RNG, so a resumed run sees
                                      exactly the samples an uninterrupted one would); with
                                      ``closed_source``, one with the lips closed
    history         (5, 3, H, W)      frames t-5..t-1; before the clip starts, the source
                                      (as at inference, where the history starts as the photo)
    mel             (W, n_mels)       audio window of frame t; pitch (W,) int64; energy (W,)
    history_mel     (5, W, n_mels)    audio windows of the history frames (for self-feeding);
                                      history_pitch (5, W), history_energy (5, W)
    flow            (2, H, W)         Farneback flow with frame ~ warp(source, flow), in pixels
                                      (``with_flow``; the source is drawn per sample, so the flow
                                      is computed here: ~2 ms at 128x128, cheaper than a cache)
    landmarks       (68, 2)           when the corpus has them (moved with the frame);
    source_landmarks (68, 2)          and the source's

With ``align_to_source`` (needs landmarks), the frame, the history and the landmarks are moved
into the source's head pose first (:mod:`talking.pose`: a similarity transform fitted on the
landmarks that do not move with speech or blinks maps each frame onto the source). Audio
cannot tell where a head wanders, only what the mouth, eyes and brows do; with the wander taken
out of the targets, the losses measure exactly what the model is asked to predict, and the model
keeps the photo's pose at inference.

With ``closed_source`` (needs landmarks) the source is drawn among the clip's frames whose lips
are closed (inner-lip gap within :data:`CLOSED_GAP` px of the clip's smallest), as in most photos
a user gives. From any frame, most sources have the mouth open, and the predictor must read the
source's own mouth state to tell how far to move its lips; from a closed one, how far is what the
audio says.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from talking import ibug
from talking.config import HISTORY
from talking.data import Clip, load_index
from talking.pose import align_frame, move_points, pose_alignment

CLOSED_GAP = 0.5  # px: lips count as closed within this of the clip's smallest inner-lip gap


def farneback_flow(frame: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Backward flow (2, H, W) in pixels such that ``frame ~ warp(source, flow)``.

    frame, source: (H, W, 3) uint8 RGB.
    """
    target = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    reference = cv2.cvtColor(np.ascontiguousarray(source), cv2.COLOR_RGB2GRAY)
    flow = cv2.calcOpticalFlowFarneback(target, reference, None, pyr_scale=0.5, levels=3,
                                        winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    return flow.transpose(2, 0, 1)


def _image(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.array(frames)).movedim(-1, -3).float().div(127.5).sub(1)


def closed_frames(landmarks: np.ndarray) -> np.ndarray:
    """Indices of the frames whose lips are closed, from the clip's landmarks (N, 68, 2): the
    inner-lip gap (the lower inner lip below the upper) within :data:`CLOSED_GAP` px of the clip's
    smallest."""
    gap = landmarks[:, ibug.INNER_LIP_BOTTOM, 1] - landmarks[:, ibug.INNER_LIP_TOP, 1]
    return np.flatnonzero(gap <= gap.min() + CLOSED_GAP)


class TrainingFrames(Dataset):
    """All frames of the clips in ``split`` of the corpus at ``root``."""

    def __init__(self, root: str | Path, split: str = "train", with_flow: bool = True,
                 history: int = HISTORY, seed: int = 0, align_to_source: bool = False,
                 closed_source: bool = False) -> None:
        root = Path(root)
        index = load_index(root)
        if split not in index["splits"]:
            raise ValueError(f"{root} has no split {split!r}; it has {sorted(index['splits'])}")
        self.clips = [Clip(root / "clips" / clip_id) for clip_id in index["splits"][split]]
        self.ends = np.cumsum([clip.num_frames for clip in self.clips])
        self.with_flow = with_flow
        self.history = history
        self.seed = seed
        self.align_to_source = align_to_source
        for option, on in (("align_to_source", align_to_source), ("closed_source", closed_source)):
            if on and any(clip.landmarks is None for clip in self.clips):
                raise ValueError(f"{option} needs landmarks; some clips of {root} have none")
        # per clip, the frames a source may be drawn from
        self.sources = [closed_frames(np.asarray(clip.landmarks)) if closed_source
                        else np.arange(clip.num_frames) for clip in self.clips]

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        c = int(np.searchsorted(self.ends, index, side="right"))
        clip = self.clips[c]
        t = index - (int(self.ends[c - 1]) if c else 0)
        frames = clip.frames  # (N, H, W, 3) uint8, memory-mapped
        candidates = self.sources[c]
        s = int(candidates[np.random.default_rng((self.seed, index)).integers(len(candidates))])
        past = np.arange(t - self.history, t)
        history = np.where(past[:, None, None, None] >= 0, frames[np.maximum(past, 0)], frames[s])
        frame = frames[t]
        marks = None if clip.landmarks is None else np.asarray(clip.landmarks, dtype=np.float32)
        landmarks = None if marks is None else marks[t]
        if self.align_to_source:
            matrix = pose_alignment(landmarks, marks[s])
            frame = align_frame(frame, matrix)
            landmarks = move_points(landmarks, matrix)
            history = np.stack([
                align_frame(image, pose_alignment(marks[p], marks[s])) if p >= 0 else image
                for p, image in zip(past, history, strict=True)
            ])
        windows, history_windows = clip.features.windows(t, t + 1), clip.features.windows(t - self.history, t)
        sample = {
            "frame": _image(frame),
            "source": _image(frames[s]),
            "history": _image(history),
            "mel": torch.from_numpy(windows.mel[0]),
            "pitch": torch.from_numpy(windows.pitch[0]),
            "energy": torch.from_numpy(windows.energy[0]),
            "history_mel": torch.from_numpy(history_windows.mel),
            "history_pitch": torch.from_numpy(history_windows.pitch),
            "history_energy": torch.from_numpy(history_windows.energy),
        }
        if self.with_flow:
            sample["flow"] = torch.from_numpy(farneback_flow(frame, frames[s]))
        if landmarks is not None:
            sample["landmarks"] = torch.from_numpy(landmarks)
            sample["source_landmarks"] = torch.from_numpy(marks[s])
        return sample
