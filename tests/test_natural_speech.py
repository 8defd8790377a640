"""Natural-voice speech (Kokoro) with phoneme timings from Kokoro's own durations."""

import json

import numpy as np
import pytest

from talking.audio import num_video_frames, video_frame_times
from talking.config import MOUTH_PARAMETERS, SAMPLE_RATE
from talking.corpus.natural import (
    Kokoro,
    NaturalSpeechConfig,
    build_natural_speech,
    load_natural_speech,
    natural_utterance,
    speak,
)
from talking.errors import TalkingError
from talking.speech import SILENCE

JAW = MOUTH_PARAMETERS.index("jaw_open")
LEAD, TRAIL = 0.4, 0.3


@pytest.fixture(scope="module")
def kokoro() -> Kokoro:
    return Kokoro()


@pytest.fixture(scope="module")
def bilabials(kokoro):
    """A sentence full of p, b and m, with silence around it."""
    return speak(kokoro, "Bob made a map of my happy puppy.", "jm_kumo", 1.0, (LEAD, TRAIL))


def _level_db(audio: np.ndarray, start: float, end: float) -> float:
    chunk = audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]
    return 10 * np.log10(np.mean(chunk**2) + 1e-12)


def test_phonemes_cover_the_audio_without_gaps_and_start_and_end_in_silence(bilabials):
    audio, phonemes, _ = bilabials
    assert phonemes[0].start == 0 and phonemes[-1].end == pytest.approx(len(audio) / SAMPLE_RATE)
    assert all(a.end == b.start for a, b in zip(phonemes, phonemes[1:], strict=False))
    assert phonemes[0].symbol == SILENCE and phonemes[0].end >= LEAD
    assert phonemes[-1].symbol == SILENCE


def test_bilabial_stops_lie_on_the_closures_of_the_audio(bilabials):
    """The lips close where the audio goes quiet: p/b segments are far quieter than the vowels."""
    audio, phonemes, _ = bilabials
    stops = [_level_db(audio, p.start, p.end) for p in phonemes if p.symbol in ("p", "b")]
    vowels = [_level_db(audio, p.start, p.end) for p in phonemes if p.symbol in ("ɑ", "æ", "ʌ", "aɪ", "eɪ")]
    assert len(stops) >= 5 and len(vowels) >= 5
    assert np.median(vowels) - np.median(stops) > 8


def test_the_last_phoneme_ends_where_the_speech_energy_ends(bilabials):
    audio, phonemes, _ = bilabials
    frames = audio[: len(audio) // 220 * 220].reshape(-1, 220)  # 10 ms
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    speech_end = (np.nonzero(level > level.max() - 30)[0][-1] + 1) * 0.01
    last_spoken = [p for p in phonemes if p.symbol != SILENCE][-1]
    assert abs(last_spoken.end - speech_end) < 0.15


def test_mouth_is_closed_in_the_silence_and_on_bilabials_and_opens_on_vowels(kokoro):
    utterance, info = natural_utterance(kokoro, 0, NaturalSpeechConfig(out="unused", seed=1))
    assert utterance.targets.shape == (num_video_frames(len(utterance.audio)), len(MOUTH_PARAMETERS))
    assert utterance.targets.dtype == np.float32
    times = video_frame_times(len(utterance.targets), 25)
    jaw = utterance.targets[:, JAW]
    lead = utterance.phonemes[0]
    assert lead.symbol == SILENCE and lead.end >= 0.4
    assert np.all(jaw[times < lead.end - 0.3] < 0.01)  # then it opens ahead of the speech
    assert jaw.max() > 0.3
    closed = [any(p.start <= t < p.end and p.symbol in ("p", "b", "m") for p in utterance.phonemes)
              for t in times]
    assert np.all(jaw[closed] < 0.02)
    assert info["voice"] == "jf_alpha" and 0.8 <= info["speed"] <= 1.2


def test_an_utterance_is_the_same_for_the_same_seed_and_index(kokoro):
    config = NaturalSpeechConfig(out="unused", seed=5)
    first, _ = natural_utterance(kokoro, 4, config)
    second, _ = natural_utterance(kokoro, 4, config)
    np.testing.assert_array_equal(first.audio, second.audio)
    np.testing.assert_array_equal(first.targets, second.targets)
    assert first.phonemes == second.phonemes


def test_a_built_set_loads_back_with_matching_audio_and_targets(tmp_path):
    summary = build_natural_speech(NaturalSpeechConfig(out=str(tmp_path), utterances=1, seed=2))
    loaded = load_natural_speech(tmp_path)
    assert [u.name for u in loaded] == summary["utterances"] == ["jf_alpha-0000"]
    utterance = loaded[0]
    assert utterance.audio.dtype == np.float32
    assert utterance.targets.shape == (num_video_frames(len(utterance.audio)), len(MOUTH_PARAMETERS))
    assert summary["seconds"] == pytest.approx(len(utterance.audio) / SAMPLE_RATE, abs=0.01)
    index = json.loads((tmp_path / "natural.json").read_text())
    assert index["licences"] and index["packages"]["onnxruntime"] != "missing"


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(TalkingError, match="not a natural speech set"):
        load_natural_speech(tmp_path / "nowhere")


def test_text_without_words_is_refused(kokoro):
    with pytest.raises(TalkingError, match="nothing to say"):
        speak(kokoro, "...", "jf_alpha", 1.0)
