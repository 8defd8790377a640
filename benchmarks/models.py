"""Size and speed of every MAN network on this machine.

    python benchmarks/models.py [--resolution 128] [--seconds 2]

For each network: parameters, GFLOP per frame (``torch.utils.flop_counter``, one multiply-add = 2
FLOP) and frames per second under ``torch.inference_mode()`` at batch 1 and batch 16.

- "forward" rows run the whole network on fresh inputs, as in training.
- "per frame" rows are what the pipeline runs for each frame: the source is encoded once per clip
  and the audio once per batch of windows, so a frame costs its landmarks, the thin-plate flow
  that moves the photo, the generator's motion input and ``MANGenerator.render``.
- the motion predictor's row runs it over a clip of ``batch`` frames (one sequence: speech ->
  mouth parameters), as the pipeline does once per clip.
- "generate_frames" is the pipeline on one clip: the clip's mouth parameters, then its frames
  (batches of 16), without the audio features and the full-resolution composite.

Targets at 128x128 on 2 CPU cores: generator + motion <= 1.5 GFLOP per frame and > 40 frames/s at
batch 16; generate_frames faster than real time (25 fps).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from talking.audio import LOG_MEL_FLOOR, AudioWindows
from talking.config import N_MELS, AudioConfig
from talking.models import build_models
from talking.pipeline import TalkingFacePipeline

WINDOW = AudioConfig().window


def inputs(resolution: int, batch: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "source": torch.rand(batch, 3, resolution, resolution, generator=g) * 2 - 1,
        "landmarks": resolution * (0.25 + 0.5 * torch.rand(batch, 68, 2, generator=g)),
        "mel": LOG_MEL_FLOOR + 12 * torch.rand(batch, WINDOW, N_MELS, generator=g),
        "pitch": torch.randint(0, 256, (batch, WINDOW), generator=g),
        "energy": 4 * torch.rand(batch, WINDOW, generator=g),
    }


def gflop(step: Callable[[], object]) -> float:
    # no_grad, not inference_mode: FlopCounterMode's module tracker fails on spectral-norm
    # parametrisations under inference_mode (torch 2.13).
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


@torch.inference_mode()
def frames_per_second(step: Callable[[], object], batch: int, seconds: float) -> float:
    for _ in range(2):
        step()
    runs, start = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < seconds:
        step()
        runs += 1
    return runs * batch / (time.perf_counter() - start)


@torch.no_grad()
def rows(variant: str, resolution: int, batch: int) -> list[tuple[str, int, Callable[[], object]]]:
    """(name, parameters, a callable that makes ``batch`` frames' worth of that work)."""
    torch.manual_seed(0)
    generator, predictor, discriminator = build_models(variant, resolution)
    for model in (generator, predictor, discriminator):
        model.eval()
    x = inputs(resolution, batch)
    audio = (x["mel"], x["pitch"], x["energy"])
    source_features = generator.encode_source(x["source"])
    generator_audio = generator.encode_audio(*audio)
    photo = x["landmarks"][:1]  # (1, 68, 2): one photo, every frame's landmarks moved from it
    state = predictor.source_parameters(photo)
    parameters = predictor(*(a[None] for a in audio)).parameters[0]  # (batch, P)
    anchors = photo.expand(batch, -1, -1)
    targets = predictor.landmarks(parameters, photo, state)
    motion = predictor.condition(anchors, targets)
    name = type(predictor).__name__
    g, p = generator.num_parameters(), predictor.num_parameters()

    def one_frame_per_frame_work() -> None:
        _, m = predictor.drive(anchors, predictor.landmarks(parameters, photo, state))
        generator.render(source_features, m, generator_audio)

    return [
        ("MANGenerator forward", g, lambda: generator(x["source"], motion, *audio)),
        ("MANGenerator per frame (render)", g,
         lambda: generator.render(source_features, motion, generator_audio)),
        (f"{name} over a clip (parameters)", p, lambda: predictor(*(a[None] for a in audio))),
        ("thin_plate_flow per frame", 0, lambda: predictor.flow(anchors, targets, resolution)),
        (f"{name}.drive per frame (flow and motion input)", 0, lambda: predictor.drive(anchors, targets)),
        (f"generator + {name} per frame", g, one_frame_per_frame_work),
        ("MultiscaleDiscriminator forward", discriminator.num_parameters(),
         lambda: discriminator(x["source"], x["source"])),
    ]


def generate_frames_fps(variant: str, resolution: int, frames: int) -> float:
    """Frames per second of one clip: its mouth parameters, then its frames."""
    generator, predictor, _ = build_models(variant, resolution)
    pipe = TalkingFacePipeline(generator=generator.eval(), motion_predictor=predictor.eval())
    rng = np.random.default_rng(0)
    windows = AudioWindows(
        mel=(LOG_MEL_FLOOR + 12 * rng.random((frames, WINDOW, N_MELS))).astype(np.float32),
        pitch=rng.integers(0, 256, (frames, WINDOW)),
        energy=(4 * rng.random((frames, WINDOW))).astype(np.float32),
    )
    source = torch.rand(3, resolution, resolution) * 2 - 1
    landmarks = inputs(resolution, 1)["landmarks"][0]

    def clip(windows: AudioWindows) -> int:
        parameters = pipe.motion_predictor.predict_parameters(windows)
        return sum(1 for _ in pipe.generate_frames(source, landmarks, parameters, windows))

    clip(AudioWindows(windows.mel[:5], windows.pitch[:5], windows.energy[:5]))  # warm-up
    start = time.perf_counter()
    count = clip(windows)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=128, choices=[128, 256])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per measurement")
    parser.add_argument("--frames", type=int, default=100, help="clip length for generate_frames")
    args = parser.parse_args()
    print(f"{args.resolution}x{args.resolution}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    header = f"{'network':<44}{'params':>10}{'GFLOP/frame':>13}{'fps b=1':>10}{'fps b=16':>10}"
    for variant in ("optical", "keypoint"):
        print(f"\n[{variant}]\n{header}")
        single, batched = rows(variant, args.resolution, 1), rows(variant, args.resolution, 16)
        for (name, params, step), (_, _, step16) in zip(single, batched, strict=True):
            fps1 = frames_per_second(step, 1, args.seconds)
            fps16 = frames_per_second(step16, 16, args.seconds)
            print(f"{name:<44}{params / 1e6:>9.3f}M{gflop(step):>13.3f}{fps1:>10.1f}{fps16:>10.1f}")
        fps = generate_frames_fps(variant, args.resolution, args.frames)
        print(f"{'TalkingFacePipeline.generate_frames':<44}{'':>10}{'':>13}{fps:>10.1f}{'-':>10}")


if __name__ == "__main__":
    main()
