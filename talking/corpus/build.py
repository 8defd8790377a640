"""``python -m talking corpus``: the synthetic corpus, planned up front, rendered in parallel.

The plan (:func:`plan_corpus`) fixes every clip before any is rendered: speakers (each one face
and one voice) are dealt to train / val / test, and so are the espeak-ng voice variants, so the
splits share no identity and no voice; every sentence is used once in the whole corpus. Each
clip (:func:`build_clip`) then depends only on its plan entry and the seed, so the corpus is the
same byte for byte whatever the number of workers or the order they finish in, and an
interrupted build resumes by rendering only the clips that are missing.

A clip: the sentence spoken by espeak-ng, set to a random level, padded with 0.1-0.6 s of
silence at both ends and, mostly, a faint noise floor; the face's mouth follows the phonemes
(:mod:`~talking.corpus.visemes`), its eyes, brows and head move on their own and with the speech
(:mod:`~talking.corpus.motion`); all of it is ground truth in ``truth.npz``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from talking.audio import extract_features
from talking.config import FPS, MOUTH_PARAMETERS, RESOLUTION, SAMPLE_RATE
from talking.corpus.appearance import FaceStyle, sample_face_style, sample_scene_style
from talking.corpus.motion import HEAD_OFFSET_AXES, HEAD_POSE_AXES, face_motion
from talking.corpus.render import render_clip
from talking.corpus.text import free_sentence, grid_sentence
from talking.corpus.visemes import mouth_parameters
from talking.data import SPLITS, load_index, quantize_pcm16, write_clip, write_index
from talking.errors import TalkingError
from talking.speech import Voice, synthesize

# espeak-ng languages and how often speakers use them; each has a word list in text.WORDS.
LANGUAGES = {"en-us": 0.30, "en": 0.12, "en-gb-scotland": 0.04, "en-gb-x-rp": 0.04, "en-029": 0.03,
             "de": 0.10, "fr": 0.10, "es": 0.09, "it": 0.07, "pt-br": 0.06, "nl": 0.05}
# espeak-ng voice variants (espeak-ng-data/voices/!v) that sound like people, by gender.
FEMININE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty",
                     "belinda", "linda", "steph", "steph2", "steph3", "grandma")
MASCULINE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "adam", "Alex", "Andy", "antonio",
                      "benjamin", "boris", "caleb", "david", "Denis", "Diogo", "ed", "edward", "edward2",
                      "Gene", "Gene2", "gustave", "Henrique", "Hugo", "iven", "iven2", "iven3", "iven4",
                      "Jacky", "john", "kaukovalta", "Lee", "marcelo", "Marco", "Mario", "max", "Michael",
                      "michel", "miguel", "Mike", "Nguyen", "pablo", "paul", "pedro", "quincy", "rob",
                      "robert", "Storm", "zac", "grandpa", "klatt", "klatt2", "klatt3", "klatt4", "norbert",
                      "sandro", "shelby", "travis", "victor")


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """What synthetic corpus to build."""

    out: str = dataclasses.field(metadata={"help": "corpus folder to write (corpus.json, clips/)"})
    clips: int = dataclasses.field(default=1000, metadata={"help": "number of clips"})
    resolution: int = dataclasses.field(default=RESOLUTION, metadata={"help": "side of the square frames"})
    seed: int = dataclasses.field(default=0, metadata={"help": "the same seed builds the same corpus"})
    clips_per_speaker: int = dataclasses.field(default=4, metadata={"help": "sentences per speaker"})
    val_fraction: float = dataclasses.field(default=0.05,
                                            metadata={"help": "share of speakers for validation"})
    test_fraction: float = dataclasses.field(default=0.05,
                                             metadata={"help": "share of speakers for testing"})
    workers: int = dataclasses.field(default=0, metadata={"help": "worker processes (0: one per core)"})

    def __post_init__(self) -> None:
        if self.clips < 3:
            raise ValueError(f"need at least 3 clips (one per split), got {self.clips}")
        if self.clips_per_speaker < 1:
            raise ValueError(f"clips_per_speaker must be at least 1, got {self.clips_per_speaker}")
        if min(self.val_fraction, self.test_fraction) <= 0 or self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction and test_fraction must be positive and sum to less than 1")
        if not 32 <= self.resolution <= 1024:
            raise ValueError(f"resolution must be 32-1024 pixels, got {self.resolution}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0: one per core), got {self.workers}")


@dataclasses.dataclass(frozen=True)
class ClipPlan:
    """Everything that decides one clip, besides the corpus seed and resolution."""

    index: int
    id: str
    split: str
    speaker: int
    feminine: bool
    voice: Voice
    text: str


def plan_corpus(config: CorpusConfig) -> list[ClipPlan]:
    """Speakers, voices, splits and sentences of every clip; depends only on the config."""
    rng = np.random.default_rng([config.seed, 0])
    num_speakers = max(3, math.ceil(config.clips / config.clips_per_speaker))
    speaker_split = _deal(rng, num_speakers, config)
    variants = {feminine: dict(zip(SPLITS, _share(rng, names, config), strict=True))
                for feminine, names in ((True, FEMININE_VARIANTS), (False, MASCULINE_VARIANTS))}
    languages, weights = list(LANGUAGES), np.array(list(LANGUAGES.values()))
    speakers = []
    for speaker in range(num_speakers):
        feminine = bool(rng.uniform() < 0.5)
        split = speaker_split[speaker]
        voice = Voice(language=languages[rng.choice(len(languages), p=weights / weights.sum())],
                      variant=str(rng.choice(variants[feminine][split])),
                      rate=int(rng.integers(135, 206)), pitch=int(rng.integers(25, 76)),
                      pitch_range=int(rng.integers(30, 81)))
        speakers.append((split, feminine, voice))
    plans, texts = [], set()
    for index in range(config.clips):
        speaker = index % num_speakers
        split, feminine, voice = speakers[speaker]
        text = None
        english = voice.language.startswith("en")
        while text is None or text in texts:
            grid = english and rng.uniform() < 0.5
            text = grid_sentence(rng) if grid else free_sentence(rng, voice.language)
        texts.add(text)
        rate = int(np.clip(voice.rate + rng.integers(-10, 11), 80, 450))
        clip_voice = dataclasses.replace(voice, rate=rate)
        plans.append(ClipPlan(index=index, id=f"spk{speaker:04d}-{index // num_speakers:02d}", split=split,
                              speaker=speaker, feminine=feminine, voice=clip_voice, text=text))
    return plans


def speaker_style(config: CorpusConfig, plan: ClipPlan) -> FaceStyle:
    """The face of ``plan``'s speaker (the same in all their clips)."""
    return sample_face_style(np.random.default_rng([config.seed, 1, plan.speaker]), plan.feminine)


def build_clip(plan: ClipPlan, config: CorpusConfig) -> Path:
    """Synthesise, animate, render and write one clip; returns its folder."""
    rng = np.random.default_rng([config.seed, 2, plan.index])
    style = speaker_style(config, plan)
    speech = synthesize(plan.text, plan.voice)
    # 1. audio: level, silence around the speech, a noise floor
    lead, trail = (int(rng.uniform(0.1, 0.6) * SAMPLE_RATE) for _ in range(2))
    level = rng.uniform(0.3, 0.9) / max(float(np.abs(speech.audio).max()), 1e-6)
    utterance = dataclasses.replace(speech, audio=speech.audio * level).padded(lead, trail)
    audio = utterance.audio
    if rng.uniform() < 0.7:
        snr_db = rng.uniform(25, 50)
        noise = np.sqrt(np.mean((speech.audio * level) ** 2)) * 10 ** (-snr_db / 20)
        audio = audio + rng.normal(0, noise, len(audio))
    audio = quantize_pcm16(audio)
    features = extract_features(audio)
    num_frames = features.num_video_frames
    phonemes = utterance.phonemes
    # 2. motion: mouth from the phonemes, the rest of the face from its own life and the speech
    mouth = mouth_parameters(phonemes, num_frames, FPS, style.articulation)
    motion = face_motion(rng, features, blink_rate=rng.uniform(0.2, 0.5),
                         expressiveness=style.expressiveness, head_amount=style.head_motion)
    # 3. pixels
    frames, landmarks = render_clip(style, sample_scene_style(rng), mouth, motion, config.resolution)
    truth = {
        "mouth": mouth, "mouth_parameters": np.array(MOUTH_PARAMETERS),
        "eye_openness": motion.eye_openness, "brow_raise": motion.brow_raise, "gaze": motion.gaze,
        "head_pose": motion.head_pose, "head_pose_axes": np.array(HEAD_POSE_AXES),
        "head_offset": motion.head_offset, "head_offset_axes": np.array(HEAD_OFFSET_AXES),
        "phonemes": np.array([p.symbol for p in phonemes]),
        "phoneme_start": np.array([p.start for p in phonemes]),
        "phoneme_end": np.array([p.end for p in phonemes]),
    }
    meta = {"id": plan.id, "source": "synthetic", "identity": f"spk{plan.speaker:04d}",
            "voice": plan.voice.name, "voice_settings": dataclasses.asdict(plan.voice),
            "language": plan.voice.language, "text": plan.text, "speech_start": lead / SAMPLE_RATE,
            "speech_end": (lead + len(speech.audio)) / SAMPLE_RATE}
    return write_clip(Path(config.out) / "clips" / plan.id, frames, audio, meta, landmarks=landmarks,
                      truth=truth, features=features)


def build_corpus(config: CorpusConfig) -> dict[str, list[str]]:
    """Plan and build the corpus at ``config.out`` (resuming a partial one); returns the splits."""
    from tqdm import tqdm

    out = Path(config.out)
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("out", "workers")}
    if (out / "corpus.json").is_file() and load_index(out).get("config") != settings:
        raise TalkingError(f"{out} already holds a corpus built with other settings "
                           f"({load_index(out).get('config')}); choose another --out.")
    plans = plan_corpus(config)
    splits = {split: [p.id for p in plans if p.split == split] for split in SPLITS}
    write_index(out, splits, {"source": "synthetic", "config": settings, "fps": FPS,
                              "sample_rate": SAMPLE_RATE, "resolution": config.resolution,
                              "mouth_parameters": list(MOUTH_PARAMETERS)})
    todo = [p for p in plans if not (out / "clips" / p.id / "meta.json").is_file()]
    workers = min(config.workers or os.cpu_count() or 1, max(len(todo), 1))
    with contextlib.ExitStack() as stack:
        done = (build_clip(plan, config) for plan in todo)
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(
                workers, initializer=_init_worker, mp_context=multiprocessing.get_context("spawn")))
            done = pool.map(build_clip, todo, [config] * len(todo))
        for _ in tqdm(done, total=len(todo), desc="corpus", unit="clip", disable=not todo):
            pass
    print(f"{config.clips} clips in {out}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    return splits


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool already uses every core


def _deal(rng: np.random.Generator, count: int, config: CorpusConfig) -> list[str]:
    """A split for each of ``count`` speakers, at least one speaker per split."""
    val = max(1, round(config.val_fraction * count))
    test = max(1, round(config.test_fraction * count))
    labels = ["val"] * val + ["test"] * test + ["train"] * (count - val - test)
    return [labels[i] for i in rng.permutation(count)]


def _share(rng: np.random.Generator, names: tuple[str, ...], config: CorpusConfig) -> list[list[str]]:
    """``names`` shuffled and cut into train / val / test shares, at least one each."""
    names = [names[i] for i in rng.permutation(len(names))]
    val = max(1, round(config.val_fraction * len(names)))
    test = max(1, round(config.test_fraction * len(names)))
    return [names[val + test:], names[:val], names[val:val + test]]
