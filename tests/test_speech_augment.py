import numpy as np
import pytest

from talking.training.speech_augment import augment_speech, background_music

RATE = 22050


def _spectrum(wav: np.ndarray) -> np.ndarray:
    return np.abs(np.fft.rfft(wav * np.hanning(len(wav))))


def test_background_music_is_tonal_and_changes_chords():
    rng = np.random.default_rng(0)
    music = background_music(3 * RATE, rng)
    assert music.shape == (3 * RATE,) and np.sqrt((music ** 2).mean()) == pytest.approx(1.0)
    # harmonic tones: a few spectral peaks hold most of the energy of a short stretch (noise
    # spreads it over every bin)
    stretch = _spectrum(music[:4096]) ** 2
    assert np.sort(stretch)[-60:].sum() / stretch.sum() > 0.5
    noise = _spectrum(rng.standard_normal(4096)) ** 2
    assert np.sort(noise)[-60:].sum() / noise.sum() < 0.2
    # the chords change over the clip: the strongest pitches of its first and last 0.4 s differ
    first, last = (np.argsort(_spectrum(music[s:s + 8820]))[-3:] for s in (0, len(music) - 8820))
    assert set(first) != set(last)


def test_augmented_copies_are_deterministic_retimed_and_level_bounded():
    t = np.arange(RATE) / RATE
    voice = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    other = (0.3 * np.sin(2 * np.pi * 230 * t)).astype(np.float32)
    copies = [augment_speech(voice, np.random.default_rng(seed), voice=other) for seed in range(12)]
    again = augment_speech(voice, np.random.default_rng(3), voice=other)
    assert np.array_equal(again[0], copies[3][0]) and again[1] == copies[3][1]
    for wav, factor in copies:
        assert 0.85 <= factor <= 1.15 and abs(len(wav) - len(voice) / factor) <= 2
        assert wav.dtype == np.float32 and np.abs(wav).max() <= 1.0 and np.isfinite(wav).all()
    # the backgrounds differ between copies: in the voice's silent half-periods, some copies are
    # near silence (quiet noise), others carry a loud background (music, babble, strong noise)
    quiet = [np.sqrt((w[int(0.2 * RATE / f):int(0.3 * RATE / f)] ** 2).mean())
             / np.sqrt((w ** 2).mean()) for w, f in copies]
    assert min(quiet) < 0.1 and max(quiet) > 0.3
