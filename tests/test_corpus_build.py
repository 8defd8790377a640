"""`python -m talking corpus`: disjoint splits, byte-identical rebuilds, exact ground truth."""

import dataclasses
import shutil

import numpy as np
import pytest

from talking.cli import main
from talking.config import FPS, MOUTH_PARAMETERS, SAMPLE_RATE
from talking.corpus.build import CorpusConfig, build_corpus, plan_corpus
from talking.corpus.visemes import phoneme_visemes
from talking.data import Clip, load_index, load_split
from talking.speech import SILENCE

SMALL = dict(clips=4, clips_per_speaker=2, resolution=48, val_fraction=0.2, test_fraction=0.2)


def all_clips(root):
    return [Clip(path) for path in sorted((root / "clips").iterdir())]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    assert main(["corpus", "--out", str(out), "--clips", "4", "--clips-per-speaker", "2",
                 "--resolution", "48", "--val-fraction", "0.2", "--test-fraction", "0.2",
                 "--workers", "1", "--seed", "3"]) == 0
    return out


def test_splits_are_disjoint_in_identity_voice_and_sentence():
    plans = plan_corpus(CorpusConfig(out="unused", clips=400))
    by_split = {split: [p for p in plans if p.split == split] for split in ("train", "val", "test")}
    assert all(len(clips) >= 10 for clips in by_split.values())
    for key in (lambda p: p.speaker, lambda p: p.voice.variant):
        groups = [{key(p) for p in clips} for clips in by_split.values()]
        assert sum(len(g) for g in groups) == len(set().union(*groups))
    assert len({p.text for p in plans}) == len(plans)
    assert len({p.voice.language for p in plans}) >= 8


def test_every_clip_is_complete_and_indexed(corpus):
    index = load_index(corpus)
    assert sorted(sum(index["splits"].values(), [])) == sorted(p.name for p in (corpus / "clips").iterdir())
    assert all(index["splits"][split] for split in ("train", "val", "test"))
    for clip in load_split(corpus, "train"):
        n = clip.num_frames
        assert clip.frames.shape == (n, 48, 48, 3)
        assert clip.landmarks.shape == (n, 68, 2)
        assert clip.features.num_video_frames == n
        assert abs(len(clip.audio) / SAMPLE_RATE - n / FPS) < 1 / FPS
        truth = clip.truth
        assert truth["mouth"].shape == (n, len(MOUTH_PARAMETERS))
        assert truth["eye_openness"].shape == (n,) and truth["head_pose"].shape == (n, 3)
        assert clip.meta["source"] == "synthetic" and clip.meta["text"]


def test_phonemes_cover_the_audio_and_speech_is_where_they_say(corpus):
    for clip in all_clips(corpus):
        truth, audio = clip.truth, clip.audio
        starts, ends = truth["phoneme_start"], truth["phoneme_end"]
        assert starts[0] == 0 and ends[-1] == pytest.approx(len(audio) / SAMPLE_RATE)
        np.testing.assert_allclose(starts[1:], ends[:-1])
        assert np.all(ends > starts)
        spoken = truth["phonemes"] != SILENCE
        speech = slice(int(starts[spoken][0] * SAMPLE_RATE), int(ends[spoken][-1] * SAMPLE_RATE))
        lead = audio[:int(starts[spoken][0] * SAMPLE_RATE)]
        assert np.sqrt(np.mean(audio[speech] ** 2)) > 10 * np.sqrt(np.mean(lead ** 2))


def test_bilabial_phonemes_close_the_lips_in_the_frames_they_cover(corpus):
    closed = 0
    for clip in all_clips(corpus):
        truth, landmarks = clip.truth, clip.landmarks
        t = (np.arange(clip.num_frames) + 0.5) / FPS
        gap = np.linalg.norm(landmarks[:, 66] - landmarks[:, 62], axis=1) / clip.meta["resolution"]
        for symbol, start, end in zip(truth["phonemes"], truth["phoneme_start"], truth["phoneme_end"],
                                      strict=True):
            if phoneme_visemes(str(symbol)) == ["PP"]:
                inside = (t >= start) & (t < end)
                assert np.all(gap[inside] < 0.002), (clip.id, symbol, gap[inside])  # < 0.3 px at 128
                closed += inside.sum()
    assert closed > 0


def test_same_seed_gives_byte_identical_clips_with_any_number_of_workers(corpus, tmp_path):
    again = tmp_path / "again"
    build_corpus(CorpusConfig(out=str(again), seed=3, workers=2, **SMALL))
    assert (again / "corpus.json").read_bytes() == (corpus / "corpus.json").read_bytes()
    for path in sorted((corpus / "clips").rglob("*")):
        if path.is_file():
            assert (again / path.relative_to(corpus)).read_bytes() == path.read_bytes(), path


def test_another_seed_gives_another_corpus():
    first = plan_corpus(CorpusConfig(out="unused", seed=1, **SMALL))
    second = plan_corpus(CorpusConfig(out="unused", seed=2, **SMALL))
    assert [p.text for p in first] != [p.text for p in second]


def test_an_interrupted_build_resumes_with_the_missing_clips(corpus, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(corpus, partial)
    victim = sorted((partial / "clips").iterdir())[1]
    shutil.rmtree(victim)
    build_corpus(CorpusConfig(out=str(partial), seed=3, workers=1, **SMALL))
    for name in ("frames.npy", "audio.wav", "truth.npz"):
        assert (victim / name).read_bytes() == (corpus / "clips" / victim.name / name).read_bytes()


def test_a_folder_with_another_corpus_is_refused(corpus, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(corpus, other)
    config = dataclasses.asdict(CorpusConfig(out=str(other), seed=4, **SMALL))
    assert main(["corpus"] + [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]) == 2
    assert "other settings" in capsys.readouterr().err


def test_bad_settings_are_one_clear_line(capsys):
    assert main(["corpus", "--out", "x", "--clips", "2"]) == 2
    assert capsys.readouterr().err.strip() == "error: need at least 3 clips (one per split), got 2"
