"""Training samples: what a sample holds, alignment to the source pose, closed-lip sources."""


import cv2
import numpy as np
import pytest
import torch

from talking.ibug import RIGID
from talking.pose import align_frame, pose_alignment
from talking.training.batches import CLOSED_GAP, TrainingFrames, closed_frames


def similarity(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    offset = np.array([[0, 0, shift[0]], [0, 0, shift[1]]])
    return cv2.getRotationMatrix2D((32.0, 32.0), angle, scale) + offset


def test_pose_alignment_undoes_a_known_similarity():
    rng = np.random.default_rng(0)
    reference = rng.uniform(10, 54, (68, 2)).astype(np.float32)
    moved = similarity(4.0, 1.05, (2.5, -1.5))
    landmarks = reference @ moved[:, :2].T + moved[:, 2]
    landmarks[48:68] += rng.normal(0, 3, (20, 2))  # the lips move with speech: not used
    matrix = pose_alignment(landmarks, reference)
    back = landmarks[RIGID] @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(back, reference[RIGID], atol=1e-3)


def test_align_frame_moves_the_pixels_by_the_transform():
    image = np.zeros((64, 64, 3), np.uint8)
    cv2.circle(image, (20, 30), 6, (255, 255, 255), -1)
    moved = align_frame(image, similarity(0.0, 1.0, (7.0, -4.0)))
    ys, xs = np.nonzero(moved[..., 0] > 127)
    assert (xs.mean(), ys.mean()) == pytest.approx((27.0, 26.0), abs=0.3)


def test_a_sample_holds_frame_t_its_audio_window_and_both_landmark_sets(corpus):
    dataset = TrainingFrames(corpus, "train", seed=0)
    clip, t = dataset.clips[0], 5
    sample = dataset[t]
    assert set(sample) == {"frame", "source", "mel", "pitch", "energy", "landmarks", "source_landmarks"}
    windows = clip.features.windows(t, t + 1)
    torch.testing.assert_close(sample["mel"], torch.from_numpy(windows.mel[0]))
    marks = torch.from_numpy(np.asarray(clip.landmarks, np.float32))
    torch.testing.assert_close(sample["landmarks"], marks[t])
    frame = torch.from_numpy(np.array(clip.frames[t])).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(sample["frame"], frame)
    s = int(np.random.default_rng((0, t)).integers(clip.num_frames))  # the sample's source
    torch.testing.assert_close(sample["source_landmarks"], marks[s])


def test_aligned_samples_keep_the_source_pose(corpus):
    plain = TrainingFrames(corpus, "train", seed=0)
    aligned = TrainingFrames(corpus, "train", seed=0, align_to_source=True)
    clip = plain.clips[0]
    marks = np.asarray(clip.landmarks)
    before, after = [], []
    for t in range(clip.num_frames):
        s = int(np.random.default_rng((0, t)).integers(clip.num_frames))  # the sample's source
        rigid = marks[s][RIGID]
        before.append(np.abs(plain[t]["landmarks"].numpy()[RIGID] - rigid).mean())
        after.append(np.abs(aligned[t]["landmarks"].numpy()[RIGID] - rigid).mean())
        torch.testing.assert_close(aligned[t]["source"], plain[t]["source"])
    assert np.mean(after) < 0.5 * np.mean(before)


def test_training_samples_need_landmarks(corpus, tmp_path):
    import shutil

    copy = tmp_path / "corpus"
    shutil.copytree(corpus, copy)
    for landmarks in copy.glob("clips/*/landmarks.npy"):
        landmarks.unlink()
    with pytest.raises(ValueError, match="needs each frame's landmarks"):
        TrainingFrames(copy, "train")


def test_closed_frames_are_those_with_the_inner_lips_together():
    landmarks = np.zeros((5, 68, 2), np.float32)
    landmarks[:, 66, 1] = [0.2, 3.0, 0.6, 1.0, 0.1]  # inner lower lip below the upper one (y = 0)
    assert closed_frames(landmarks).tolist() == [0, 2, 4]  # within 0.5 px of the smallest gap


def test_closed_sources_have_their_lips_closed_and_keep_the_sources_landmarks(corpus):
    dataset = TrainingFrames(corpus, "train", closed_source=True)
    gaps, all_gaps = [], []
    for index in range(0, len(dataset), 7):
        sample = dataset[index]
        marks = sample["source_landmarks"].numpy()
        gaps.append(marks[66, 1] - marks[62, 1])
    for clip in dataset.clips:
        marks = np.asarray(clip.landmarks)
        all_gaps.append(marks[:, 66, 1] - marks[:, 62, 1])
    closed_limit = max(g.min() for g in all_gaps) + CLOSED_GAP
    assert max(gaps) <= closed_limit
    assert max(g.max() for g in all_gaps) > closed_limit + 1  # the clips do open their mouths
