"""A folder of real-corpus-like videos becomes aligned clips, split by speaker."""

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from faces import render_face, textured_photo

from talking.audio import num_video_frames
from talking.config import CANONICAL_LEFT_EYE, CANONICAL_MOUTH, CANONICAL_RIGHT_EYE, FPS, SAMPLE_RATE
from talking.data import Clip, load_index
from talking.face import canonical_landmarks, warp_to_crop
from talking.prepare import (
    PrepareConfig,
    find_videos,
    prepare_corpus,
    split_by_identity,
    steady_track,
    track_face,
)
from talking.realface import openings
from talking.speech import synthesize
from talking.video import write_video

SPEAKER, FACE_AT, FACE_SIZE = 1, (110, 40), 120
CANONICAL = np.array([CANONICAL_LEFT_EYE, CANONICAL_RIGHT_EYE, CANONICAL_MOUTH])


def is_open(index: int) -> bool:
    return index // 4 % 2 == 1


def speaking_frames(count: int, with_face: bool = True) -> list[np.ndarray]:
    """(240, 320, 3) frames of a synthetic speaker whose mouth opens every other 4 frames."""
    shut, _ = render_face(SPEAKER, FACE_SIZE)
    open_, _ = render_face(SPEAKER, FACE_SIZE, jaw=0.8)
    x, y = FACE_AT
    frames = []
    for index in range(count):
        frame = textured_photo(240, 320, seed=7)
        if with_face:
            frame[y:y + FACE_SIZE, x:x + FACE_SIZE] = open_ if is_open(index) else shut
        frames.append(frame)
    return frames


def make_video(path, text, with_face=True):
    """An mp4 of espeak-ng speaking ``text`` over drawn frames; returns the frames."""
    speech = synthesize(text).audio
    frames = speaking_frames(num_video_frames(len(speech)), with_face)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, speech)
    return frames


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """LRS / VoxCeleb-like input (id/clip/*.mp4; one video without a face, one without sound),
    prepared."""
    root = tmp_path_factory.mktemp("voxceleb")
    originals = make_video(root / "id01" / "bbaf2n" / "00001.mp4", "bin blue at f two now")
    make_video(root / "id02" / "lgwa5a" / "00001.mp4", "lay green with a five again")
    make_video(root / "id03" / "pwij3s" / "00001.mp4", "place white in j three soon")
    make_video(root / "id03" / "pwij3s" / "00002.mp4", "set red by q nine please", with_face=False)
    (root / "id04" / "x").mkdir(parents=True)
    mute = imageio_ffmpeg.write_frames(str(root / "id04" / "x" / "mute.mp4"), (320, 240), fps=FPS)
    mute.send(None)
    for frame in speaking_frames(25):
        mute.send(frame)
    mute.close()
    out = tmp_path_factory.mktemp("prepared")
    prepare_corpus(PrepareConfig(input=str(root), out=str(out), workers=1, val_fraction=0.34,
                                 test_fraction=0.34))
    return root, out, originals


FIRST = "id01-bbaf2n-00001"


def test_clip_frames_are_the_video_frames_cropped_along_the_face_track(corpus):
    root, out, originals = corpus
    clip = Clip(out / "clips" / FIRST)
    track = track_face(root / "id01" / "bbaf2n" / "00001.mp4", PrepareConfig(input="", out=""))
    expected = [warp_to_crop(frame, matrix, 128)
                for frame, matrix in zip(originals, track.matrices, strict=True)]
    assert clip.frames.shape == (len(originals), 128, 128, 3)
    assert min(psnr(got, want) for got, want in zip(clip.frames, expected, strict=True)) > 30


def test_track_maps_the_eyes_and_mouth_to_the_canonical_ones(corpus):
    root, _, _ = corpus
    track = track_face(root / "id01" / "bbaf2n" / "00001.mp4", PrepareConfig(input="", out=""))
    _, points = render_face(SPEAKER, FACE_SIZE)
    for matrix in track.matrices:
        landed = cv2.transform((points + FACE_AT)[None], matrix)[0]
        assert np.abs(landed - canonical_landmarks(128)).max() < 4  # crop pixels
    assert np.ptp(track.matrices, axis=0).max() == 0  # a still speaker gives a crop that does not shake


def test_clips_have_landmarks_that_follow_the_lips(corpus):
    _, out, originals = corpus
    clip = Clip(out / "clips" / FIRST)
    landmarks = np.asarray(clip.landmarks)
    assert landmarks.shape == (len(originals), 68, 2) and np.isfinite(landmarks).all()
    # eyes and mouth where the canonical frame puts them, in every frame
    centres = np.stack([landmarks[:, 36:42].mean(1), landmarks[:, 42:48].mean(1)], 1)
    assert np.abs(centres - canonical_landmarks(128)[:2]).max() < 3
    # the inner lips part in the frames drawn open and meet in the ones drawn shut
    _, opening = openings(landmarks)
    drawn_open = np.array([is_open(i) for i in range(len(landmarks))])
    inside = np.convolve(drawn_open, np.ones(3), "same") % 3 == 0  # not next to a change
    # (the mesh reads the renderer's jaw_open 0.8 as about 0.23, its closed mouth as 0.03)
    assert opening[drawn_open & inside].min() > opening[~drawn_open & inside].max() + 0.1


def test_a_prepared_corpus_trains_with_align_to_source_and_has_evaluation_references(corpus):
    from talking.evaluate import EvaluateOptions, baseline_methods, clip_reference
    from talking.training.batches import TrainingFrames

    _, out, _ = corpus
    frames = TrainingFrames(out, "train", align_to_source=True, closed_source=True)
    batch = next(iter(torch.utils.data.DataLoader(frames, batch_size=4)))
    assert batch["frame"].shape == (4, 3, 128, 128) and batch["landmarks"].shape == (4, 68, 2)
    reference = clip_reference(frames.clips[0])
    assert reference.eye_openness.shape == reference.jaw.shape == (frames.clips[0].num_frames,)
    assert reference.jaw.max() > 0.15 > 0.05 > reference.jaw.min()  # jaw_open units, as read
    # the baselines that re-render the corpus's drawn faces have nothing to re-render here
    assert list(baseline_methods(EvaluateOptions(corpus=str(out)))) == ["static"]


def test_clip_audio_lasts_as_long_as_its_frames(corpus):
    _, out, originals = corpus
    clip = Clip(out / "clips" / FIRST)
    seconds = len(clip.audio) / SAMPLE_RATE
    assert abs(seconds - len(clip.frames) / FPS) < 1 / FPS
    assert abs(seconds - len(originals) / FPS) < 1 / FPS


def test_videos_without_face_or_sound_are_skipped_and_reported(corpus):
    _, out, _ = corpus
    skipped = load_index(out)["skipped"]
    assert sorted(skipped) == ["id03/pwij3s/00002.mp4", "id04/x/mute.mp4"]
    assert "face" in skipped["id03/pwij3s/00002.mp4"]
    assert "audio" in skipped["id04/x/mute.mp4"]


def test_splits_hold_every_clip_once_and_no_speaker_in_two(corpus):
    _, out, _ = corpus
    splits = load_index(out)["splits"]
    clips = sorted(clip for split in splits.values() for clip in split)
    assert clips == [FIRST, "id02-lgwa5a-00001", "id03-pwij3s-00001"]
    speakers = [{clip.split("-")[0] for clip in split} for split in splits.values()]
    assert sum(len(s) for s in speakers) == len(set().union(*speakers))


def detections_every(points: np.ndarray, step: int, noise: float, seed: int = 0) -> np.ndarray:
    """(N, 3, 2) true points -> what a detector sees: noisy, on every ``step``-th frame and the
    last."""
    rng = np.random.default_rng(seed)
    seen = points + rng.uniform(-noise, noise, points.shape)
    seen[:-1][np.arange(len(points) - 1) % step != 0] = np.nan
    return seen


def test_still_face_is_held_still_despite_detection_jitter():
    truth = np.broadcast_to(CANONICAL * 100 + 50, (60, 3, 2))
    track = steady_track(detections_every(truth, 5, noise=2.5), window=21)
    assert np.ptp(track, axis=0).max() == 0
    assert np.abs(track - truth).max() < 2.5


def test_moving_face_is_followed_smoothly_and_a_stray_box_ignored():
    drift = np.arange(100)[:, None, None] * (2.0, 0.5)  # 2 px/frame right, 0.5 down
    truth = CANONICAL * 100 + 50 + drift
    seen = detections_every(truth, 5, noise=2.0)
    seen[50] += 40  # a false positive
    track = steady_track(seen, window=21)
    assert np.abs(track - truth).max() < 2.5
    assert np.abs(np.diff(track, 2, axis=0)).max() < 0.5  # raw detections jerk by ~1.3 px/frame²


def test_speaker_comes_from_folder_or_crema_d_file_name(tmp_path):
    for name in ("s1/video/bbaf2n.mpg", "id10001/1zcIwhmdeo4/00001.mp4", "1001_DFA_ANG_XX.flv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    found = {source.relative: (source.identity, source.clip_id) for source in find_videos(tmp_path)}
    assert found == {
        "s1/video/bbaf2n.mpg": ("s1", "s1-video-bbaf2n"),
        "id10001/1zcIwhmdeo4/00001.mp4": ("id10001", "id10001-1zcIwhmdeo4-00001"),
        "1001_DFA_ANG_XX.flv": ("1001", "1001_DFA_ANG_XX"),
    }


def test_split_is_deterministic_and_disjoint_by_speaker():
    identities = {f"clip{i}": f"speaker{i % 10}" for i in range(100)}
    first = split_by_identity(identities, 0.1, 0.2, seed=3)
    assert first == split_by_identity(identities, 0.1, 0.2, seed=3)
    assert first != split_by_identity(identities, 0.1, 0.2, seed=4)
    speakers = {name: {identities[c] for c in clips} for name, clips in first.items()}
    assert (len(speakers["train"]), len(speakers["val"]), len(speakers["test"])) == (7, 1, 2)
    assert not speakers["train"] & speakers["val"] and not speakers["train"] & speakers["test"]
