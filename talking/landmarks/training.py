"""Training of the landmark estimator on the synthetic corpus, where every frame has exact
ground truth (``train/train_landmarks.py``): AdamW with a one-cycle schedule on the train split,
its errors on the val split saved beside the weights. Generated frames are softer than rendered
ones, so training adds blur and noise (:func:`talking.landmarks.frames.degrade`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader

from talking import ibug
from talking.data import Clip, load_split
from talking.landmarks.estimator import LandmarkEstimator, LandmarkOutput, estimate
from talking.landmarks.frames import LandmarkFrames, clip_targets


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
    # The run writes config.yaml here and the estimator (with validation.json) to its export/;
    # train/promote.py ships it.
    output_dir: str = "runs/landmarks"
    steps: int = 3000
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    threads: int = 1  # the estimator is small; leave the other cores to the MAN runs
    log_every: int = 100
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 128])
    hidden: int = 256


def train_landmarks(config: LandmarkTrainConfig) -> dict[str, float]:
    """Train on the corpus's train split, save to ``<output_dir>/export`` with ``validation.json``
    (its errors on the val split) and return those errors."""
    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))
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
    model.save_pretrained(run_dir / "export")
    (run_dir / "export" / "validation.json").write_text(json.dumps(
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
    return {"landmarks_px": float(distance.mean()),
            "mouth_landmarks_px": float(distance[:, ibug.LIPS].mean()),
            "eye_landmarks_px": float(distance[:, ibug.EYES].mean()),
            "eye_openness": float(np.concatenate(eye_errors).mean()),
            "mouth_opening": float(np.concatenate(mouth_errors).mean())}
