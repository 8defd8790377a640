"""The full-resolution composite: the photo's own pixels move, the rendering fills the mouth."""

import cv2
import numpy as np
import pytest

from talking.composite import Compositor, ellipse_weight, opening_weight, rendering_weight
from talking.face import similarity_transform

R = 64


def detailed_photo(height=480, width=640, seed=0) -> np.ndarray:
    """A photo full of fine detail (noise at several scales)."""
    rng = np.random.default_rng(seed)
    photo = np.zeros((height, width, 3), np.float32)
    for scale in (1, 4, 16):
        noise = rng.uniform(0, 255, (height // scale + 1, width // scale + 1, 3)).astype(np.float32)
        photo += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) / 3
    return np.clip(photo, 0, 255).astype(np.uint8)


def face_matrix(scale: float, offset=(200.0, 100.0)) -> np.ndarray:
    """Photo -> crop affine for a face ``scale`` times larger in the photo than in the crop."""
    crop_points = np.array([(0, 0), (R, 0), (0, R)], float)
    photo_points = crop_points * scale + offset
    return similarity_transform(photo_points, crop_points)


def test_no_motion_and_no_rendering_returns_the_photo_exactly():
    photo = detailed_photo()
    matrix = face_matrix(4.0)
    compositor = Compositor(photo, matrix, R)
    rendering = np.full((R, R, 3), 7, np.uint8)
    frame = compositor(np.zeros((2, R, R), np.float32), rendering, np.zeros((R, R), np.float32))
    assert np.array_equal(frame, photo)


def test_a_known_flow_moves_the_photo_by_the_expected_amount_at_full_resolution():
    photo = detailed_photo()
    scale = 4.0
    matrix = face_matrix(scale)
    compositor = Compositor(photo, matrix, R)
    flow = np.zeros((2, R, R), np.float32)
    flow[1] = 1.5  # every crop pixel samples the photo 1.5 crop pixels lower = 6 photo pixels
    frame = compositor(flow, np.zeros((R, R, 3), np.uint8), np.zeros((R, R), np.float32))
    # the zone's core, in photo pixels: crop (0.5, 0.8) is the zone's centre
    cx, cy = 200 + 0.5 * R * scale, 100 + 0.8 * R * scale
    core = frame[int(cy) - 10:int(cy) + 10, int(cx) - 20:int(cx) + 20].astype(float)
    shifted = photo[int(cy) - 4:int(cy) + 16, int(cx) - 20:int(cx) + 20].astype(float)
    unshifted = photo[int(cy) - 10:int(cy) + 10, int(cx) - 20:int(cx) + 20].astype(float)
    assert np.abs(core - shifted).mean() < 2.0  # moved by 6 px, at the photo's own detail
    assert np.abs(core - unshifted).mean() > 10.0


def test_pixels_outside_the_motion_zone_are_the_photos_own():
    photo = detailed_photo()
    matrix = face_matrix(4.0)
    compositor = Compositor(photo, matrix, R)
    rng = np.random.default_rng(1)
    flow = rng.normal(0, 2, (2, R, R)).astype(np.float32)
    frame = compositor(flow, rng.integers(0, 255, (R, R, 3), dtype=np.uint8), np.ones((R, R), np.float32))
    zone = cv2.warpAffine(ellipse_weight(R, (0.5, 0.8), (0.33, 0.24)), cv2.invertAffineTransform(matrix),
                          photo.shape[1::-1])
    outside = zone == 0
    assert np.array_equal(frame[outside], photo[outside])
    assert not np.array_equal(frame[~outside], photo[~outside])


def test_no_seam_at_the_edge_of_the_changed_region():
    """A whole-zone change (a rendering of flat grey) fades in: across the zone's edge the
    frame's gradient is no larger than the photo's own."""
    photo = detailed_photo()
    matrix = face_matrix(4.0)
    compositor = Compositor(photo, matrix, R)
    frame = compositor(np.zeros((2, R, R), np.float32), np.full((R, R, 3), 128, np.uint8),
                       np.ones((R, R), np.float32))
    zone = cv2.warpAffine(ellipse_weight(R, (0.5, 0.8), (0.33, 0.24)), cv2.invertAffineTransform(matrix),
                          photo.shape[1::-1])
    edge = (zone > 0.05) & (zone < 0.95)

    def gradient(image):
        grey = image.astype(np.float32).mean(axis=2)
        return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))

    assert gradient(frame)[edge].mean() <= gradient(photo)[edge].mean()


def test_the_rendering_shows_only_inside_an_open_mouth():
    landmarks = np.zeros((68, 2), np.float32)
    corners = np.array([(20, 40), (44, 40)], np.float32)
    upper = np.array([(26, 38), (32, 37), (38, 38)], np.float32)
    lower = np.array([(38, 46), (32, 47), (26, 46)], np.float32)
    landmarks[60], landmarks[64] = corners
    landmarks[61:64], landmarks[65:68] = upper, lower
    opening = opening_weight(landmarks, R)
    assert opening[42, 32] == pytest.approx(1.0)
    assert opening[20, 32] == 0 and opening[42, 5] == 0
    closed = landmarks.copy()
    closed[61:64, 1] = 40
    closed[65:68, 1] = 40
    assert opening_weight(closed, R).max() < 0.5
    mask = np.full((R, R), 0.25, np.float32)
    assert rendering_weight(mask, opening)[42, 32] == pytest.approx(0.75)


def open_mouth_landmarks() -> np.ndarray:
    """(68, 2) crop landmarks whose inner lips open 10 px at the middle, in the motion zone (the
    rest at 0): their smooth edges cross the middle at crop rows 45.5 and 54.5."""
    landmarks = np.zeros((68, 2), np.float32)
    landmarks[60], landmarks[64] = (20, 50), (44, 50)
    landmarks[61:64] = (26, 47), (32, 45), (38, 47)
    landmarks[65:68] = (38, 53), (32, 55), (26, 53)
    return landmarks


def test_the_opening_is_drawn_at_the_photos_resolution_with_a_sharp_edge():
    """A face 4x larger in the photo than in the crop: the crop's opening, upsampled, blurs the
    lips' inner edge over several photo pixels; the compositor's own opening crosses it in a
    third as many, in the same place."""
    scale = 4.0
    photo = detailed_photo()
    compositor = Compositor(photo, face_matrix(scale), R)
    landmarks = open_mouth_landmarks()
    opening = compositor.opening(landmarks)
    upsampled = compositor._to_box(opening_weight(landmarks, R))
    top, left = compositor.box[:2]
    middle = int(200 + 32 * scale) - left  # the mouth's middle column, top to bottom
    column, coarse = opening[:, middle], upsampled[:, middle]

    def edge_pixels(values):
        return np.count_nonzero((values > 0.05) & (values < 0.95))

    assert edge_pixels(column) <= edge_pixels(coarse) / 3
    inside = np.flatnonzero(column > 0.5) + top  # photo rows
    assert abs(inside[0] - (100 + 45.5 * scale)) <= 1 and abs(inside[-1] - (100 + 54.5 * scale)) <= 1
    closed = landmarks.copy()
    closed[61:68, 1] = 50
    assert compositor.opening(closed).max() == 0

    white = np.full((R, R, 3), 255, np.uint8)
    frame = compositor(np.zeros((2, R, R), np.float32), white, np.ones((R, R), np.float32), landmarks)
    x, y = int(200 + 32 * scale), int(100 + 50 * scale)
    assert (frame[y - 8:y + 8, x - 15:x + 15] == 255).all()  # inside: the rendering
    above = int(100 + 45.5 * scale) - 2  # two photo pixels above the upper lip's edge
    assert np.array_equal(frame[above - 5:above, x - 5:x + 5], photo[above - 5:above, x - 5:x + 5])


def test_the_refiners_inputs_are_the_rendering_upsampled_in_place_and_its_weight_the_opening():
    """A rendering with one bright crop pixel: at 4 pixels per crop pixel it is brightest in that
    pixel's 4x4 block of the window, and it shows only where the opening drawn at that scale is."""
    import torch

    from talking.composite import detail_grid, detail_inputs, opening_at

    scale, region = 4, (40, 16, 60, 48)  # top, left, bottom, right
    rendering = -torch.ones(1, 3, R, R)
    rendering[0, :, 50, 32] = 1.0
    share = torch.ones(1, R, R)
    landmarks = torch.from_numpy(open_mouth_landmarks())[None]
    upsampled, alpha = detail_inputs(rendering, share, landmarks, region, scale)
    assert upsampled.shape == (1, 3, 80, 128) and alpha.shape == (1, 1, 80, 128)
    row, col = divmod(int(upsampled[0, 0].argmax()), 128)
    assert (row // scale + region[0], col // scale + region[1]) == (50, 32)
    x, y = detail_grid(region, scale)
    expected = opening_at(open_mouth_landmarks(), x, y, scale)
    np.testing.assert_allclose(alpha[0, 0].numpy(), expected, atol=1e-6)
    assert alpha[0, 0, 40, 64] == pytest.approx(1.0) and alpha[0, 0, 2, 64] == 0  # the middle; above the lips
    assert (upsampled[0][:, alpha[0, 0] == 0] == 0).all()  # nothing where it does not show


def test_a_refined_inside_shows_in_the_opening_at_the_photos_resolution_and_nowhere_else():
    from talking.composite import Detail

    scale = 4.0
    photo = detailed_photo()
    compositor = Compositor(photo, face_matrix(scale), R)
    landmarks = open_mouth_landmarks()
    flow = np.zeros((2, R, R), np.float32)
    rendering = np.full((R, R, 3), 128, np.uint8)
    blend = np.ones((R, R), np.float32)
    plain = compositor(flow, rendering, blend, landmarks)
    red = np.zeros((20 * 4, 32 * 4, 3), np.uint8)
    red[..., 0] = 255
    refined = compositor(flow, rendering, blend, landmarks, Detail(red, top=40, left=16, scale=4))
    middle = (int(100 + 50 * scale), int(200 + 32 * scale))  # the opening's middle, photo pixels
    assert tuple(refined[middle]) == (255, 0, 0) and tuple(plain[middle]) == (128, 128, 128)
    opening = np.zeros(photo.shape[:2], np.float32)
    top, left, bottom, right = compositor.box
    opening[top:bottom, left:right] = compositor.opening(landmarks)
    np.testing.assert_array_equal(refined[opening == 0], plain[opening == 0])
    # a face no larger in the photo than in the crop shows the rendering made for that size
    same_size = Compositor(photo, face_matrix(1.0), R)
    np.testing.assert_array_equal(same_size(flow, rendering, blend, landmarks, Detail(red, 40, 16, 4)),
                                  same_size(flow, rendering, blend, landmarks))
