"""Training throughput and peak memory of a recipe per batch size and precision, on whatever
accelerator is present: the first minutes of a GPU lease, so the rest is spent training.

    python benchmarks/profile_gpu.py --config train/configs/optical_man.yaml --set corpus=data/corpus \
        [--batch-sizes 8 16 32 64] [--precisions no bf16] [--steps 20] [--device cuda]

Times full stage-"man" optimisation steps (the generator, each frame made from its landmarks'
motion through the fixed motion predictor, then the discriminator, as the training loop does) on
batches drawn once from the corpus and kept on the device, so data loading is not measured.
bf16 is autocast, as ``accelerate launch --mixed_precision bf16``.
Peak memory is the accelerator's allocator peak on CUDA, the process's peak RSS on the CPU.
A batch size that runs out of memory is reported and the larger ones are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import time

import torch
from torch.utils.data import default_collate

from talking.training.batches import TrainingFrames
from talking.training.config import TrainConfig, load_config
from talking.training.loop import build, frozen
from talking.training.steps import discriminator_step, generator_step

PRECISIONS = {"no": None, "bf16": torch.bfloat16}


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def one_batch(config: TrainConfig, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """``size`` training samples of the recipe's corpus (cycling through it), on ``device``."""
    frames = TrainingFrames(config.corpus, "train", seed=config.seed, align_to_source=config.align_to_source,
                            closed_source=config.closed_source)
    batch = default_collate([frames[i % len(frames)] for i in range(size)])
    return {k: v.to(device) for k, v in batch.items()}


def samples_per_second(config: TrainConfig, batch: dict, precision: str, steps: int) -> float:
    """Samples/s of ``steps`` stage-"man" steps on ``batch`` (after one untimed warm-up step)."""
    device = batch["frame"].device
    generator, predictor, discriminator = (m.to(device).train() for m in build(config))
    predictor.requires_grad_(False).eval()  # fixed, as in the training loop
    g_opt = torch.optim.Adam(generator.parameters(), config.learning_rate)
    d_opt = torch.optim.Adam(discriminator.parameters(), config.discriminator_learning_rate)
    dtype = PRECISIONS[precision]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext

    def step() -> None:
        with autocast(), frozen(discriminator):
            total, _, fake = generator_step(generator, predictor, discriminator, batch, config.loss)
        total.backward()
        g_opt.step()
        g_opt.zero_grad(set_to_none=True)
        if config.loss.uses_discriminator:
            with autocast():
                d_total, _ = discriminator_step(discriminator, batch, fake, config.loss)
            d_total.backward()
            d_opt.step()
            d_opt.zero_grad(set_to_none=True)

    step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    return steps * len(batch["frame"]) / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile(config: TrainConfig, batch_sizes: list[int], precisions: list[str], steps: int,
            device: torch.device) -> list[dict]:
    """One row per (precision, batch size): samples/s and the peak memory, or ``"out of memory"``."""
    config = dataclasses.replace(config, init_from=None, init_pipeline=None)  # random weights time the same
    rows = []
    for precision in precisions:
        for size in sorted(batch_sizes):
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            row = {"precision": precision, "batch_size": size}
            try:
                batch = one_batch(config, size, device)
                row["samples_per_second"] = samples_per_second(config, batch, precision, steps)
                row["peak_memory_mb"] = peak_memory_mb(device)
            except torch.OutOfMemoryError:
                row["out_of_memory"] = True
            rows.append(row)
            if row.get("out_of_memory"):
                break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a stage-2 recipe (train/configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as in train/")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--precisions", nargs="+", choices=sorted(PRECISIONS), default=["no", "bf16"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per cell")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    config = load_config(args.config, args.set)
    device = torch.device(args.device)
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    print(f"{config.name} at {config.resolution}x{config.resolution} ({config.variant}) on {name}, "
          f"{args.steps} timed steps per row")
    print(f"{'precision':>9} {'batch':>5} {'samples/s':>10} {'peak MB':>9}")
    for row in profile(config, args.batch_sizes, args.precisions, args.steps, device):
        if row.get("out_of_memory"):
            print(f"{row['precision']:>9} {row['batch_size']:>5}  out of memory")
            continue
        print(f"{row['precision']:>9} {row['batch_size']:>5} {row['samples_per_second']:>10.1f} "
              f"{row['peak_memory_mb']:>9.0f}")


if __name__ == "__main__":
    main()
