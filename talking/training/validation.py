"""What a run reports besides its training losses: the loss on a few val batches at every
checkpoint (``val/*`` in TensorBoard and ``<run>/validation.jsonl``) and sample grids."""

from __future__ import annotations

import json

import torch
from torch.utils.data import DataLoader, Subset

from talking.models.motion import MotionPredictor
from talking.training.batches import TrainingFrames
from talking.training.config import TrainConfig
from talking.training.steps import generator_step, geometry_frame, motion_step


def validation_loader(config: TrainConfig) -> DataLoader | None:
    """The first ``validation_batches`` batches of the corpus's val split (None: no such split)."""
    if not config.validation_batches:
        return None
    try:
        frames = TrainingFrames(config.corpus, "val", with_flow=config.variant == "optical", seed=config.seed,
                                align_to_source=config.align_to_source, closed_source=config.closed_source)
    except ValueError:
        return None
    first = range(min(len(frames), config.validation_batches * config.batch_size))
    return DataLoader(Subset(frames, first), batch_size=config.batch_size)


@torch.no_grad()
def validate(config: TrainConfig, accelerator, models, loader: DataLoader, step: int) -> None:
    """Log the mean unweighted terms and total on ``loader`` as ``val/*``. In eval mode and on a
    forked RNG: validation changes no state that a resumed run would not have."""
    networks = [accelerator.unwrap_model(m) for m in models]
    sums: dict[str, float] = {}
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        for network in networks:
            network.eval()
        for batch in loader:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            if config.stage == "motion":
                total, terms = motion_step(networks[0], batch, config.loss)
            else:
                total, terms, _ = generator_step(*networks, batch, config.loss)
            for name, value in {"total": total, **terms}.items():
                sums[name] = sums.get(name, 0.0) + value.item() / len(loader)
        for network in networks:
            network.train()
    accelerator.log({f"val/{k}": v for k, v in sums.items()}, step=step)
    if accelerator.is_main_process:
        with (config.run_dir / "validation.jsonl").open("a") as log:
            log.write(json.dumps({"step": step, **sums}) + "\n")


def log_samples(accelerator, batch, models, step: int) -> None:
    """A grid of source / ground truth / generated frames (up to 4) in TensorBoard."""
    if not accelerator.is_main_process:
        return
    generator, predictor, _ = (accelerator.unwrap_model(m) for m in models)
    n = min(4, len(batch["frame"]))
    small = {k: v[:n] for k, v in batch.items()}
    with torch.no_grad():
        if isinstance(predictor, MotionPredictor):
            fake = geometry_frame(generator, predictor, small)[1]
        else:
            motion = predictor(small["source"], small["history"], small["mel"]).to_tuple()[0]
            fake = generator(small["source"], motion, small["mel"], small["pitch"], small["energy"]).frame
    rows = torch.cat([small["source"], small["frame"], fake], dim=3)  # (n, 3, H, 3W)
    grid = torch.cat(list(rows), dim=1).add(1).div(2).clamp(0, 1)  # (3, nH, 3W)
    tracker = accelerator.get_tracker("tensorboard", unwrap=True)
    tracker.add_image("samples/source|truth|generated", grid, step)
