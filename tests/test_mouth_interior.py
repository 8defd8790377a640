"""A photo taken with its mouth open shows its own teeth wherever a frame opens the mouth again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from faces import render_face

from talking.closed_mouth import close_mouth
from talking.composite import Compositor
from talking.face import align_face
from talking.models import MOTION_CLASSES
from talking.training.motion import fit_mouth_basis


@pytest.fixture(scope="module")
def opened():
    model = MOTION_CLASSES["optical"](resolution=128)
    model.basis.copy_(torch.from_numpy(fit_mouth_basis(styles=12, samples=20)))
    photo, _ = render_face(0, 320, jaw=0.6)
    face = align_face(photo, 128)
    closed, closed_face, interior = close_mouth(photo, face, model.eval())
    return photo, face, closed, closed_face, interior


def _opening(landmarks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) bool: inside the inner lips of ``landmarks`` (68, 2), away from their edges."""
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[60:68]).astype(np.int32)], 1)
    return cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)


def test_opened_as_wide_as_the_photo_the_frame_shows_the_photos_own_inside(opened):
    photo, face, _, _, interior = opened
    points = face.box.mesh.ibug68()  # photo pixels
    points[[60, 64]] = points[[48, 54]]  # the closed face's lips meet from corner to corner
    inside = _opening(points, photo.shape)
    ys, xs = np.nonzero(inside)
    shown = interior(xs.astype(np.float32)[None], ys.astype(np.float32)[None], points)[0]  # (K, 3)
    own = photo[ys, xs].astype(np.float32)
    # the photo's own dark inside and teeth, where they were (to a pixel or so: the mesh's lip
    # edges are not the 68 points'): half as far from the photo as its mean colour is
    assert np.abs(shown - own).mean() < 0.6 * np.abs(own - own.mean(axis=0)).mean()


def test_opened_wider_the_dark_of_the_mouth_shows_between_the_teeth(opened):
    photo, face, _, _, interior = opened
    points = face.box.mesh.ibug68()
    points[[60, 64]] = points[[48, 54]]
    gap = points[66, 1] - points[62, 1]
    points[[65, 66, 67], 1] += 2 * gap  # the jaw drops a further two openings
    middle = (points[62] + points[66]) / 2
    shown = interior(np.array([[middle[0]]], np.float32), np.array([[middle[1]]], np.float32), points)[0, 0]
    np.testing.assert_allclose(shown, interior.dark, atol=1)
    assert interior.dark.sum() < photo[_opening(face.box.mesh.ibug68(), photo.shape)].sum(axis=1).mean()


def test_the_compositor_shows_the_photos_inside_not_the_rendering(opened):
    _, face, closed, closed_face, interior = opened
    compositor = Compositor(closed, face.matrix, 128, interior=interior)
    weight = np.zeros((128, 128), np.float32)
    weight[90:96, 56:72] = 1.0  # an opening at the lips
    grey = np.full((128, 128, 3), 128, np.uint8)
    frame = compositor(np.zeros((2, 128, 128), np.float32), grey, weight, closed_face.landmarks)
    plain = Compositor(closed, face.matrix, 128)(np.zeros((2, 128, 128), np.float32), grey, weight)
    changed = np.abs(frame.astype(int) - plain).max(axis=2) > 0
    assert changed.sum() > 100  # where the generator's grey showed, the photo's inside does
    # and only there: about the lips
    ys, xs = np.nonzero(changed)
    lips = face.box.mesh.ibug68()[48:68]
    assert np.all([xs.min(), ys.min()] > lips.min(axis=0) - 10)
    assert np.all([xs.max(), ys.max()] < lips.max(axis=0) + 10)


def test_the_pipeline_opens_an_open_photos_mouth_onto_its_own_teeth(opened):
    """Through the whole pipeline: the photo's mouth is closed, then opened by the motion onto
    the photo's own inside, not onto the generator's rendering."""
    from test_pipeline_io import tiny_pipeline

    photo, face = opened[:2]
    pipe = tiny_pipeline("optical")
    with torch.no_grad():
        pipe.generator.to_output.bias[3] = -20.0  # its blend mask leaves the whole opening to it
    parameters = np.zeros((8, 7), np.float32)
    parameters[4:, 0] = 1.0  # closed, then open
    frames = list(pipe(photo, np.zeros(8 * 882, np.float32), sample_rate=22050, motion=parameters).frames)
    inside = _opening(face.box.mesh.ibug68(), photo.shape)
    shut, wide = (frames[i][inside].astype(np.float32) for i in (0, 7))
    own = photo[inside].astype(np.float32)
    # closed: lips where the dark inside was; opened again (by this tiny predictor's own, lower
    # opening): the photo's dark inside and teeth, not the generator's (random) rendering
    shut_off, wide_off = (np.linalg.norm(frame.mean(axis=0) - own.mean(axis=0)) for frame in (shut, wide))
    assert shut_off > 30 and wide_off < 0.4 * shut_off


def test_a_photo_with_its_own_inside_needs_no_refined_inside(opened):
    """The refined inside never shows over a photo's own, so the pipeline does not make it."""
    _, face, closed, _, interior = opened
    assert Compositor(closed, face.matrix, 128).detail_share == 1.0  # a face 2.5x the crop
    assert Compositor(closed, face.matrix, 128, interior=interior).detail_share == 0.0


def test_a_compositor_with_the_photos_inside_refuses_a_frame_without_its_landmarks(opened):
    _, face, closed, _, interior = opened
    compositor = Compositor(closed, face.matrix, 128, interior=interior)
    weight = np.zeros((128, 128), np.float32)
    weight[90:96, 56:72] = 1.0
    with pytest.raises(ValueError, match="needs each frame's landmarks"):
        compositor(np.zeros((2, 128, 128), np.float32), np.zeros((128, 128, 3), np.uint8), weight)


def test_a_lip_edge_through_an_elliptic_openings_points_is_that_ellipse_and_ends_at_the_corners():
    """iBUG's chain samples an open mouth's edge at its corners, halfway out and in the middle;
    the curve through them follows an elliptic edge (a parabola would cut 1.2 px off at 80 % of
    the way out) and, past the corners, stays on the line between them."""
    from talking.mouth_interior import lip_edge

    u = np.array([-1.0, -0.45, 0.0, 0.45, 1.0])
    points = np.stack([32 + 12 * u, 50 - 5 * np.sqrt(1 - u**2)], axis=1)  # corners at y = 50
    x = 32 + 12 * np.array([0.0, 0.8, -0.8, 1.0, 1.3, -1.5])
    np.testing.assert_allclose(lip_edge(points, x)[:3], [45.0, 47.0, 47.0], atol=0.15)
    np.testing.assert_allclose(lip_edge(points, x)[3:], 50.0, atol=1e-9)
    tilted = points + np.stack([np.zeros(5), 0.1 * (points[:, 0] - 32)], axis=1)  # the head rolled
    np.testing.assert_allclose(lip_edge(tilted, np.array([32 + 12 * 1.3])), 50 + 0.1 * 12 * 1.3, atol=1e-9)
