"""Training samples: flow targets, history at the clip's start, and alignment to the source pose."""


import cv2
import numpy as np
import pytest
import torch

from talking.ibug import RIGID
from talking.models import warp
from talking.pose import align_frame, pose_alignment
from talking.training.batches import CLOSED_GAP, TrainingFrames, closed_frames, farneback_flow


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


def test_farneback_flow_warps_the_source_onto_the_frame():
    rng = np.random.default_rng(1)
    source = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (7, 7), 2)
    frame = align_frame(source, similarity(0.0, 1.0, (2.0, 1.0)))
    flow = torch.from_numpy(farneback_flow(frame, source))[None]
    as_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()  # noqa: E731
    warped = warp(as_tensor(source), flow)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    error = (warped - as_tensor(frame))[inner].abs().mean()
    unwarped = (as_tensor(source) - as_tensor(frame))[inner].abs().mean()
    assert error < 0.3 * unwarped


def test_aligned_samples_keep_the_source_pose_and_the_history_starts_at_the_source(corpus):
    plain = TrainingFrames(corpus, "train", with_flow=False, seed=0)
    aligned = TrainingFrames(corpus, "train", with_flow=False, seed=0, align_to_source=True)
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

    first = aligned[0]  # frame 0: every history frame lies before the clip, so it is the source
    torch.testing.assert_close(first["history"], first["source"][None].expand(5, -1, -1, -1))


def test_alignment_needs_landmarks(corpus, tmp_path):
    import shutil

    copy = tmp_path / "corpus"
    shutil.copytree(corpus, copy)
    for landmarks in copy.glob("clips/*/landmarks.npy"):
        landmarks.unlink()
    with pytest.raises(ValueError, match="align_to_source needs landmarks"):
        TrainingFrames(copy, "train", align_to_source=True)
    with pytest.raises(ValueError, match="closed_source needs landmarks"):
        TrainingFrames(copy, "train", closed_source=True)


def test_closed_frames_are_those_with_the_inner_lips_together():
    landmarks = np.zeros((5, 68, 2), np.float32)
    landmarks[:, 66, 1] = [0.2, 3.0, 0.6, 1.0, 0.1]  # inner lower lip below the upper one (y = 0)
    assert closed_frames(landmarks).tolist() == [0, 2, 4]  # within 0.5 px of the smallest gap


def test_closed_sources_have_their_lips_closed_and_keep_the_sources_landmarks(corpus):
    dataset = TrainingFrames(corpus, "train", with_flow=False, closed_source=True)
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
