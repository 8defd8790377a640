"""Faces for tests, from the synthetic corpus renderer: a speaker's face and where its eyes and
mouth are."""

import cv2
import numpy as np

from talking.corpus.appearance import sample_face_style, sample_scene_style
from talking.corpus.geometry import face_frame
from talking.corpus.render import FaceRenderer


def render_face(seed: int, size: int, jaw: float = 0.0, roll: float = 0.0):
    """Speaker ``seed``'s face, (size, size, 3) uint8, with the mouth opened by ``jaw`` in [0, 1]
    and the head rolled by ``roll`` degrees, and its left-eye, right-eye and mouth centres (3, 2)
    in pixels."""
    rng = np.random.default_rng(seed)
    style, scene = sample_face_style(rng, feminine=bool(seed % 2)), sample_scene_style(rng)
    mouth = np.zeros(7)
    mouth[0] = jaw
    frame = face_frame(style, mouth, eye_openness=1.0, brow_raise=0.0, gaze=np.zeros(2))
    image, landmarks = FaceRenderer(style, scene, size).render(frame, np.zeros(3), roll)
    points = [landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[48:68].mean(0)]
    return image, np.array(points)


def textured_photo(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 blurred noise: a background with detail but no face."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 4)


def photo_with_face(seed: int, x: int, y: int, size: int, photo: np.ndarray | None = None):
    """``photo`` (default: a textured one) with speaker ``seed``'s face pasted at (x, y), and the
    face's eye and mouth centres (3, 2) in photo pixels."""
    photo = textured_photo() if photo is None else photo.copy()
    face, points = render_face(seed, size)
    photo[y:y + size, x:x + size] = face
    return photo, points + (x, y)
