"""``python -m talking evaluate``: the paper's metrics over a corpus split, for MAN and baselines.

For every clip of the split, each method makes the clip's frames from its first frame and its
audio: the MAN checkpoints through :meth:`TalkingFacePipeline.generate_frames` (the clip's
first frame as the source, the clip's audio windows, the predictor's mean motion) and the
compositor, as a user's photo is made into frames (the first frame is that photo, at the crop's
resolution), the baselines of :mod:`talking.baselines`. The clip's real frames are evaluated
too ("real frames"): their row shows what the metrics give for perfect video, and, for the
metrics read off frames by the landmark estimator (LMD, blinks, sync), the estimator's own
error floor.

Metrics (:mod:`talking.metrics`), pooled over every frame of every clip:

- SSIM and PSNR of each frame against the real one, on the whole crop and on its lower half,
  and the L1 (mean absolute error) of the lower half;
- the L1 of the lips against the real frame *registered* into the first frame's head pose
  (:mod:`talking.pose`, by the ground-truth landmarks: the targets training uses), in the clip's
  lip box (:func:`registered_lip_box`). A model of a still photo keeps the photo's pose, and no
  audio tells where the real head wanders: against the unregistered frames even the exact real
  mouth drawn into the still photo scores worse than the closed one, because a moving mouth in
  the wrong place costs twice. Registered, what is left in the box is the lips and the camera's
  noise. The real frames' own row shows what the wander alone costs there;
- CPBD sharpness of each frame;
- LMD: mouth landmarks (iBUG 48-67) read off the frames by the landmark estimator
  (:mod:`talking.landmarks`) against the ground-truth landmarks, in pixels of the crop;
- blinks per second: the estimator's eye openness, with hysteresis;
- sync: the correlation of the estimator's mouth opening with the ground-truth jaw opening at
  offsets of -K..K frames, averaged over clips; the best offset should be 0;
- mouth travel: how far the estimator's mouth opening moves per unit of the ground-truth jaw
  opening (:func:`talking.metrics.opening_slope`, over every frame): a mouth in sync that opens
  too little has a good sync and a small travel; the real frames' row is the target;
- drift: the mean SSIM at each frame index, which shows an autoregressive model drifting away.

What needs a network that cannot be downloaded here is not measured (:data:`NOT_MEASURED`).
The results go to ``--out``: ``results.md``, ``results.json`` and PNG plots (:mod:`talking.report`).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from talking import ibug, metrics
from talking.composite import Compositor
from talking.config import ARTICULATION, MAX_ARTICULATION
from talking.data import Clip, load_index, load_split
from talking.errors import TalkingError
from talking.landmarks import FaceTrack, LandmarkEstimator, clip_targets, estimate
from talking.pose import register_frames

NOT_MEASURED = {
    "WER": "needs a pretrained lip-reading network (LipNet, trained on GRID)",
    "ACD": "needs a pretrained face-identity network (OpenFace) for the average content distance",
    "FID": "needs the pretrained Inception network for its features",
    "LSE-C / LSE-D": "need the pretrained SyncNet; our sync measure uses the ground-truth mouth opening",
}
REAL = "real frames"
TRUE_MOUTH = "true mouth"
DRIFT_FRAMES = 50  # SSIM by frame index is reported for the first 50 frames (2 s)


@dataclass(frozen=True)
class EvaluateOptions:
    """What to evaluate and where to write it (the checkpoints are given separately)."""

    corpus: str = dataclasses.field(default="", metadata={
        "help": "corpus folder (synthetic: with ground truth); not with --real"})
    out: str = dataclasses.field(default="outputs/evaluation",
                                 metadata={"help": "folder for results.md, results.json and plots"})
    split: str = dataclasses.field(default="test", metadata={"help": "train, val or test"})
    landmarks: str = dataclasses.field(default="checkpoints/landmarks",
                                       metadata={"help": "the landmark estimator (train/train_landmarks.py)"})
    baselines: bool = dataclasses.field(
        default=True, metadata={"help": "evaluate the static, energy and true-mouth baselines"})
    max_clips: int = dataclasses.field(default=0, metadata={"help": "evaluate the first N clips (0: all)"})
    max_offset: int = dataclasses.field(default=5, metadata={"help": "sync offsets searched, in frames"})
    device: str = dataclasses.field(default="cpu", metadata={"help": "torch device for the networks"})
    articulation: float = dataclasses.field(default=ARTICULATION, metadata={
        "help": "how wide the MAN checkpoints' predicted mouths open against the corpus's "
                "articulation: the shipped default (what users get) or 1 (the corpus's own scale)"})

    def __post_init__(self) -> None:
        if not self.corpus:
            raise ValueError("give --corpus with a corpus folder, or --real for real photos and speech")
        if self.max_clips < 0 or self.max_offset < 1:
            raise ValueError("max_clips must be >= 0 and max_offset >= 1")
        if not 0 < self.articulation <= MAX_ARTICULATION:
            raise ValueError(f"articulation must be in (0, {MAX_ARTICULATION}], got {self.articulation}")


Method = Callable[[Clip], np.ndarray]  # clip -> its frames (N, R, R, 3) uint8


def evaluate(checkpoints: list[str], options: EvaluateOptions) -> dict:
    """Evaluate each checkpoint (save_pretrained pipeline folders) and, with ``options.baselines``,
    the baselines; write the report to ``options.out`` and return the results."""
    from talking.report import write_report

    clips = load_split(options.corpus, options.split)[: options.max_clips or None]
    if not clips:
        raise TalkingError(f"the {options.split} split of {options.corpus} has no clips")
    # what every method is measured against, once per clip; fails early, with the reason, on
    # clips without ground truth
    references = [clip_reference(clip) for clip in clips]
    estimator = load_estimator(options.landmarks, options.device, clips[0].frames.shape[1])
    methods = {REAL: lambda clip: np.asarray(clip.frames), **baseline_methods(options),
               **model_methods(checkpoints, options.device, clips[0].frames.shape[1], options.articulation)}

    results, samples = {}, {}
    for name, method in methods.items():
        per_clip, seconds = [], 0.0
        for i, reference in enumerate(tqdm(references, desc=name, unit="clip", disable=None)):
            started = time.perf_counter()
            frames = method(reference.clip)
            seconds += time.perf_counter() - started
            per_clip.append(clip_measures(frames, reference, estimate(estimator, frames), options.max_offset))
            if i == 0:
                samples[name] = frames
        results[name] = summarize(per_clip, options.max_offset)
        made = name != REAL  # the real frames are read, not made
        results[name]["frames_per_second"] = sum(len(c) for c in clips) / max(seconds, 1e-9) if made else None
    seconds = sum(len(c) / c.fps for c in clips)
    truth_blinks = sum(metrics.count_blinks(r.eye_openness) for r in references) / seconds
    report = {"corpus": options.corpus, "split": options.split, "clips": len(clips),
              "frames": sum(len(c) for c in clips), "resolution": int(clips[0].frames.shape[1]),
              "truth_blinks_per_second": truth_blinks, "checkpoints": list(checkpoints),
              "articulation": options.articulation,
              "landmark_estimator": options.landmarks, "methods": results, "not_measured": NOT_MEASURED}
    write_report(report, samples, Path(options.out))
    return report


def load_estimator(folder: str, device: str, resolution: int) -> LandmarkEstimator:
    if not (Path(folder) / "config.json").is_file():
        raise TalkingError(f"no landmark estimator at {folder}; train one with "
                           "`python train/train_landmarks.py --config train/configs/landmarks.yaml`")
    estimator = LandmarkEstimator.from_pretrained(folder).to(device).eval()
    if estimator.config.resolution != resolution:
        raise TalkingError(f"the landmark estimator at {folder} reads {estimator.config.resolution} px "
                           f"crops; the corpus has {resolution} px")
    return estimator


def baseline_methods(options: EvaluateOptions) -> dict[str, Method]:
    from talking.baselines import energy_frames, static_frames, true_mouth_frames

    if not options.baselines:
        return {}
    if load_index(options.corpus).get("source") != "synthetic":
        # a prepared real corpus: the energy and true-mouth baselines re-render the corpus's drawn faces
        return {"static": static_frames}
    return {"static": static_frames, "energy": lambda clip: energy_frames(clip, options.corpus),
            TRUE_MOUTH: lambda clip: true_mouth_frames(clip, options.corpus)}


def model_methods(checkpoints: list[str], device: str, resolution: int,
                  articulation: float = ARTICULATION) -> dict[str, Method]:
    """A method per pipeline folder, named "MAN-<variant>", or "MAN-<variant> (<folder name>)"
    when several folders hold the same variant (the ablation runs), with the folder's whole path
    where two of them share a name; their predicted jaws opened by ``articulation``."""
    from talking.pipeline import TalkingFacePipeline

    if len({Path(folder).resolve() for folder in checkpoints}) < len(checkpoints):
        raise TalkingError(f"the same checkpoint is given twice: {list(checkpoints)}")
    pipelines = []
    for folder in checkpoints:
        if not (Path(folder) / "model_index.json").is_file():
            raise TalkingError(f"{folder} is not a pipeline folder (no model_index.json)")
        pipeline = TalkingFacePipeline.from_pretrained(folder).to(device)
        pipeline.generator.eval()
        pipeline.motion_predictor.eval()
        if pipeline.resolution != resolution:
            raise TalkingError(f"{folder} makes {pipeline.resolution} px frames; "
                               f"the corpus has {resolution} px")
        pipelines.append((folder, pipeline))
    variants = [pipeline.variant for _, pipeline in pipelines]
    names = [Path(folder).name for folder, _ in pipelines]
    methods = {}
    for (folder, p), name in zip(pipelines, names, strict=True):
        label = name if names.count(name) == 1 else str(folder)
        suffix = f" ({label})" if variants.count(p.variant) > 1 else ""
        methods[f"MAN-{p.variant}{suffix}"] = _generator(p, articulation)
    return methods


def _generator(pipeline, articulation: float) -> Method:
    def frames(clip: Clip) -> np.ndarray:
        """The clip's first frame as the photo (with its landmarks) and the clip's speech, made
        into frames as a photo's are (:class:`~talking.composite.Compositor`: the opening drawn
        at the photo's resolution, here the crop's own; the predicted jaw opened by the
        articulation, as the pipeline opens it)."""
        first = np.array(clip.frames[0])  # (R, R, 3) uint8
        compositor = Compositor(first, np.eye(2, 3), first.shape[0])
        source = torch.from_numpy(first).permute(2, 0, 1).float() / 127.5 - 1
        windows = clip.features.windows()
        predictor = pipeline.motion_predictor
        parameters = predictor.open_jaw(predictor.predict_parameters(windows), articulation)  # (N, P)
        made = pipeline.generate_frames(source, torch.from_numpy(clip.landmarks[0]), parameters, windows,
                                        refine=compositor.detail_share > 0)
        return np.stack([parts.image(compositor) for parts in made])

    return frames


@dataclass(frozen=True)
class Reference:
    """What every method's frames of one clip are measured against (:func:`clip_reference`); the
    real frames stay in the clip's memory-mapped file, read again per method."""

    clip: Clip
    landmarks: np.ndarray  # (N, 68, 2) ground truth, in pixels
    eye_openness: np.ndarray  # (N,) ground truth
    jaw: np.ndarray  # (N,) ground-truth jaw opening
    lip_box: tuple[slice, slice]  # rows, columns (registered_lip_box)
    registered_lips: np.ndarray  # (N, h, w, 3) uint8: the real frames' lip box, registered


def clip_reference(clip: Clip) -> Reference:
    """The clip's real frames and ground truth, and its lip box registered into the first
    frame's head pose."""
    landmarks, eye, jaw = clip_targets(clip)
    real = np.asarray(clip.frames)
    registered, moved = register_frames(real, landmarks, landmarks[0])
    box = registered_lip_box(moved)
    return Reference(clip=clip, landmarks=landmarks, eye_openness=eye, jaw=np.asarray(jaw),
                     lip_box=box, registered_lips=registered[(slice(None), *box)])


def clip_measures(frames: np.ndarray, reference: Reference, track: FaceTrack, max_offset: int) -> dict:
    """Per-frame measures of one clip's ``frames`` against its real frames and ground truth."""
    mouth = ibug.LIPS
    pairs = list(zip(frames, np.asarray(reference.clip.frames), strict=True))
    lips = list(zip(frames[(slice(None), *reference.lip_box)], reference.registered_lips, strict=True))
    mouth_error = track.landmarks[:, mouth] - reference.landmarks[:, mouth]
    return {
        "ssim": [metrics.ssim(f, r) for f, r in pairs],
        "ssim_mouth": [metrics.ssim(metrics.mouth_region(f), metrics.mouth_region(r)) for f, r in pairs],
        "psnr": [metrics.psnr(f, r) for f, r in pairs],
        "psnr_mouth": [metrics.psnr(metrics.mouth_region(f), metrics.mouth_region(r)) for f, r in pairs],
        "l1_mouth": [metrics.l1(metrics.mouth_region(f), metrics.mouth_region(r)) for f, r in pairs],
        "l1_lips_registered": [metrics.l1(f, r) for f, r in lips],
        "cpbd": [metrics.cpbd(f) for f in frames],
        "lmd": np.linalg.norm(mouth_error, axis=-1).mean(1).tolist(),
        "blinks": metrics.count_blinks(track.eye_openness),
        "seconds": len(frames) / reference.clip.fps,
        "sync": metrics.sync_curve(track.mouth_opening, reference.jaw, max_offset)[1],
        "opening": track.mouth_opening.tolist(),
        "jaw": reference.jaw.tolist(),
    }


def registered_lip_box(landmarks: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of a clip's lip box (:func:`talking.ibug.lip_box_bounds`) around its lip
    landmarks in every frame. landmarks: (N, 68, 2) in pixels, registered into the first frame's
    head pose (:func:`talking.pose.register_frames`)."""
    lips = landmarks[:, ibug.LIPS].reshape(-1, 2)
    low, high = ibug.lip_box_bounds(lips.min(0), lips.max(0))
    (x0, y0), (x1, y1) = np.floor(low).astype(int), np.ceil(high).astype(int)
    return slice(max(y0, 0), y1 + 1), slice(max(x0, 0), x1 + 1)


def summarize(per_clip: list[dict], max_offset: int) -> dict:
    """Pool the per-clip measures: frame means, blinks over total time, the mean sync curve."""
    def pooled(key: str) -> float | None:
        values = np.concatenate([c[key] for c in per_clip]).astype(np.float64)
        values = values[np.isfinite(values)]  # PSNR is infinite on identical frames, CPBD NaN on flat ones
        return float(values.mean()) if len(values) else None

    with warnings.catch_warnings():  # a still mouth has no correlation anywhere: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        curve = np.nanmean(np.stack([c["sync"] for c in per_clip]), axis=0)  # (2K+1,)
    offsets = np.arange(-max_offset, max_offset + 1)
    return {
        **{key: pooled(key) for key in ("ssim", "ssim_mouth", "psnr", "psnr_mouth", "l1_mouth",
                                        "l1_lips_registered", "cpbd", "lmd")},
        "blinks_per_second": sum(c["blinks"] for c in per_clip) / sum(c["seconds"] for c in per_clip),
        "sync_offsets": offsets.tolist(),
        "sync_curve": [None if np.isnan(v) else float(v) for v in curve],
        "sync_best_offset": metrics.best_offset(offsets, curve),
        "sync_correlation": None if np.isnan(curve[max_offset]) else float(curve[max_offset]),
        "mouth_travel": metrics.opening_slope(np.concatenate([c["opening"] for c in per_clip]),
                                              np.concatenate([c["jaw"] for c in per_clip])),
        "ssim_by_frame": [float(np.mean([c["ssim"][t] for c in per_clip if len(c["ssim"]) > t]))
                          for t in range(min(DRIFT_FRAMES, max(len(c["ssim"]) for c in per_clip)))],
    }
