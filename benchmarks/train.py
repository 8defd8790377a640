"""Training throughput at 128x128: samples per second of a stage-"man" step on this machine, with
the GAN terms (stage 2) and by L1 alone (stages 3-5).

    python benchmarks/train.py [--corpus data/corpus] [--batch-size 8] [--steps 6] [--threads N]

Uses the given corpus, or builds a 6-clip one in a temporary folder. Times the optimisation steps
only (data loading included, in the main process), after one warm-up step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from talking.models import build_models
from talking.training.batches import TrainingFrames
from talking.training.config import LossWeights
from talking.training.steps import discriminator_step, generator_step


def throughput(variant: str, corpus: Path, batch_size: int, steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    generator, predictor, discriminator = build_models(variant, 128)
    weights = LossWeights()
    predictor.requires_grad_(False)  # fixed in stage "man", as in the training loop
    data = DataLoader(TrainingFrames(corpus, "train", align_to_source=True),
                      batch_size=batch_size, shuffle=True, drop_last=True)
    g_opt = torch.optim.Adam(generator.parameters(), 2e-4)
    d_opt = torch.optim.Adam(discriminator.parameters(), 2e-4)

    def man(batch, weights: LossWeights = weights) -> None:
        total, _, fake = generator_step(generator, predictor, discriminator, batch, weights)
        total.backward()
        g_opt.step()
        g_opt.zero_grad()
        if weights.uses_discriminator:  # as the training loop: no GAN term, no discriminator
            d_opt.zero_grad()
            d_total, _ = discriminator_step(discriminator, batch, fake, weights)
            d_total.backward()
            d_opt.step()
            d_opt.zero_grad()

    results = {}
    l1_alone = LossWeights(adversarial=0.0, cam=0.0, feature_matching=0.0)  # *_finetune.yaml on
    stages = (("man", man), ("man L1 alone", lambda b: man(b, weights=l1_alone)))
    for name, step in stages:
        batches = iter(data)
        step(next(batches))  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            step(next(batches))
        results[name] = steps * batch_size / (time.perf_counter() - start)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None:
            from talking.corpus.build import CorpusConfig, build_corpus

            corpus = Path(tmp) / "corpus"
            build_corpus(CorpusConfig(out=str(corpus), clips=6, resolution=128, seed=0))
        print(f"128x128, batch {args.batch_size}, {args.threads} threads, {args.steps} timed steps")
        for variant in ("optical", "keypoint"):
            for stage, rate in throughput(variant, corpus, args.batch_size, args.steps).items():
                print(f"  MAN-{variant:8s} stage {stage:13s} {rate:6.1f} samples/s")


if __name__ == "__main__":
    main()
