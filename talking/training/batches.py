"""Training samples: every frame of every clip of a corpus split, with what stage "man" needs.

One sample, for frame ``t`` of a clip (tensors; frames in [-1, 1])::

    frame           (3, H, W)         the target frame t
    source          (3, H, W)         a frame of the same clip drawn with (seed, index): the
                                      person's image (no global RNG, so a resumed run sees
                                      exactly the samples an uninterrupted one would); with
                                      ``closed_source``, one with the lips closed
    mel             (W, n_mels)       audio window of frame t; pitch (W,) int64; energy (W,)
    landmarks       (68, 2)           frame t's, in pixels (moved with the frame);
    source_landmarks (68, 2)          and the source's

The corpus must have landmarks: the motion is drawn from them. With ``align_to_source``, the frame
and its landmarks are moved into the source's head pose first (:mod:`talking.pose`: a similarity
transform fitted on the landmarks that do not move with speech or blinks maps each frame onto the
source). Audio
cannot tell where a head wanders, only what the mouth, eyes and brows do; with the wander taken
out of the targets, the losses measure exactly what the model is asked to predict, and the model
keeps the photo's pose at inference.

With ``closed_source`` the source is drawn among the clip's frames whose lips are closed
(inner-lip gap within :data:`CLOSED_GAP` px of the clip's smallest), as in most photos a user
gives, so the generator learns to open a closed mouth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from talking import ibug
from talking.data import Clip, load_index
from talking.pose import align_frame, move_points, pose_alignment

CLOSED_GAP = 0.5  # px: lips count as closed within this of the clip's smallest inner-lip gap


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

    def __init__(self, root: str | Path, split: str = "train", seed: int = 0, align_to_source: bool = False,
                 closed_source: bool = False) -> None:
        root = Path(root)
        index = load_index(root)
        if split not in index["splits"]:
            raise ValueError(f"{root} has no split {split!r}; it has {sorted(index['splits'])}")
        self.clips = [Clip(root / "clips" / clip_id) for clip_id in index["splits"][split]]
        self.ends = np.cumsum([clip.num_frames for clip in self.clips])
        self.seed = seed
        self.align_to_source = align_to_source
        if any(clip.landmarks is None for clip in self.clips):
            raise ValueError(f"training needs each frame's landmarks; some clips of {root} have none")
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
        frame = frames[t]
        marks = np.asarray(clip.landmarks, dtype=np.float32)
        landmarks = marks[t]
        if self.align_to_source:
            matrix = pose_alignment(landmarks, marks[s])
            frame = align_frame(frame, matrix)
            landmarks = move_points(landmarks, matrix)
        windows = clip.features.windows(t, t + 1)
        return {
            "frame": _image(frame),
            "source": _image(frames[s]),
            "mel": torch.from_numpy(windows.mel[0]),
            "pitch": torch.from_numpy(windows.pitch[0]),
            "energy": torch.from_numpy(windows.energy[0]),
            "landmarks": torch.from_numpy(landmarks),
            "source_landmarks": torch.from_numpy(marks[s]),
        }
