"""Training the motion predictor: speech -> mouth parameters, on the corpus's exact articulation.

Targets: the synthetic corpus records every frame's mouth parameters (``truth.npz["mouth"]``); a
prepared real corpus has only landmarks, whose lip and jaw motion (relative to the clip's most
closed frame, in the first frame's head pose) is projected onto the mouth basis instead
(:func:`clip_parameters`). Inputs: the clip's audio features, and ``augmentations`` altered copies
of its speech (:mod:`talking.training.speech_augment`) with the targets stretched to match, all
computed once before training (a clip's features take ~30 ms; a step, ~10).

Loss (:func:`motion_loss`): L1 on the parameters, L1 on their frame-to-frame velocity, the
gap between the predicted and true spread of each parameter over the clip, and the lips' gap
wherever the true lips are closed. Regression to the mean is what made the earlier mouths barely
move; the spread term penalises it directly, the velocity term keeps the timing of closures and
openings sharp. A /p b m/ closure lasts two or three frames between open vowels, and L1 on
seven parameters let the predicted lips stop a few pixels short of meeting there (synthetic val:
31 % of bilabials closed to 0.02 eye distances, the truth 88 %); the closure term asks for the
gap itself to be zero (:func:`lip_gap`).

Validation reports, besides L1 and the jaw's correlation, travel and spread, the share of /p b m/
intervals in which the predicted lips close and of open vowels in which they open (the
real-input evaluation's viseme accuracy, read off the predicted landmarks), on the corpus's val
split as recorded and augmented, and on the held-out natural voices as recorded and augmented
(``val_natural_augmented``: room, channel, noise, music, babble — the closest stand-in for a
user's recording that is not evaluation material).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from talking.audio import AudioFeatures, extract_features
from talking.config import FPS, MOUTH_PARAMETERS, AudioConfig
from talking.corpus.visemes import phoneme_visemes
from talking.data import Clip, load_split
from talking.errors import TalkingError
from talking.models.motion import MOTION_CLASSES, MotionPredictor, lip_gap, mouth_opening
from talking.pose import move_points, pose_alignment
from talking.real_metrics import CLOSE_MARGIN, LIP_LEAD, OPEN_MARGIN, interval_frames
from talking.speech import Phoneme
from talking.training.checkpoints import PREDICTOR_FOLDER
from talking.training.speech_augment import augment_speech

# Loss weight of each parameter: the opening is what viewers read lips by.
PARAMETER_WEIGHTS = (3.0, 1.0, 1.0, 0.5, 1.0, 0.5, 0.5)
NATURAL_VAL_EVERY = 10  # one natural-voice utterance in ten is validation


@dataclasses.dataclass
class MotionTrainConfig:
    """What a motion-predictor run trains on and how long."""

    corpus: str = "data/corpus"
    output_dir: str = "runs/motion"
    steps: int = 3000
    batch_size: int = 16
    learning_rate: float = 2e-3
    augmentations: int = 3  # altered copies of each training clip's speech
    velocity_weight: float = 1.0
    spread_weight: float = 1.0
    max_frames: int = 200  # frames per training sequence (a random stretch of longer clips)
    seed: int = 0
    channels: int = 96
    hidden: int = 96
    lookahead: int = 2
    validate_every: int = 250
    threads: int | None = None
    closure_weight: float = 2.0
    init_from: str | None = None  # a saved motion predictor to continue from (same config)
    natural: str | None = None  # a natural-voice speech set (python -m talking natural-speech)


def fit_mouth_basis(styles: int = 60, samples: int = 40, seed: int = 0) -> np.ndarray:
    """(P, 68, 2) landmark displacement per unit of each mouth parameter, in crop fractions.

    Least squares over ``styles`` random faces of the corpus renderer, ``samples`` random mouths
    each, against each face's mouth at rest (R^2 = 0.96 on the renderer's faces)."""
    from talking.corpus.appearance import sample_face_style
    from talking.corpus.geometry import face_frame

    rng = np.random.default_rng(seed)
    inputs, outputs = [], []
    for index in range(styles):
        style = sample_face_style(rng, feminine=index % 2 == 0)
        rest = face_frame(style, np.zeros(len(MOUTH_PARAMETERS)), 1.0, 0.0, np.zeros(2)).landmarks
        for _ in range(samples):
            mouth = rng.uniform(0, 1, len(MOUTH_PARAMETERS)) * (rng.uniform(size=len(MOUTH_PARAMETERS)) < 0.5)
            landmarks = face_frame(style, mouth, 1.0, 0.0, np.zeros(2)).landmarks
            inputs.append(mouth)
            outputs.append((landmarks - rest).ravel())
    basis, *_ = np.linalg.lstsq(np.array(inputs), np.array(outputs), rcond=None)
    return basis.reshape(len(MOUTH_PARAMETERS), 68, 2).astype(np.float32)


def clip_parameters(clip: Clip, basis: np.ndarray) -> np.ndarray:
    """(N, P) mouth parameters of every frame: the corpus's truth, or projected from landmarks."""
    if clip.truth is not None and "mouth" in clip.truth:
        return clip.truth["mouth"].astype(np.float32)
    if clip.landmarks is None:
        raise TalkingError(f"{clip.directory} has neither mouth parameters nor landmarks to learn from")
    resolution = int(clip.meta["resolution"])
    first = clip.landmarks[0]
    moved = np.stack([move_points(points, pose_alignment(points, first)) for points in clip.landmarks])
    rest = moved[int(np.argmin(mouth_opening(moved)))]
    flat = basis.reshape(len(basis), -1).T * resolution  # (68 * 2, P)
    parameters, *_ = np.linalg.lstsq(flat, (moved - rest).reshape(len(moved), -1).T, rcond=None)
    return np.clip(parameters.T, 0, 1).astype(np.float32)


def viseme_intervals(phonemes: list[Phoneme], num_frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frame indices of each /p b m/ and of each open vowel (viseme "AA") in ``phonemes``, from
    :data:`~talking.real_metrics.LIP_LEAD` frames before it (as the real-input evaluation reads them)."""
    bilabials, vowels = [], []
    for phoneme in phonemes:
        visemes = phoneme_visemes(phoneme.symbol)
        if visemes in (["PP"], ["AA"]):
            frames = interval_frames(phoneme, FPS, num_frames, LIP_LEAD)
            (bilabials if visemes == ["PP"] else vowels).append(frames)
    return bilabials, vowels


def stretch(parameters: np.ndarray, num_frames: int) -> np.ndarray:
    """(N, P) per-frame targets resampled to ``num_frames`` frames over the same span."""
    source = (np.arange(len(parameters)) + 0.5) / len(parameters)
    target = (np.arange(num_frames) + 0.5) / num_frames
    return np.stack([np.interp(target, source, column) for column in parameters.T], axis=1).astype(np.float32)


@dataclasses.dataclass
class Sequence:
    """One training sequence: windows mel (N, W, n_mels), pitch (N, W), energy (N, W); targets
    (N, P); for validation, the frames of its /p b m/ and open vowels (:func:`viseme_intervals`)."""

    mel: np.ndarray
    pitch: np.ndarray
    energy: np.ndarray
    targets: np.ndarray
    bilabials: list[np.ndarray] = dataclasses.field(default_factory=list)
    vowels: list[np.ndarray] = dataclasses.field(default_factory=list)

    @classmethod
    def from_features(cls, features: AudioFeatures, targets: np.ndarray,
                      phonemes: list[Phoneme] | None = None) -> Sequence:
        windows = features.windows()
        count = min(len(windows), len(targets))
        bilabials, vowels = viseme_intervals(phonemes or [], count)
        return cls(windows.mel[:count], windows.pitch[:count], windows.energy[:count], targets[:count],
                   bilabials, vowels)


@dataclasses.dataclass
class Speech:
    """What sequences are made from: audio (S,) float32 at 22050 Hz, targets (N, P), the
    phonemes behind them, and the audio's features when already computed (a corpus clip's)."""

    audio: np.ndarray
    targets: np.ndarray
    phonemes: list[Phoneme]
    features: AudioFeatures | None = None


def clip_speech(clip: Clip, basis: np.ndarray) -> Speech:
    """A corpus clip's (or a prepared real clip's) speech and mouth parameters."""
    return Speech(clip.audio, clip_parameters(clip, basis), clip_phonemes(clip), clip.features)


def natural_speech(folder: str) -> tuple[list[Speech], list[Speech]]:
    """(train, val) of the natural-voice set in ``folder`` (:mod:`talking.corpus.natural`):
    every :data:`NATURAL_VAL_EVERY`-th utterance is held out."""
    from talking.corpus.natural import load_natural_speech

    utterances = [Speech(u.audio, u.targets, u.phonemes) for u in load_natural_speech(folder)]
    held_out = [i % NATURAL_VAL_EVERY == 0 for i in range(len(utterances))]
    return ([u for u, out in zip(utterances, held_out, strict=True) if not out],
            [u for u, out in zip(utterances, held_out, strict=True) if out])


def augmented_copies(speech: list[Speech], index: int, count: int, seed: int
                     ) -> Iterator[tuple[np.ndarray, list[Phoneme]]]:
    """``count`` altered copies of item ``index``'s audio (S',) and its phonemes retimed to each
    copy's tempo; another item's voice may murmur under a copy. Drawn from ``seed`` and ``index``
    alone, so any caller draws the same copies."""
    rng = np.random.default_rng([seed, index])
    item = speech[index]
    for _ in range(count):
        other = None
        if len(speech) > 1:  # another item's voice, for babble
            other = speech[(index + int(rng.integers(1, len(speech)))) % len(speech)].audio
        altered, factor = augment_speech(item.audio, rng, voice=other)
        yield altered, [Phoneme(p.symbol, p.start / factor, p.end / factor) for p in item.phonemes]


def build_sequences(speech: list[Speech], augmentations: int, seed: int,
                    config: AudioConfig = AudioConfig()) -> list[Sequence]:
    """Every item as recorded plus ``augmentations`` altered copies of its audio
    (:func:`augmented_copies`), the targets stretched to each copy's length."""
    sequences = []
    for index, item in enumerate(speech):
        features = item.features if item.features is not None else extract_features(item.audio, config)
        sequences.append(Sequence.from_features(features, item.targets, item.phonemes))
        for altered, phonemes in augmented_copies(speech, index, augmentations, seed):
            features = extract_features(altered, config)
            targets = stretch(item.targets, features.num_video_frames)
            sequences.append(Sequence.from_features(features, targets, phonemes))
    return sequences


def clip_phonemes(clip: Clip) -> list[Phoneme]:
    """The phonemes the corpus recorded for ``clip`` (none for a prepared real clip)."""
    truth = clip.truth
    if truth is None or "phonemes" not in truth:
        return []
    return [Phoneme(str(symbol), float(start), float(end))
            for symbol, start, end in zip(truth["phonemes"], truth["phoneme_start"], truth["phoneme_end"],
                                          strict=True)]


def collate(sequences: list[Sequence], max_frames: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """A padded batch: mel (B, N, W, n_mels), pitch, energy (B, N, W), targets (B, N, P), valid (B, N)."""
    stretches = []
    for sequence in sequences:
        start = int(rng.integers(0, max(1, len(sequence.targets) - max_frames + 1)))
        stretches.append(slice(start, start + max_frames))
    length = max(len(s.targets[part]) for s, part in zip(sequences, stretches, strict=True))
    batch = {"valid": torch.zeros(len(sequences), length, dtype=torch.bool)}
    for name in ("mel", "pitch", "energy", "targets"):
        first = getattr(sequences[0], name)
        batch[name] = torch.zeros((len(sequences), length, *first.shape[1:]),
                                  dtype=torch.from_numpy(first[:1]).dtype)
    for row, (sequence, part) in enumerate(zip(sequences, stretches, strict=True)):
        count = len(sequence.targets[part])
        batch["valid"][row, :count] = True
        for name in ("mel", "pitch", "energy", "targets"):
            batch[name][row, :count] = torch.from_numpy(getattr(sequence, name)[part])
    batch["mel"][~batch["valid"]] = float(np.log(1e-5))  # padding reads as silence
    return batch


def motion_loss(predicted: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, basis: torch.Tensor,
                velocity_weight: float = 1.0, spread_weight: float = 1.0,
                closure_weight: float = 2.0) -> tuple[torch.Tensor, dict]:
    """Weighted total and terms for predicted and true parameters (B, N, P), ``valid`` (B, N),
    ``basis`` (P, 68, 2) the predictor's (for the lips' gap)."""
    weights = predicted.new_tensor(PARAMETER_WEIGHTS)
    mask = valid[..., None].to(predicted.dtype)
    count = mask.sum().clamp_min(1) * predicted.shape[-1]
    l1 = ((predicted - targets).abs() * mask * weights).sum() / count / weights.mean()
    pair = mask[:, 1:] * mask[:, :-1]
    velocity = (((predicted.diff(dim=1) - targets.diff(dim=1)).abs() * pair * weights).sum()
                / (pair.sum() * predicted.shape[-1]).clamp_min(1) / weights.mean())
    frames = mask.sum(dim=1).clamp_min(1)  # (B, 1)

    def spread(x: torch.Tensor) -> torch.Tensor:
        mean = (x * mask).sum(dim=1) / frames
        return (((x - mean[:, None]) ** 2 * mask).sum(dim=1) / frames).clamp_min(1e-8).sqrt()  # (B, P)

    spread_gap = ((spread(predicted) - spread(targets)).abs() * weights).mean() / weights.mean()
    shut = (lip_gap(targets, basis) <= CLOSE_MARGIN / 4) & valid  # (B, N): the true lips meet
    closure = lip_gap(predicted, basis).clamp_min(0)[shut].mean() if shut.any() else predicted.new_zeros(())
    terms = {"l1": l1, "velocity": velocity, "spread": spread_gap, "closure": closure}
    total = l1 + velocity_weight * velocity + spread_weight * spread_gap + closure_weight * closure
    return total, terms


@torch.no_grad()
def validation_figures(model: MotionPredictor, sequences: list[Sequence]) -> dict[str, float]:
    """On whole sequences: L1, and for the opening the correlation and travel (slope of the
    predicted on the true opening: 1 = moves exactly as far)."""
    model.eval()
    predicted, true, closed, opened = [], [], [], []
    for sequence in sequences:
        output = model(torch.from_numpy(sequence.mel)[None], torch.from_numpy(sequence.pitch)[None],
                       torch.from_numpy(sequence.energy)[None]).parameters[0]
        gap = lip_gap(output, model.basis).numpy()  # (N,)
        # the gap from rest, so counted as the real-input evaluation counts a closed photo's
        closed += [gap[frames].min() <= CLOSE_MARGIN for frames in sequence.bilabials]
        opened += [gap[frames].max() >= OPEN_MARGIN for frames in sequence.vowels]
        predicted.append(output.numpy())
        true.append(sequence.targets)
    model.train()
    p, t = np.concatenate(predicted), np.concatenate(true)
    jaw_p, jaw_t = p[:, 0], t[:, 0]
    slope = float(np.polyfit(jaw_t, jaw_p, 1)[0]) if jaw_t.std() > 0 else 0.0
    figures = {"l1": float(np.abs(p - t).mean()), "jaw_corr": float(np.corrcoef(jaw_p, jaw_t)[0, 1]),
               "jaw_travel": slope, "jaw_spread_ratio": float(jaw_p.std() / max(jaw_t.std(), 1e-8))}
    if closed:
        figures["bilabial_closed"] = float(np.mean(closed))
    if opened:
        figures["open_vowel_open"] = float(np.mean(opened))
    return figures


def train_motion(config: MotionTrainConfig) -> MotionPredictor:
    """Train the motion predictor; writes ``output_dir``/log.jsonl and, at each best val L1 (the
    mean of the corpus's and the natural voices' val splits), :func:`export_motion`."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_clips, val_clips = load_split(config.corpus, "train"), load_split(config.corpus, "val")
    basis = fit_mouth_basis(seed=config.seed)
    started = time.time()
    train_speech = [clip_speech(clip, basis) for clip in train_clips]
    val_speech = [clip_speech(clip, basis) for clip in val_clips]
    natural_train, natural_val = natural_speech(config.natural) if config.natural else ([], [])
    train = build_sequences(train_speech + natural_train, config.augmentations, config.seed)
    validation = {"val": build_sequences(val_speech, 0, config.seed),
                  "val_augmented": build_sequences(val_speech, 1, config.seed + 1)[1::2]}
    if natural_val:
        validation["val_natural"] = build_sequences(natural_val, 0, config.seed)
        # natural voices as real recordings have them (room, channel, noise, music, babble): the
        # closest held-out stand-in for a user's recording
        validation["val_natural_augmented"] = build_sequences(natural_val, 1, config.seed + 1)[1::2]
    print(f"features: {len(train)} training sequences in {time.time() - started:.0f} s", flush=True)

    if config.init_from:
        model = MOTION_CLASSES["optical"].from_pretrained(config.init_from)
        if (model.config.channels, model.config.hidden, model.config.lookahead) != (
                config.channels, config.hidden, config.lookahead):
            raise TalkingError(f"{config.init_from} was built with other channels, hidden or lookahead "
                               "than this recipe's")
    else:
        model = MOTION_CLASSES["optical"](channels=config.channels, hidden=config.hidden,
                                          lookahead=config.lookahead)
    model.basis.copy_(torch.from_numpy(basis))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=config.steps,
                                                   pct_start=0.05)
    rng = np.random.default_rng(config.seed)
    best, log = float("inf"), (out / "log.jsonl").open("a")
    for step in range(1, config.steps + 1):
        batch = collate([train[i] for i in rng.integers(0, len(train), config.batch_size)],
                        config.max_frames, rng)
        output = model(batch["mel"], batch["pitch"], batch["energy"], batch["valid"])
        loss, terms = motion_loss(output.parameters, batch["targets"], batch["valid"], model.basis,
                                  config.velocity_weight, config.spread_weight, config.closure_weight)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % config.validate_every == 0 or step == config.steps:
            figures = {"step": step, "seconds": round(time.time() - started),
                       **{k: round(v.item(), 4) for k, v in terms.items()}}
            for name, sequences in validation.items():
                found = validation_figures(model, sequences)
                figures.update({f"{name}_{k}": round(v, 4) for k, v in found.items()})
            log.write(json.dumps(figures) + "\n")
            log.flush()
            print(figures, flush=True)
            # the best on the espeak-ng voices and, when there are some, the natural ones alike
            score = np.mean([figures[f"{name}_l1"] for name in ("val", "val_natural") if name in validation])
            if score < best:
                best = score
                export_motion(model, out)
    log.close()
    return MOTION_CLASSES["optical"].from_pretrained(out / "optical" / PREDICTOR_FOLDER)


def export_motion(model: MotionPredictor, out: Path) -> None:
    """The trained weights as each variant's predictor: ``out/<variant>/motion_predictor``, the
    folder a stage-"man" recipe's ``init_from`` names."""
    for variant, cls in MOTION_CLASSES.items():
        predictor = cls.from_config(model.config)
        predictor.load_state_dict(model.state_dict())
        predictor.save_pretrained(out / variant / PREDICTOR_FOLDER)
