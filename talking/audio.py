"""Speech in, the paper's audio features out, aligned to video frames (paper 4.3.3-4.3.5).

- :func:`load_audio` turns any common speech file (or a numpy array) into mono float32 at 22050 Hz.
  libsndfile reads wav (8-bit u-law to 32-bit float), flac and ogg/opus; mp3 and anything else
  (m4a, aac, webm, video containers) is decoded by the ffmpeg binary that imageio-ffmpeg ships.
  Either way the speech is exactly what ffmpeg decodes, to the sample: libsndfile's mp3 length
  is an estimate (from the file size, the ID3 tags or a Xing header) that its decoder does not
  keep to, so mp3 goes to ffmpeg, and a file shorter than its header says ends where it ends.
- :func:`extract_features` computes, at the mel-frame rate (hop 256 = 11.6 ms):
  * ``mel``: log mel spectrogram, frame 1024, hop 256, ``log(max(mel, 1e-5))``;
  * ``pitch``: PyWorld F0 (dio + stonemask by default, harvest optionally), log-quantised into
    bins 1..255 between ``f0_min`` and ``f0_max``; bin 0 means unvoiced;
  * ``energy``: the L2 norm of each STFT magnitude frame (Eq. 8), normalised as ``log(1 + norm)``
    so that it is loudness-compressed like the mel and exactly zero for digital silence.
- :meth:`AudioFeatures.windows` cuts, for every video frame ``t`` at 25 fps, a window of ``window``
  mel frames centred on the frame's mid-time ``(t + 0.5) / fps``; positions before the start or
  after the end read as silence. A clip of ``S`` samples has ``ceil(S * fps / sr)`` video frames.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talking.config import AudioConfig
from talking.errors import TalkingError

LOG_MEL_FLOOR = float(np.log(1e-5))
# Features are computed this many mel frames (23.8 s) at a time; see extract_features.
CHUNK_FRAMES = 2048
# Audio on either side of a chunk that PyWorld sees (1.5 s); see f0_contour.
F0_CONTEXT_FRAMES = 128
_MAX_INPUT_RATE = 1_000_000
# Files are decoded no further than this past the length limit, so that a long one (a 25 MB
# upload holds hours of compressed speech) takes no more memory or time than an allowed one.
_READ_PAST_LIMIT = 2.0  # seconds


def num_video_frames(num_samples: int, config: AudioConfig = AudioConfig()) -> int:
    """Video frames for ``num_samples`` of audio: ``ceil(duration * fps)``, in exact integers."""
    return -(-num_samples * config.fps // config.sample_rate)


def load_audio(
    source: str | os.PathLike | np.ndarray,
    sample_rate: int | None = None,
    config: AudioConfig = AudioConfig(),
) -> np.ndarray:
    """Load speech as mono float32 at ``config.sample_rate``: (S,).

    ``source`` is a file path or an array (S,) / (S, C) / (C, S) with its ``sample_rate``.
    Raises :class:`TalkingError` for a missing, empty, unreadable, non-finite, too short or too
    long input. Silence is valid audio.
    """
    check_length_limit(config)
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise TalkingError("An audio array needs its sample rate (sample_rate=...).")
        try:
            rate = int(sample_rate)
        except (TypeError, ValueError, OverflowError) as error:
            raise TalkingError(
                f"The audio array's sample rate {sample_rate!r} is not a number of Hz.") from error
        wav, name = _from_array(source), "the audio array"
        _check_rate(rate, name)
    else:
        limit = config.max_seconds + _READ_PAST_LIMIT
        wav, rate, name = *_read_file(Path(source), limit), Path(source).name
    if not np.isfinite(wav).all():
        raise TalkingError(f"{name}: the audio contains NaN or infinite samples.")
    duration = len(wav) / rate
    if duration < config.min_seconds:
        raise TalkingError(
            f"{name}: the audio is too short ({duration:.2f} s); at least {config.min_seconds} s "
            "of speech is needed."
        )
    if duration > config.max_seconds:
        length = (f"{duration:.0f} s" if duration < config.max_seconds + _READ_PAST_LIMIT
                  else f"more than {config.max_seconds + 1:.0f} s")
        raise TalkingError(
            f"{name}: the audio is {length} long; the limit is {config.max_seconds:.0f} s. "
            "Trim it or raise the limit."
        )
    if rate != config.sample_rate:
        import soxr

        wav = soxr.resample(wav, rate, config.sample_rate, quality="HQ")
    return np.ascontiguousarray(wav, dtype=np.float32)


def check_length_limit(config: AudioConfig) -> None:
    """:class:`TalkingError` unless ``config.max_seconds`` is a finite number of seconds that
    leaves room for ``config.min_seconds`` of speech."""
    if not (math.isfinite(config.max_seconds) and config.max_seconds >= config.min_seconds):
        raise TalkingError(f"max_seconds (the longest speech accepted) must be a number of seconds "
                           f"of at least {config.min_seconds}, got {config.max_seconds}.")


def _from_array(array: np.ndarray) -> np.ndarray:
    """(S,) / (S, C) / (C, S) array of integers or floats -> mono float32, integers scaled to
    [-1, 1]."""
    if array.ndim not in (1, 2):
        raise TalkingError(f"An audio array must be 1-D or 2-D, got shape {array.shape}.")
    if array.size == 0:
        raise TalkingError("The audio array is empty.")
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float64) / _int_scale(array.dtype)
    elif not np.issubdtype(array.dtype, np.floating):
        raise TalkingError(f"An audio array must be numeric, got dtype {array.dtype}.")
    if array.ndim == 2:
        array = array.mean(axis=0 if array.shape[0] < array.shape[1] else 1)
    return array.astype(np.float32)


def _int_scale(dtype: np.dtype) -> float:
    info = np.iinfo(dtype)
    return float(max(abs(info.min), info.max))


def _check_rate(rate: int, name: str) -> None:
    if not 1000 <= rate <= _MAX_INPUT_RATE:
        raise TalkingError(f"{name}: sample rate {rate} Hz is not a plausible audio rate.")


def _read_file(path: Path, limit_seconds: float) -> tuple[np.ndarray, int]:
    """The first ``limit_seconds`` of the file ``path``, mono, and its sample rate."""
    if not path.is_file():
        raise TalkingError(f"Audio file not found: {path}")
    if path.stat().st_size == 0:
        raise TalkingError(f"{path.name}: the audio file is empty.")
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as file:
            if not _looks_like_mpeg(path) and file.format != "MP3":
                _check_rate(file.samplerate, path.name)
                return _read_blocks(file, int(limit_seconds * file.samplerate)), file.samplerate
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError):
        pass
    return _decode_with_ffmpeg(path, limit_seconds), AudioConfig().sample_rate


def _looks_like_mpeg(path: Path) -> bool:
    """Whether ``path`` starts as an mp3 does (ID3v2 tags or an MPEG frame sync), so that it goes
    to ffmpeg without libsndfile's mp3 decoder printing warnings about its length."""
    with path.open("rb") as file:
        head = file.read(2)
    return head == b"ID" or (len(head) == 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _read_blocks(file, limit: int, block: int = 1 << 16) -> np.ndarray:
    """At most ``limit`` frames of the open ``soundfile.SoundFile``, mixed to mono block by block
    (memory does not grow with the channel count): (S,) float32. A block shorter than asked for
    is the file's true end, whatever length its header claimed."""
    mono: list[np.ndarray] = []
    while limit > 0:
        frames = file.read(min(block, limit), dtype="float32", always_2d=True)
        mono.append(frames.mean(axis=1))
        limit -= len(frames)
        if len(frames) < block:
            break
    return np.concatenate(mono) if mono else np.zeros(0, np.float32)


def _decode_with_ffmpeg(path: Path, limit_seconds: float) -> np.ndarray:
    """Decode the first ``limit_seconds`` of the first audio stream of any file ffmpeg
    understands to mono float32 at 22050 Hz."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path),
               "-map", "0:a:0", "-t", f"{limit_seconds:.3f}", "-f", "f32le", "-ac", "1",
               "-ar", str(AudioConfig().sample_rate), "-"]
    try:
        result = subprocess.run(command, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as error:
        raise TalkingError(f"{path.name}: decoding the audio took too long.") from error
    reason = result.stderr.decode(errors="replace").strip().splitlines()
    if result.returncode != 0 and any("matches no streams" in line for line in reason):
        raise TalkingError(f"{path.name}: the file has no audio track (is it a photo or a silent "
                           "video?); give a speech recording.")
    if result.returncode != 0 or not result.stdout:
        detail = f" ({reason[-1]})" if reason else ""
        raise TalkingError(f"{path.name}: cannot read audio from this file{detail}.")
    return np.frombuffer(result.stdout[: len(result.stdout) // 4 * 4], dtype=np.float32).copy()


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


@dataclass
class AudioWindows:
    """Per-video-frame feature windows: mel (N, W, n_mels) float32, pitch (N, W) int64,
    energy (N, W) float32, for N consecutive video frames."""

    mel: np.ndarray
    pitch: np.ndarray
    energy: np.ndarray

    def __len__(self) -> int:
        return len(self.mel)


@dataclass
class AudioFeatures:
    """Features at the mel-frame rate: mel (T, n_mels) float32 log-mel, pitch (T,) int64 bins
    (0 = unvoiced), energy (T,) float32; ``num_video_frames`` video frames cover the audio."""

    mel: np.ndarray
    pitch: np.ndarray
    energy: np.ndarray
    num_video_frames: int
    config: AudioConfig = AudioConfig()

    def windows(self, start: int = 0, stop: int | None = None) -> AudioWindows:
        """Windows for video frames ``[start, stop)``, each ``config.window`` mel frames long."""
        stop = self.num_video_frames if stop is None else min(stop, self.num_video_frames)
        index = frame_window_indices(np.arange(start, stop), self.config)  # (N, W)
        # Out-of-clip positions point at one appended silence frame.
        index = np.where((index >= 0) & (index < len(self.mel)), index, len(self.mel))
        mel = np.concatenate([self.mel, np.full((1, self.mel.shape[1]), LOG_MEL_FLOOR, np.float32)])
        pitch = np.concatenate([self.pitch, np.zeros(1, np.int64)])
        energy = np.concatenate([self.energy, np.zeros(1, np.float32)])
        return AudioWindows(mel=mel[index], pitch=pitch[index], energy=energy[index])

    def save(self, path: str | os.PathLike) -> None:
        np.savez(path, mel=self.mel, pitch=self.pitch.astype(np.uint8), energy=self.energy,
                 num_video_frames=self.num_video_frames, window=self.config.window,
                 fps=self.config.fps, sample_rate=self.config.sample_rate,
                 hop_length=self.config.hop_length)

    @classmethod
    def load(cls, path: str | os.PathLike, config: AudioConfig | None = None) -> AudioFeatures:
        with np.load(path) as data:
            stored = AudioConfig(window=int(data["window"]), fps=int(data["fps"]),
                                 sample_rate=int(data["sample_rate"]),
                                 hop_length=int(data["hop_length"]), n_mels=data["mel"].shape[1])
            return cls(mel=data["mel"].astype(np.float32), pitch=data["pitch"].astype(np.int64),
                       energy=data["energy"].astype(np.float32),
                       num_video_frames=int(data["num_video_frames"]), config=config or stored)


def frame_rms(wav: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """(N,) root mean square of the samples of each frame ``[t / fps, (t + 1) / fps)``."""
    edges = np.round(np.arange(num_frames + 1) * sample_rate / fps).astype(np.int64)
    squares = np.concatenate([[0.0], np.cumsum(np.asarray(wav, np.float64) ** 2)])
    edges = np.minimum(edges, len(wav))
    counts = np.maximum(np.diff(edges), 1)
    return np.sqrt((squares[edges[1:]] - squares[edges[:-1]]) / counts)


def video_frame_times(num_frames: int, fps: float) -> np.ndarray:
    """Mid-time of each video frame, ``(t + 0.5) / fps``: (N,) seconds. Frame ``t`` spans
    ``[t / fps, (t + 1) / fps)``; every audio<->video alignment in the project uses this."""
    return (np.arange(num_frames) + 0.5) / fps


def frame_window_indices(frames: np.ndarray, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """Mel-frame indices (N, W) of the window centred on each video frame's mid-time.

    Mel frame ``m`` is centred on sample ``m * hop``; video frame ``t`` spans
    ``[t / fps, (t + 1) / fps)``. Indices may fall outside the clip (the caller pads with silence).
    """
    mid_times = (np.asarray(frames, dtype=np.float64) + 0.5) / config.fps  # video_frame_times
    centre = mid_times * config.sample_rate / config.hop_length
    first = np.floor(centre).astype(np.int64) - config.window // 2 + 1
    return first[:, None] + np.arange(config.window)[None, :]


def extract_features(wav: np.ndarray, config: AudioConfig = AudioConfig(),
                     chunk_frames: int = CHUNK_FRAMES) -> AudioFeatures:
    """mel, pitch and energy of mono ``wav`` (S,) at ``config.sample_rate``.

    They are computed at most ``chunk_frames`` (>= 32) mel frames at a time, so memory stays
    flat however long the clip (the STFT of a whole 5-minute clip would take 660 MB). The chunk
    size changes nothing in mel and energy; see :func:`f0_contour` for the pitch.
    """
    if chunk_frames < 32:
        raise ValueError(f"chunk_frames must be at least 32, got {chunk_frames}")
    num_frames = 1 + len(wav) // config.hop_length
    mel = np.empty((num_frames, config.n_mels), np.float32)
    energy = np.empty(num_frames, np.float32)
    f0 = np.empty(num_frames)
    # Chunks of equal size, so none has fewer than 16 frames: OpenBLAS multiplies so few rows by
    # other routes, whose sums differ in the last bit.
    chunks = -(-num_frames // chunk_frames)
    bounds = [num_frames * i // chunks for i in range(chunks + 1)]
    for start, stop in itertools.pairwise(bounds):
        magnitude = stft_magnitude(wav, config, start, stop)  # (stop - start, n_fft // 2 + 1)
        mel[start:stop] = np.log(np.maximum(magnitude @ _mel_basis(config).T, 1e-5))
        energy[start:stop] = np.log1p(np.linalg.norm(magnitude, axis=1))
        f0[start:stop] = f0_contour(wav, config, start, stop)
    return AudioFeatures(mel=mel, pitch=quantize_pitch(f0, config), energy=energy,
                         num_video_frames=num_video_frames(len(wav), config), config=config)


def stft_magnitude(wav: np.ndarray, config: AudioConfig = AudioConfig(), start: int = 0,
                   stop: int | None = None) -> np.ndarray:
    """|STFT| with a Hann window of mel frames ``[start, stop)`` (default: all T = 1 + S // hop),
    frame ``m`` centred on sample ``m * hop``, zero padded beyond the clip: (stop - start,
    n_fft//2 + 1)."""
    half, hop = config.n_fft // 2, config.hop_length
    stop = 1 + len(wav) // hop if stop is None else min(stop, 1 + len(wav) // hop)
    if stop <= start:
        return np.zeros((0, half + 1), np.float32)
    first, last = start * hop - half, (stop - 1) * hop + half  # samples [first, last) are read
    segment = np.asarray(wav[max(first, 0): max(min(last, len(wav)), 0)], dtype=np.float32)
    segment = np.pad(segment, (max(-first, 0), max(last - len(wav), 0)))
    frames = np.lib.stride_tricks.sliding_window_view(segment, config.n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * _hann(config.n_fft), axis=1)).astype(np.float32)


def f0_contour(wav: np.ndarray, config: AudioConfig = AudioConfig(), start: int = 0,
               stop: int | None = None) -> np.ndarray:
    """PyWorld F0 in Hz of mel frames ``[start, stop)`` (default: all), 0 where unvoiced:
    (stop - start,) float64.

    PyWorld analyses the frames with ``F0_CONTEXT_FRAMES`` of audio on either side: dio filters
    the signal and smooths its contour over neighbouring frames, and with that much context the
    F0 of a part of a speech clip is that of the whole clip, while the memory PyWorld takes
    (1 MB a second) follows the part's length.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyworld 0.3.5 imports pkg_resources
        import pyworld

    hop = config.hop_length
    stop = 1 + len(wav) // hop if stop is None else stop
    first = max(start - F0_CONTEXT_FRAMES, 0)
    x = np.asarray(wav[first * hop: (stop + F0_CONTEXT_FRAMES) * hop], dtype=np.float64)
    period_ms = hop / config.sample_rate * 1000.0
    kwargs = dict(f0_floor=config.f0_min, f0_ceil=config.f0_max, frame_period=period_ms)
    if config.f0_method == "harvest":
        f0, times = pyworld.harvest(x, config.sample_rate, **kwargs)
    else:
        f0, times = pyworld.dio(x, config.sample_rate, speed=config.dio_speed, **kwargs)
        f0 = pyworld.stonemask(x, f0, times, config.sample_rate)
    part = f0[start - first: stop - first]  # frame j of x is frame first + j of the clip
    out = np.zeros(max(stop - start, 0))
    out[: len(part)] = part
    return out


def quantize_pitch(f0: np.ndarray, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """Hz -> bins (T,) int64: 0 = unvoiced, 1..bins-1 log-spaced over [f0_min, f0_max]."""
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    lo, hi = np.log(config.f0_min), np.log(config.f0_max)
    position = (np.log(np.where(voiced, f0, config.f0_min)) - lo) / (hi - lo)
    bins = 1 + np.rint(np.clip(position, 0.0, 1.0) * (config.pitch_bins - 2))
    return np.where(voiced, bins, 0).astype(np.int64)


def pitch_bins_to_hz(bins: np.ndarray, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """Inverse of :func:`quantize_pitch` (bin centres in Hz; 0 for unvoiced)."""
    bins = np.asarray(bins)
    lo, hi = np.log(config.f0_min), np.log(config.f0_max)
    hz = np.exp(lo + (bins - 1) / (config.pitch_bins - 2) * (hi - lo))
    return np.where(bins > 0, hz, 0.0)


def one_hot_pitch(bins: np.ndarray, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """Pitch bins (...,) -> one-hot (..., pitch_bins) float32, as the paper feeds it."""
    return np.eye(config.pitch_bins, dtype=np.float32)[np.asarray(bins)]


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_basis(config: AudioConfig) -> np.ndarray:
    from librosa.filters import mel

    return mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
               fmin=config.f_min, fmax=config.f_max).astype(np.float32)
