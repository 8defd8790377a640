"""Speech augmentation: make the corpus's espeak-ng voices sound like many real recordings.

The motion predictor learns from synthetic speech but must follow real voices through real
microphones (DESIGN section 5: a mel network trained on espeak-ng alone followed real speech no
better than its loudness). Each augmented copy of a clip draws, independently:

- tempo and pitch: the audio resampled by a factor in [0.85, 1.15] (a faster, higher or slower,
  lower voice); the caller stretches the clip's motion targets by the same factor;
- timbre: two peaking filters of +-9 dB at random frequencies in the formant range and a spectral
  tilt (another voice, another microphone);
- room: reverberation by a synthetic impulse response (decaying noise, RT60 0.1-0.7 s);
- channel: telephone band (300-3400 Hz) or 8-bit mu-law, sometimes;
- background: white or pink noise at 5-40 dB SNR, or, at 0-25 dB, music (procedural chords, as a
  film score or a song under the voice) or another voice (babble); real recordings have them,
  and a predictor trained without them stopped closing the lips on /p b m/ under music (held-out
  natural voices: 82 % closed clean, 9 % with music 10 dB below the voice);
- level: a gain of -20 to +6 dB (clipped like a real recorder).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from talking.config import SAMPLE_RATE


def change_rate(wav: np.ndarray, factor: float) -> np.ndarray:
    """``wav`` played ``factor`` times faster (and higher): (S,) -> (round(S / factor),)."""
    up, down = 100, max(1, round(100 * factor))
    return signal.resample_poly(wav, up, down).astype(np.float32)


def peaking_filter(frequency: float, gain_db: float, q: float, rate: int = SAMPLE_RATE):
    """Biquad (b, a) of a peaking equaliser (RBJ cookbook)."""
    amplitude = 10 ** (gain_db / 40)
    omega = 2 * np.pi * frequency / rate
    alpha = np.sin(omega) / (2 * q)
    b = np.array([1 + alpha * amplitude, -2 * np.cos(omega), 1 - alpha * amplitude])
    a = np.array([1 + alpha / amplitude, -2 * np.cos(omega), 1 - alpha / amplitude])
    return b / a[0], a / a[0]


def room_response(rt60: float, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room impulse response: the direct sound, then noise decaying 60 dB in ``rt60``."""
    length = int(rt60 * rate)
    decay = np.exp(-6.9 * np.arange(length) / length)
    response = rng.standard_normal(length) * decay * 0.3
    response[0] = 1.0
    return response / np.sqrt((response ** 2).sum())


def unit_rms(samples: np.ndarray) -> np.ndarray:
    """``samples`` scaled to a root mean square of 1 (silence stays silence)."""
    return samples / max(np.sqrt((samples ** 2).mean()), 1e-9)


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a 1/f power spectrum, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    return unit_rms(np.fft.irfft(spectrum, n=length))


def background_music(length: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(length,) procedural music, unit RMS: a chord of three harmonic tones (a random root, the
    notes 0-12 semitones above it) struck every 0.25-1.2 s and decaying, a bass line and a score's
    sustained chords alike."""
    out = np.zeros(length)
    start = 0
    while start < length:
        time = np.arange(min(int(rng.uniform(0.25, 1.2) * rate), length - start)) / rate
        envelope = np.minimum(1.0, time / 0.02) * np.exp(-time * rng.uniform(0.5, 4.0))
        root = rng.uniform(40, 72)  # MIDI note: 82-523 Hz
        for step in rng.choice([0, 3, 4, 7, 10, 12], size=3, replace=False):
            pitch = 440.0 * 2 ** ((root + step - 69) / 12)
            rolloff = rng.uniform(1.0, 2.0)
            for harmonic in range(1, 6):
                if pitch * harmonic < rate / 2.5:
                    phase = rng.uniform(0, 2 * np.pi)
                    out[start:start + len(time)] += (np.sin(2 * np.pi * pitch * harmonic * time + phase)
                                                     * envelope / harmonic ** rolloff)
        start += len(time)
    return unit_rms(out)


def _background(length: int, rng: np.random.Generator, rate: int,
                voice: np.ndarray | None) -> tuple[np.ndarray, float]:
    """(unit-RMS background (length,), its SNR in dB): noise, music or another ``voice``."""
    kind = rng.uniform()
    if kind < 0.25 and voice is not None and np.any(voice):
        # from a random point of the voice, looped as long as needed
        babble = np.resize(np.roll(voice, -int(rng.integers(0, len(voice)))), length)
        return unit_rms(babble), rng.uniform(0, 25)
    if kind < 0.5:
        return background_music(length, rng, rate), rng.uniform(0, 25)
    noise = pink_noise(length, rng) if kind < 0.75 else rng.standard_normal(length)
    return noise, rng.uniform(5, 40)


def augment_speech(wav: np.ndarray, rng: np.random.Generator, rate: int = SAMPLE_RATE,
                   voice: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """A randomly altered copy of ``wav`` (S,) float32 and the tempo factor it was played at;
    ``voice`` (S',), another speaker's audio, may be mixed under it as babble."""
    factor = round(float(rng.uniform(0.85, 1.15)), 2)  # change_rate plays it in steps of 0.01
    out = change_rate(wav, factor).astype(np.float64)
    for _ in range(2):
        b, a = peaking_filter(rng.uniform(300, 3500), rng.uniform(-9, 9), rng.uniform(0.7, 2.5), rate)
        out = signal.lfilter(b, a, out)
    tilt = rng.uniform(-0.5, 0.5)  # one-pole pre-emphasis (> 0) or de-emphasis (< 0)
    out = signal.lfilter([1, -tilt], [1], out) if tilt > 0 else signal.lfilter([1 + tilt], [1, tilt], out)
    if rng.uniform() < 0.5:
        out = signal.fftconvolve(out, room_response(rng.uniform(0.1, 0.7), rng, rate))[: len(out)]
    channel = rng.uniform()
    if channel < 0.15:
        sos = signal.butter(4, (300, 3400), btype="bandpass", fs=rate, output="sos")
        out = signal.sosfilt(sos, out)
    elif channel < 0.25:
        peak = max(np.abs(out).max(), 1e-9)
        companded = np.sign(out / peak) * np.log1p(255 * np.abs(out / peak)) / np.log(256)
        quantised = np.round(companded * 127) / 127  # 8-bit mu-law
        out = peak * np.sign(quantised) * np.expm1(np.abs(quantised) * np.log(256)) / 255
    power = np.sqrt((out ** 2).mean())
    if power > 0:
        background, snr = _background(len(out), rng, rate, voice)
        out = out + background * power / 10 ** (snr / 20)
    level = 10 ** (rng.uniform(-20, 6) / 20) * 0.1 / max(np.sqrt((out ** 2).mean()), 1e-9)
    return np.clip(out * level, -1, 1).astype(np.float32), factor
