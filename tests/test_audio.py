"""The audio front-end: loading any speech file, and the paper's features aligned to video frames."""

import subprocess

import numpy as np
import pytest
import soundfile

from talking.audio import (
    AudioFeatures,
    extract_features,
    f0_contour,
    frame_window_indices,
    load_audio,
    num_video_frames,
    one_hot_pitch,
    pitch_bins_to_hz,
)
from talking.config import AudioConfig
from talking.errors import TalkingError

SR = 22050


def harmonic_tone(freq: float, seconds: float, sr: int = SR) -> np.ndarray:
    """Four harmonics of ``freq`` with 20 ms raised-cosine fades (no clicks at the ends)."""
    t = np.arange(int(round(seconds * sr))) / sr
    tone = sum(0.3 / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, 5))
    fade = int(0.02 * sr)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
    tone[:fade] *= ramp
    tone[-fade:] *= ramp[::-1]
    return tone.astype(np.float32)


def test_harmonic_tone_pitch_within_two_percent():
    # 0.1 s of silence on both sides, as around an utterance: dio's last frame is unreliable
    # when the voice is cut off by the end of the file.
    wav = np.pad(harmonic_tone(220.0, 1.0), int(0.1 * SR))
    f0 = f0_contour(wav)
    voiced = f0 > 0
    assert voiced.mean() > 0.75
    assert np.all(np.abs(f0[voiced] / 220.0 - 1) < 0.02)
    bins = extract_features(wav).pitch
    hz = pitch_bins_to_hz(bins[bins > 0])
    assert np.all(np.abs(hz / 220.0 - 1) < 0.02)


def test_silence_is_unvoiced_with_zero_energy():
    features = extract_features(load_audio(np.zeros(SR, np.float32), SR))
    assert np.all(features.pitch == 0)
    assert np.all(features.energy == 0)
    windows = features.windows()
    assert np.all(windows.energy == 0) and np.all(windows.pitch == 0)


def test_three_second_clip_gives_exactly_75_windows():
    config = AudioConfig()
    features = extract_features(harmonic_tone(150.0, 3.0))
    windows = features.windows()
    assert features.num_video_frames == 75
    assert windows.mel.shape == (75, config.window, config.n_mels)
    assert windows.pitch.shape == (75, config.window) and windows.pitch.dtype == np.int64
    assert windows.energy.shape == (75, config.window)


def test_video_frame_count_is_ceil_of_duration_times_fps():
    assert num_video_frames(SR * 3) == 75
    assert num_video_frames(SR * 3 + 1) == 76
    assert num_video_frames(SR // 25) == 1


def test_window_is_centred_on_the_video_frame():
    """A click in the middle of video frame 40 is loudest at the centre of frame 40's window."""
    wav = np.zeros(SR * 3, np.float32)
    click_at = int((40 + 0.5) / 25 * SR)
    wav[click_at: click_at + 64] = 1.0
    windows = extract_features(wav).windows()
    centre = AudioConfig().window // 2
    assert abs(int(np.argmax(windows.energy[40])) - centre) <= 1
    # One video frame earlier, the click sits 22050 / 25 / 256 = 3.4 mel frames later in the window.
    assert abs(int(np.argmax(windows.energy[39])) - (centre + 3.4)) <= 1


def test_window_indices_pad_with_silence_at_both_edges():
    features = extract_features(harmonic_tone(200.0, 1.0))
    windows = features.windows()
    first = frame_window_indices(np.array([0]))[0]
    assert first.min() < 0  # frame 0's window starts before the clip
    assert windows.energy[0, 0] == 0 and windows.pitch[0, 0] == 0
    assert windows.mel[0, 0].max() == pytest.approx(np.log(1e-5))


def test_windows_slice_matches_full_windows():
    features = extract_features(harmonic_tone(180.0, 1.0))
    full = features.windows()
    part = features.windows(10, 20)
    np.testing.assert_array_equal(part.mel, full.mel[10:20])
    np.testing.assert_array_equal(part.pitch, full.pitch[10:20])


def test_features_round_trip_through_npz(tmp_path):
    features = extract_features(harmonic_tone(180.0, 0.5))
    features.save(tmp_path / "f.npz")
    loaded = AudioFeatures.load(tmp_path / "f.npz")
    np.testing.assert_array_equal(loaded.pitch, features.pitch)
    np.testing.assert_allclose(loaded.mel, features.mel)
    assert loaded.num_video_frames == features.num_video_frames


def test_one_hot_pitch_marks_the_bin():
    one_hot = one_hot_pitch(np.array([0, 5, 255]))
    assert one_hot.shape == (3, 256)
    assert one_hot.sum() == 3 and one_hot[1, 5] == 1


def test_stereo_48k_and_mulaw_8k_load_to_the_same_duration(tmp_path):
    seconds = 1.5
    stereo = np.stack([harmonic_tone(200, seconds, 48000), harmonic_tone(300, seconds, 48000)], 1)
    soundfile.write(tmp_path / "stereo.wav", stereo, 48000, subtype="PCM_24")
    soundfile.write(tmp_path / "mulaw.wav", harmonic_tone(200, seconds, 8000), 8000,
                    subtype="ULAW")
    a = load_audio(tmp_path / "stereo.wav")
    b = load_audio(tmp_path / "mulaw.wav")
    assert a.dtype == np.float32 and a.ndim == 1
    assert abs(len(a) - len(b)) <= 2
    assert len(a) == pytest.approx(seconds * SR, abs=2)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_U8"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"),
                                         ("OGG", "VORBIS"), ("OGG", "OPUS"), ("MP3", None)])
def test_common_formats_load(tmp_path, fmt, subtype):
    path = tmp_path / f"speech.{fmt.lower()}"
    rate = 48000 if subtype == "OPUS" else 16000
    soundfile.write(path, harmonic_tone(200, 1.0, rate), rate, format=fmt, subtype=subtype)
    wav = load_audio(path)
    assert len(wav) == pytest.approx(SR, rel=0.06)  # lossy codecs pad a little
    assert 0.1 < np.abs(wav).max() <= 1.01


def test_m4a_decodes_through_ffmpeg(tmp_path):
    import imageio_ffmpeg

    soundfile.write(tmp_path / "in.wav", harmonic_tone(200, 1.0), SR)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "in.wav"),
                    "-c:a", "aac", str(tmp_path / "speech.m4a")], check=True)
    wav = load_audio(tmp_path / "speech.m4a")
    assert len(wav) == pytest.approx(SR, rel=0.06)


def test_integer_arrays_are_scaled_and_channels_mixed():
    pcm = (harmonic_tone(200, 0.5) * 32767).astype(np.int16)
    wav = load_audio(np.stack([pcm, pcm]), SR)
    assert wav.shape == (len(pcm),)
    assert np.abs(wav).max() == pytest.approx(np.abs(pcm).max() / 32768, rel=1e-3)


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"this is not audio at all" * 50, "cannot read audio"),
])
def test_unreadable_files_raise_a_clear_error(tmp_path, content, message):
    path = tmp_path / "speech.wav"
    path.write_bytes(content)
    with pytest.raises(TalkingError, match=message):
        load_audio(path)


def test_truncated_wav_raises_or_loads_what_is_there(tmp_path):
    soundfile.write(tmp_path / "full.wav", harmonic_tone(200, 1.0), SR)
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:30])
    with pytest.raises(TalkingError):
        load_audio(tmp_path / "cut.wav")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(TalkingError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_too_short_and_too_long_audio_are_refused():
    with pytest.raises(TalkingError, match="too short"):
        load_audio(np.zeros(SR // 10, np.float32), SR)
    with pytest.raises(TalkingError, match="limit is 2 s"):
        load_audio(np.zeros(SR * 3, np.float32), SR, config=AudioConfig(max_seconds=2))


def test_non_finite_samples_are_refused():
    wav = harmonic_tone(200, 1.0)
    wav[100] = np.nan
    with pytest.raises(TalkingError, match="NaN"):
        load_audio(wav, SR)


def test_array_without_sample_rate_is_refused():
    with pytest.raises(TalkingError, match="sample rate"):
        load_audio(np.zeros(SR, np.float32))


def speech_like(seconds: float) -> np.ndarray:
    """Voiced syllables at a gliding pitch, pauses between them, and a little noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.3 * t)
    voiced = np.sin(2 * np.pi * 3 * t) > -0.2  # syllables of ~0.2 s, then a pause
    wav = 0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / SR) * voiced
    return (wav + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def test_features_computed_in_chunks_equal_the_whole_clip_computation():
    wav = speech_like(4.0)  # 345 mel frames
    whole = extract_features(wav, chunk_frames=10**6)
    for chunk in (32, 64, 100):
        chunked = extract_features(wav, chunk_frames=chunk)
        # OpenBLAS may round a matrix product of another row count differently in the last bit
        # (seen with numpy 2.4's OpenBLAS 0.3.31): equal to float32 precision, not bit for bit
        np.testing.assert_allclose(chunked.mel, whole.mel, rtol=0, atol=1e-5)
        np.testing.assert_allclose(chunked.energy, whole.energy, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(chunked.pitch, whole.pitch)
    assert (whole.pitch > 0).mean() > 0.4  # the pitch tracker had voiced frames to agree on


def test_feature_memory_does_not_grow_with_the_clip():
    """Working memory (numpy's, beyond the features returned) is the same for 10 s and 2 min:
    the whole 2-minute STFT alone would be 250 MB."""
    import tracemalloc

    def working_memory(seconds: float) -> float:
        wav = speech_like(seconds)
        tracemalloc.start()
        features = extract_features(wav)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        kept = features.mel.nbytes + features.pitch.nbytes + features.energy.nbytes
        return (peak - kept) / 2**20

    assert working_memory(120.0) < 1.5 * working_memory(30.0) + 5
