"""Training the mouth refiner (:class:`~talking.models.refiner.MouthRefiner`) on the corpus
re-rendered at ``scale`` times its resolution.

Pairs (:func:`refiner_pairs`): a shipped pipeline makes each corpus clip's frames from its first
frame and its *true* mouth parameters (:meth:`TalkingFacePipeline.generate_frames`, as inference
makes them); every ``every``-th frame whose mouth it renders gives, over a window around its
inner lips, the refiner's input (:func:`talking.composite.detail_inputs`) and the target, the
same frame drawn by the corpus renderer at ``scale`` times the resolution with the head held as
in the first frame (:func:`talking.baselines.still_head_frames`), which is where the pipeline
keeps it. The renderer's sizes scale with the resolution, so the target is the same face with
its detail. Only the corpus renders training data: the evaluation's real photos never do.

Loss (:func:`refiner_loss`): L1 and L1 of the image gradients (edges: a blurred inside has small
gradients where the target's teeth and cavity meet), each weighted by where the rendering shows.
With ``mouth_parameters`` the refiner is also given each frame's true mouth parameters (at
inference, the predicted ones): whether teeth or a tongue show is in them, not in the rendering.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from talking.baselines import still_head_frames
from talking.composite import detail_inputs
from talking.data import Clip, load_split
from talking.errors import TalkingError
from talking.ibug import INNER_LIPS
from talking.models.refiner import MouthRefiner

WINDOW = (24, 40)  # crop pixels (rows, columns) of a training window around the inner lips
REFINER_FOLDER = "refiner"


@dataclasses.dataclass
class RefinerTrainConfig:
    """What a refiner run trains on and how long."""

    corpus: str = "data/corpus"
    pipeline: str = "checkpoints/man-optical"  # whose generator's renderings it learns to refine
    output_dir: str = "runs/refiner"
    train_clips: int = 150  # the first N clips of the train split (0: all)
    val_clips: int = 24
    every: int = 3  # every n-th rendered frame of a clip is a pair
    scale: int = 4
    channels: int = 48
    mouth_parameters: bool = False  # give the refiner each frame's mouth parameters
    steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 1e-3
    gradient_weight: float = 1.0
    validate_every: int = 250
    seed: int = 0
    threads: int | None = None


@dataclasses.dataclass
class Pairs:
    """Refiner inputs and targets: rendering (K, 3, h, w) and alpha (K, 1, h, w) float16,
    target (K, 3, h, w) uint8, h, w = ``WINDOW`` times the scale; the frames' true mouth
    parameters (K, P) float32."""

    rendering: torch.Tensor
    alpha: torch.Tensor
    target: torch.Tensor
    parameters: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Items ``index`` as float32: rendering, alpha, target in [-1, 1], parameters."""
        return (self.rendering[index].float(), self.alpha[index].float(),
                self.target[index].float() / 127.5 - 1, self.parameters[index])


def lips_window(landmarks: np.ndarray, resolution: int) -> tuple[int, int, int, int] | None:
    """The crop box (top, left, bottom, right) of :data:`WINDOW` centred on the inner lips of
    ``landmarks`` (68, 2); None where it would leave the crop."""
    centre = np.round(np.asarray(landmarks)[INNER_LIPS].mean(axis=0)).astype(int)
    top, left = int(centre[1]) - WINDOW[0] // 2, int(centre[0]) - WINDOW[1] // 2
    if top < 0 or left < 0 or top + WINDOW[0] > resolution or left + WINDOW[1] > resolution:
        return None
    return top, left, top + WINDOW[0], left + WINDOW[1]


def refiner_pairs(pipeline, clips: list[Clip], corpus: str, scale: int, every: int) -> Pairs:
    """The pairs of ``clips`` (see the module's docstring), made by ``pipeline``."""
    renderings, alphas, targets, parameters = [], [], [], []
    for clip in clips:
        mouth = clip.truth["mouth"]
        source = torch.from_numpy(np.array(clip.frames[0])).permute(2, 0, 1).float() / 127.5 - 1
        parts = list(pipeline.generate_frames(source, torch.from_numpy(clip.landmarks[0]),
                                              torch.from_numpy(mouth).float(), clip.features.windows()))
        rendered = [t for t, p in enumerate(parts) if p.blend.amax() > 0][::every]
        kept = [(t, window) for t in rendered
                if (window := lips_window(parts[t].landmarks.numpy(), source.shape[-1])) is not None]
        if not kept:
            continue
        drawn = still_head_frames(clip, corpus, mouth[[t for t, _ in kept]],
                                  resolution=scale * source.shape[-1])
        for (t, window), target in zip(kept, drawn, strict=True):
            part = parts[t]
            rendering, alpha = detail_inputs(part.synthesised[None], part.blend[None], part.landmarks[None],
                                             window, scale)
            top, left, bottom, right = (scale * v for v in window)
            renderings.append(rendering[0].half())
            alphas.append(alpha[0].half())
            targets.append(torch.from_numpy(target[top:bottom, left:right]).permute(2, 0, 1))
            parameters.append(torch.from_numpy(mouth[t]).float())
    if not targets:
        raise TalkingError("no frame of these clips renders an open mouth: nothing to train the refiner on")
    return Pairs(torch.stack(renderings), torch.stack(alphas), torch.stack(targets), torch.stack(parameters))


def refiner_loss(refined: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor,
                 gradient_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Alpha-weighted L1 of ``refined`` against ``target`` (B, 3, h, w) and of their vertical
    and horizontal differences; alpha (B, 1, h, w). Returns (total, {"l1", "gradient"})."""
    norm = alpha.mean().clamp_min(1e-6)
    l1 = ((refined - target).abs() * alpha).mean() / norm
    gradient = refined.new_zeros(())
    for dim in (-2, -1):  # a difference counts as much as both its pixels show
        both = _both_show(alpha, dim)
        gradient = gradient + ((refined.diff(dim=dim) - target.diff(dim=dim)).abs() * both).mean() / norm
    return l1 + gradient_weight * gradient, {"l1": l1.item(), "gradient": gradient.item()}


@torch.no_grad()
def validate(refiner: MouthRefiner, pairs: Pairs, batch_size: int = 64) -> dict[str, float]:
    """Over ``pairs``, refined and as merely upsampled: the mean alpha-weighted L1 and gradient
    L1, and ``edges``, the alpha-weighted sum of the image's gradient magnitudes over the
    target's (1: as much edge as the renderer draws; a blurred inside has less)."""
    sums = {"l1": 0.0, "gradient": 0.0, "upsampled_l1": 0.0, "upsampled_gradient": 0.0}
    edges = {"": 0.0, "upsampled_": 0.0}
    target_edges = 0.0
    for start in range(0, len(pairs), batch_size):
        index = torch.arange(start, min(start + batch_size, len(pairs)))
        rendering, alpha, target, parameters = pairs.batch(index)
        target_edges += _edge_sum(target, alpha)
        for prefix, image in (("", refiner(rendering, alpha, parameters)), ("upsampled_", rendering)):
            edges[prefix] += _edge_sum(image, alpha)
            _, terms = refiner_loss(image, target, alpha, 1.0)
            for key, value in terms.items():
                sums[prefix + key] += value * len(index)
    figures = {key: value / len(pairs) for key, value in sums.items()}
    return figures | {prefix + "edges": value / max(target_edges, 1e-9) for prefix, value in edges.items()}


def _edge_sum(image: torch.Tensor, alpha: torch.Tensor) -> float:
    """Sum of |vertical| + |horizontal| differences of ``image`` (B, 3, h, w) where both pixels
    show (``alpha`` (B, 1, h, w))."""
    return sum(float((image.diff(dim=dim).abs() * _both_show(alpha, dim)).sum()) for dim in (-2, -1))


def _both_show(alpha: torch.Tensor, dim: int) -> torch.Tensor:
    """How much each pair of neighbours along ``dim`` shows: the product of their ``alpha``
    (B, 1, h, w), one shorter along ``dim``."""
    count = alpha.shape[dim] - 1
    return alpha.narrow(dim, 0, count) * alpha.narrow(dim, 1, count)


def make_pairs(config: RefinerTrainConfig) -> tuple[Pairs, Pairs]:
    """(train pairs, val pairs) of ``config``'s corpus and pipeline."""
    from talking.pipeline import TalkingFacePipeline

    # the generator's own renderings: the pipeline's own refiner, if any, is not loaded
    pipeline = TalkingFacePipeline.from_pretrained(config.pipeline, refiner=None)
    pipeline.generator.eval()
    train = refiner_pairs(pipeline, load_split(config.corpus, "train")[: config.train_clips or None],
                          config.corpus, config.scale, config.every)
    val = refiner_pairs(pipeline, load_split(config.corpus, "val")[: config.val_clips or None],
                        config.corpus, config.scale, config.every)
    return train, val


def train_refiner(config: RefinerTrainConfig, pairs: tuple[Pairs, Pairs] | None = None) -> MouthRefiner:
    """Train a refiner on ``pairs`` (train, val; made by :func:`make_pairs` when None); save the
    best on the val pairs (alpha-weighted L1) to ``output_dir/refiner``, log to
    ``output_dir/log.jsonl``."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()  # the log's times count the making of the pairs
    train, val = pairs if pairs is not None else make_pairs(config)
    log = (out / "log.jsonl").open("w")
    log.write(json.dumps({"pairs": {"train": len(train), "val": len(val)},
                          "seconds": time.perf_counter() - started}) + "\n")

    refiner = MouthRefiner(scale=config.scale, channels=config.channels,
                           mouth_parameters=train.parameters.shape[-1] if config.mouth_parameters else 0)
    optimiser = torch.optim.Adam(refiner.parameters(), config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.steps)
    generator = torch.Generator().manual_seed(config.seed)
    best = float("inf")
    for step in range(1, config.steps + 1):
        index = torch.randint(0, len(train), (config.batch_size,), generator=generator)
        rendering, alpha, target, parameters = train.batch(index)
        if torch.rand((), generator=generator) < 0.5:  # faces are near mirror-symmetric
            rendering, alpha, target = rendering.flip(-1), alpha.flip(-1), target.flip(-1)
        refined = refiner(rendering, alpha, parameters)
        loss, terms = refiner_loss(refined, target, alpha, config.gradient_weight)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % config.validate_every == 0 or step == config.steps:
            refiner.eval()
            figures = validate(refiner, val)
            refiner.train()
            if figures["l1"] < best:
                best = figures["l1"]
                refiner.save_pretrained(out / REFINER_FOLDER)
            log.write(json.dumps({"step": step, "seconds": time.perf_counter() - started,
                                  "train": terms, **figures}) + "\n")
            log.flush()
    return MouthRefiner.from_pretrained(out / REFINER_FOLDER)


def attach_refiner(refiner: MouthRefiner, pipeline_folder: str | Path) -> None:
    """Save ``refiner`` into the pipeline folder ``pipeline_folder`` as its ``refiner`` (its
    other components' files stay as they are)."""
    folder = Path(pipeline_folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise TalkingError(f"{folder} is not a pipeline folder (no model_index.json)")
    refiner.save_pretrained(folder / REFINER_FOLDER)
    index = json.loads(index_path.read_text())
    index[REFINER_FOLDER] = [MouthRefiner.__module__, MouthRefiner.__name__]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
