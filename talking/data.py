"""The clip format on disk, one for synthetic and real data alike.

A corpus is a folder::

    corpus.json            {"splits": {"train": [ids], "val": [ids], "test": [ids]}, ...info}
    clips/<id>/
        frames.npy         (N, H, W, 3) uint8 RGB, aligned face crops; read memory-mapped
        audio.wav          22050 Hz mono PCM16, exactly the N frames' duration rounded up to
                           whole frames (N = ceil(seconds * fps))
        features.npz       the audio front-end's features of audio.wav (talking.audio.AudioFeatures)
        landmarks.npy      (N, 68, 2) float32 iBUG landmarks in pixels, when known
        truth.npz          ground truth of synthetic clips, when known: per-frame arrays (N, ...)
                           such as mouth parameters, eye openness, head pose, and phoneme timing
        meta.json          id, source, identity, voice, text, fps, sample_rate, resolution,
                           num_frames, duration (+ anything the writer adds)

Frames are stored raw so that training reads any frame without decoding (np.load with
``mmap_mode="r"``): 128 x 128 costs 1.2 MB per second of video. A clip is written to a temporary
folder and renamed into place, so a folder under ``clips/`` is always a complete clip, and an
interrupted build resumes by skipping the clips that exist.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from talking.audio import AudioFeatures, extract_features, num_video_frames
from talking.config import AudioConfig
from talking.errors import TalkingError

SPLITS = ("train", "val", "test")
INDEX_FILE = "corpus.json"


def quantize_pcm16(audio: np.ndarray) -> np.ndarray:
    """``audio`` (S,) float rounded to what PCM16 stores, as float32: what a clip reads back."""
    return (np.round(np.clip(audio, -1.0, 32767 / 32768) * 32768) / 32768).astype(np.float32)


def write_clip(
    directory: str | os.PathLike,
    frames: np.ndarray,
    audio: np.ndarray,
    meta: Mapping,
    landmarks: np.ndarray | None = None,
    truth: Mapping[str, np.ndarray] | None = None,
    audio_config: AudioConfig = AudioConfig(),
    features: AudioFeatures | None = None,
) -> Path:
    """Write one clip to ``directory`` atomically and return its path.

    Args:
        frames: (N, H, W, 3) uint8 RGB, with N = ``num_video_frames(len(audio))``.
        audio: (S,) float mono at ``audio_config.sample_rate``; stored as PCM16.
        meta: at least ``id``, ``source``, ``identity``, ``voice``, ``text``; ``fps``,
            ``sample_rate``, ``resolution``, ``num_frames`` and ``duration`` are filled in (and
            must agree when given).
        landmarks: (N, 68, 2) float pixels, or None.
        truth: named arrays of ground truth, or None.
        features: the features of the PCM16-rounded ``audio`` when the caller has them already;
            computed otherwise.
    """
    directory = Path(directory)
    frames = np.asarray(frames)
    audio = quantize_pcm16(np.asarray(audio, dtype=np.float32))
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    num_frames = num_video_frames(len(audio), audio_config)
    if len(frames) != num_frames:
        raise ValueError(f"{len(audio)} audio samples make {num_frames} frames at {audio_config.fps} fps, "
                         f"got {len(frames)} frames")
    if landmarks is not None and np.shape(landmarks) != (num_frames, 68, 2):
        raise ValueError(f"landmarks must be ({num_frames}, 68, 2), got {np.shape(landmarks)}")
    computed = {"fps": audio_config.fps, "sample_rate": audio_config.sample_rate,
                "resolution": int(frames.shape[1]), "num_frames": num_frames,
                "duration": len(audio) / audio_config.sample_rate}
    for key, value in computed.items():
        if key in meta and not np.isclose(meta[key], value):
            raise ValueError(f"meta[{key!r}] = {meta[key]} disagrees with the data ({value})")
    if features is None:
        features = extract_features(audio, audio_config)
    elif features.num_video_frames != num_frames:
        raise ValueError(f"features cover {features.num_video_frames} frames, the clip has {num_frames}")

    import soundfile

    temporary = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    np.save(temporary / "frames.npy", np.ascontiguousarray(frames))
    soundfile.write(temporary / "audio.wav", np.round(audio * 32768).astype(np.int16),
                    audio_config.sample_rate, subtype="PCM_16")
    features.save(temporary / "features.npz")
    if landmarks is not None:
        np.save(temporary / "landmarks.npy", np.asarray(landmarks, dtype=np.float32))
    if truth is not None:
        np.savez(temporary / "truth.npz", **{k: np.asarray(v) for k, v in truth.items()})
    (temporary / "meta.json").write_text(json.dumps({**meta, **computed}, indent=2, sort_keys=True,
                                                    ensure_ascii=False) + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(temporary, directory)
    return directory


class Clip:
    """A clip on disk; every part is read when first asked for.

    ``frames`` is memory-mapped (and not pickled: a Clip sent to a DataLoader worker maps the file
    again there).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        if not (self.directory / "meta.json").is_file():
            raise TalkingError(f"{self.directory} is not a clip (no meta.json). If a corpus build was "
                               "interrupted, run the same command again to finish it.")

    def __repr__(self) -> str:
        return f"Clip({str(self.directory)!r})"

    def __len__(self) -> int:
        return self.num_frames

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "frames"}

    @functools.cached_property
    def meta(self) -> dict:
        return json.loads((self.directory / "meta.json").read_text())

    @property
    def id(self) -> str:
        return self.meta["id"]

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])

    @property
    def fps(self) -> int:
        return int(self.meta["fps"])

    @functools.cached_property
    def frames(self) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB, memory-mapped."""
        return np.load(self.directory / "frames.npy", mmap_mode="r")

    @property
    def audio(self) -> np.ndarray:
        """(S,) float32 mono at the clip's sample rate."""
        import soundfile

        audio, _ = soundfile.read(self.directory / "audio.wav", dtype="float32")
        return audio

    @functools.cached_property
    def features(self) -> AudioFeatures:
        return AudioFeatures.load(self.directory / "features.npz")

    @functools.cached_property
    def landmarks(self) -> np.ndarray | None:
        """(N, 68, 2) float32 pixels, or None."""
        path = self.directory / "landmarks.npy"
        return np.load(path) if path.is_file() else None

    @functools.cached_property
    def truth(self) -> dict[str, np.ndarray] | None:
        path = self.directory / "truth.npz"
        if not path.is_file():
            return None
        with np.load(path) as data:
            return {key: data[key] for key in data.files}


def write_index(root: str | os.PathLike, splits: Mapping[str, list[str]], info: Mapping) -> Path:
    """Write ``root/corpus.json``: ``{"splits": splits, **info}`` (atomically)."""
    if set(splits) != set(SPLITS):
        raise ValueError(f"splits must be exactly {SPLITS}, got {sorted(splits)}")
    path = Path(root) / INDEX_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp-{os.getpid()}")
    temporary.write_text(json.dumps({"splits": {k: list(splits[k]) for k in SPLITS}, **info},
                                    indent=2, ensure_ascii=False) + "\n")
    os.replace(temporary, path)
    return path


def load_index(root: str | os.PathLike) -> dict:
    """``root/corpus.json`` as a dict with ``"splits"``; raises :class:`TalkingError` when missing."""
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        raise TalkingError(f"{root} is not a corpus (no {INDEX_FILE}); build one with "
                           "`python -m talking corpus` or `python -m talking prepare`.")
    index = json.loads(path.read_text())
    if not isinstance(index.get("splits"), dict):
        raise TalkingError(f"{path} is damaged: it has no splits.")
    return index


def load_split(root: str | os.PathLike, split: str) -> list[Clip]:
    """The clips of ``split`` ("train", "val" or "test") of the corpus at ``root``."""
    index = load_index(root)
    if split not in index["splits"]:
        raise TalkingError(f"{root} has no split {split!r}; it has {sorted(index['splits'])}.")
    return [Clip(Path(root) / "clips" / clip_id) for clip_id in index["splits"][split]]
