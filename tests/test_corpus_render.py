"""The procedural face renderer: canonical alignment, landmarks that match the pixels, life."""

import numpy as np
import pytest

from talking.config import CANONICAL_LEFT_EYE, CANONICAL_MOUTH, CANONICAL_RIGHT_EYE
from talking.corpus.appearance import sample_face_style, sample_scene_style
from talking.corpus.geometry import face_frame
from talking.corpus.motion import FaceMotion, blink_openness
from talking.corpus.render import FaceRenderer, render_clip
from talking.corpus.visemes import VISEMES

REST = np.array(VISEMES["sil"][0])
OPEN = np.array(VISEMES["AA"][0])


def speaker(seed: int):
    rng = np.random.default_rng(seed)
    return sample_face_style(rng, feminine=bool(seed % 2)), sample_scene_style(rng)


def still_frame(seed, mouth=REST, openness=1.0, resolution=128, offset=(0.0, 0.0, 0.0), roll=0.0):
    style, scene = speaker(seed)
    renderer = FaceRenderer(style, scene, resolution)
    return renderer.render(face_frame(style, mouth, openness, 0.0, np.zeros(2)), np.array(offset), roll)


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """The usual EAR of six eye points: (|p2-p6| + |p3-p5|) / (2 |p1-p4|)."""
    p = eye
    return (np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2 * np.linalg.norm(p[0] - p[3]))


@pytest.mark.parametrize("seed", range(6))
def test_eyes_and_mouth_sit_at_the_canonical_positions(seed):
    _, landmarks = still_frame(seed)
    to_unit = (landmarks + 0.5) / 128
    assert np.abs(to_unit[36:42].mean(0) - CANONICAL_LEFT_EYE).max() < 0.015
    assert np.abs(to_unit[42:48].mean(0) - CANONICAL_RIGHT_EYE).max() < 0.015
    assert np.abs(to_unit[48:68].mean(0) - CANONICAL_MOUTH).max() < 0.015


def test_landmarks_follow_the_resolution():
    image_128, landmarks_128 = still_frame(3, resolution=128)
    image_256, landmarks_256 = still_frame(3, resolution=256)
    assert image_128.shape == (128, 128, 3) and image_256.shape == (256, 256, 3)
    np.testing.assert_allclose((landmarks_256 + 0.5) / 256, (landmarks_128 + 0.5) / 128, atol=1e-5)


def test_landmarks_follow_the_head_pose():
    _, still = still_frame(4)
    _, moved = still_frame(4, offset=(0.05, -0.02, 0.1), roll=5.0)
    eyes = lambda lm: lm[42:48].mean(0) - lm[36:42].mean(0)  # noqa: E731
    assert np.degrees(np.arctan2(*eyes(moved)[::-1])) == pytest.approx(5.0, abs=0.1)
    assert np.linalg.norm(eyes(moved)) / np.linalg.norm(eyes(still)) == pytest.approx(1.1, abs=0.01)


def darkened(before, after, landmarks):
    """Fraction of the pixels in the middle of the opening between the inner lips (of
    ``landmarks``; clear of teeth and tongue) that are less than half as bright in ``after`` as in
    ``before``."""
    top, bottom, left, right = landmarks[62, 1], landmarks[66, 1], landmarks[60, 0], landmarks[64, 0]
    rows = slice(int(np.ceil(top + 0.4 * (bottom - top))), int(bottom - 0.3 * (bottom - top)) + 1)
    columns = slice(int(np.ceil(left + 0.25 * (right - left))), int(right - 0.25 * (right - left)) + 1)
    return float((after[rows, columns].mean(-1) < 0.5 * before[rows, columns].mean(-1)).mean())


@pytest.mark.parametrize("seed", range(6))
def test_open_mouth_shows_a_dark_cavity_and_closed_lips_do_not(seed):
    closed_image, closed = still_frame(seed, REST)
    open_image, opened = still_frame(seed, OPEN)
    assert np.linalg.norm(closed[66] - closed[62]) < 0.3  # pixels between the inner lips
    assert np.linalg.norm(opened[66] - opened[62]) > 6
    assert darkened(closed_image, open_image, opened) > 0.9


def test_closed_eyes_have_a_small_eye_aspect_ratio():
    _, open_eyes = still_frame(1, openness=1.0)
    _, shut = still_frame(1, openness=0.0)
    for eye in (slice(36, 42), slice(42, 48)):
        assert eye_aspect_ratio(open_eyes[eye]) > 0.2
        assert eye_aspect_ratio(shut[eye]) < 0.08


def test_blinks_come_at_the_requested_rate_and_last_100_to_200_ms():
    rng = np.random.default_rng(0)
    openness = blink_openness(rng, num_frames=25 * 600, fps=25, rate=0.4)
    closed = openness < 0.3
    starts = np.flatnonzero(closed[1:] & ~closed[:-1])
    assert 0.3 < len(starts) / 600 < 0.45
    lengths = np.diff(np.flatnonzero(np.diff(closed.astype(int))))[::2]
    assert lengths.max() <= 5  # frames below 0.3: at most 200 ms


def test_faces_vary_between_speakers():
    images = [still_frame(seed)[0].astype(float) for seed in range(8)]
    differences = [np.abs(a - b).mean() for i, a in enumerate(images) for b in images[i + 1:]]
    assert min(differences) > 10


def test_a_clip_renders_every_frame_with_its_landmarks():
    style, scene = speaker(5)
    n = 12
    motion = FaceMotion(eye_openness=np.ones(n, np.float32), brow_raise=np.linspace(0, 1, n),
                        gaze=np.zeros((n, 2), np.float32), head_pose=np.zeros((n, 3), np.float32),
                        head_offset=np.zeros((n, 3), np.float32))
    mouth = np.linspace(REST, OPEN, n)
    frames, landmarks = render_clip(style, scene, mouth, motion, 64)
    assert frames.shape == (n, 64, 64, 3) and frames.dtype == np.uint8
    assert landmarks.shape == (n, 68, 2) and landmarks.dtype == np.float32
    gap = np.linalg.norm(landmarks[:, 66] - landmarks[:, 62], axis=1)
    assert np.all(np.diff(gap) > 0)  # the mouth opens frame by frame
    assert landmarks[-1, 19, 1] < landmarks[0, 19, 1] - 1  # the brows rise
