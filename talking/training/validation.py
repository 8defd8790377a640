"""What a run reports besides its training losses: the loss on a few val batches at every
checkpoint (``val/*`` in TensorBoard and ``<run>/validation.jsonl``) and sample grids."""

from __future__ import annotations

import json

import torch
from torch.utils.data import DataLoader, Subset

from talking.training.batches import TrainingFrames
from talking.training.config import TrainConfig
from talking.training.steps import generator_step, geometry_frame


def validation_loader(config: TrainConfig) -> DataLoader | None:
    """The first ``validation_batches`` batches of the corpus's val split (None: no such split)."""
    if not config.validation_batches:
        return None
    try:
        frames = TrainingFrames(config.corpus, "val", seed=config.seed,
                                align_to_source=config.align_to_source, closed_source=config.closed_source)
    except ValueError:
        return None
    first = range(min(len(frames), config.validation_batches * config.batch_size))
    return DataLoader(Subset(frames, first), batch_size=config.batch_size)


@torch.no_grad()
def validate(config: TrainConfig, accelerator, models, predictor, loader: DataLoader, step: int) -> None:
    """Log the mean unweighted terms and total on ``loader`` as ``val/*``; ``models`` are the
    (prepared) generator and discriminator. In eval mode and on a forked RNG: validation changes
    no state that a resumed run would not have."""
    networks = [accelerator.unwrap_model(m) for m in models]
    sums: dict[str, float] = {}
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        for network in networks:
            network.eval()
        generator, discriminator = networks
        for batch in loader:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            total, terms, _ = generator_step(generator, predictor, discriminator, batch, config.loss,
                                             config.mouth_window)
            for name, value in {"total": total, **terms}.items():
                sums[name] = sums.get(name, 0.0) + value.item() / len(loader)
        for network in networks:
            network.train()
    accelerator.log({f"val/{k}": v for k, v in sums.items()}, step=step)
    if accelerator.is_main_process:
        with (config.run_dir / "validation.jsonl").open("a") as log:
            log.write(json.dumps({"step": step, **sums}) + "\n")


def log_samples(accelerator, batch, generator, predictor, step: int) -> None:
    """A grid of source / ground truth / generated frames (up to 4) in TensorBoard."""
    if not accelerator.is_main_process:
        return
    n = min(4, len(batch["frame"]))
    small = {k: v[:n] for k, v in batch.items()}
    with torch.no_grad():
        fake = geometry_frame(accelerator.unwrap_model(generator), predictor, small)[1]
    rows = torch.cat([small["source"], small["frame"], fake], dim=3)  # (n, 3, H, 3W)
    grid = torch.cat(list(rows), dim=1).add(1).div(2).clamp(0, 1)  # (3, nH, 3W)
    tracker = accelerator.get_tracker("tensorboard", unwrap=True)
    tracker.add_image("samples/source|truth|generated", grid, step)
