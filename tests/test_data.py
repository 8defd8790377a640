"""The clip format on disk: what is written is what is read, atomically, memory-mapped."""

import json
import pickle

import numpy as np
import pytest

from talking.audio import extract_features, num_video_frames
from talking.data import Clip, load_index, load_split, quantize_pcm16, write_clip, write_index
from talking.errors import TalkingError

SR = 22050


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (t % 0.5 < 0.3)).astype(np.float32)


def clip_data(seconds: float = 1.0, size: int = 32):
    audio = tone(seconds)
    n = num_video_frames(len(audio))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    landmarks = rng.uniform(0, size, (n, 68, 2)).astype(np.float32)
    meta = {"id": "c1", "source": "test", "identity": "p1", "voice": "v1", "text": "hello"}
    return frames, audio, landmarks, meta


def test_a_clip_reads_back_what_was_written(tmp_path):
    frames, audio, landmarks, meta = clip_data(1.3)
    truth = {"mouth": np.linspace(0, 1, len(frames) * 7).reshape(-1, 7).astype(np.float32),
             "phonemes": np.array(["_", "h", "ə"])}
    path = write_clip(tmp_path / "clips" / "c1", frames, audio, meta, landmarks=landmarks, truth=truth)
    clip = Clip(path)
    assert isinstance(clip.frames, np.memmap)
    np.testing.assert_array_equal(clip.frames, frames)
    np.testing.assert_array_equal(clip.audio, quantize_pcm16(audio))
    np.testing.assert_array_equal(clip.landmarks, landmarks)
    np.testing.assert_array_equal(clip.truth["mouth"], truth["mouth"])
    assert list(clip.truth["phonemes"]) == ["_", "h", "ə"]
    assert clip.num_frames == len(clip) == len(frames) == 33  # ceil(1.3 s * 25 fps)
    assert clip.features.num_video_frames == 33
    np.testing.assert_allclose(clip.features.mel, extract_features(quantize_pcm16(audio)).mel, atol=1e-5)
    assert clip.meta == {**meta, "fps": 25, "sample_rate": SR, "resolution": 32, "num_frames": 33,
                         "duration": len(audio) / SR}


def test_landmarks_and_truth_are_optional(tmp_path):
    frames, audio, _, meta = clip_data()
    clip = Clip(write_clip(tmp_path / "c1", frames, audio, meta))
    assert clip.landmarks is None and clip.truth is None
    assert sorted(p.name for p in clip.directory.iterdir()) == [
        "audio.wav", "features.npz", "frames.npy", "meta.json"]


def test_frames_must_cover_the_audio_exactly(tmp_path):
    frames, audio, _, meta = clip_data(1.0)
    with pytest.raises(ValueError, match="make 25 frames"):
        write_clip(tmp_path / "c1", frames[:-1], audio, meta)
    with pytest.raises(ValueError, match="uint8"):
        write_clip(tmp_path / "c1", frames.astype(np.float32), audio, meta)
    with pytest.raises(ValueError, match="num_frames"):
        write_clip(tmp_path / "c1", frames, audio, {**meta, "num_frames": 24})
    assert not (tmp_path / "c1").exists()


def test_rewriting_a_clip_replaces_it_and_leaves_no_temporary_folder(tmp_path):
    frames, audio, landmarks, meta = clip_data()
    write_clip(tmp_path / "c1", frames, audio, meta, landmarks=landmarks)
    write_clip(tmp_path / "c1", frames[:, ::-1], audio, meta)
    clip = Clip(tmp_path / "c1")
    np.testing.assert_array_equal(clip.frames, frames[:, ::-1])
    assert clip.landmarks is None
    assert [p.name for p in tmp_path.iterdir()] == ["c1"]


def test_a_clip_pickles_without_its_frames(tmp_path):
    frames, audio, _, meta = clip_data()
    clip = Clip(write_clip(tmp_path / "c1", frames, audio, meta))
    assert clip.frames.shape == frames.shape
    copy = pickle.loads(pickle.dumps(clip))
    assert len(pickle.dumps(clip)) < 10_000  # a DataLoader worker maps the file itself
    np.testing.assert_array_equal(copy.frames, frames)


def test_a_folder_without_meta_is_not_a_clip(tmp_path):
    with pytest.raises(TalkingError, match="not a clip"):
        Clip(tmp_path)


def test_index_round_trip_and_splits(tmp_path):
    frames, audio, _, meta = clip_data()
    for clip_id in ("a", "b", "c"):
        write_clip(tmp_path / "clips" / clip_id, frames, audio, {**meta, "id": clip_id})
    write_index(tmp_path, {"train": ["a", "b"], "val": ["c"], "test": []}, {"source": "test"})
    index = load_index(tmp_path)
    assert index == {"splits": {"train": ["a", "b"], "val": ["c"], "test": []}, "source": "test"}
    assert json.loads((tmp_path / "corpus.json").read_text()) == index
    assert [clip.id for clip in load_split(tmp_path, "train")] == ["a", "b"]
    with pytest.raises(TalkingError, match="no split 'dev'"):
        load_split(tmp_path, "dev")
    with pytest.raises(ValueError, match="splits must be exactly"):
        write_index(tmp_path, {"train": []}, {})


def test_a_folder_without_index_is_not_a_corpus(tmp_path):
    with pytest.raises(TalkingError, match="not a corpus"):
        load_index(tmp_path)
