"""Faces in photos: find the face and align it to the canonical crop, with its landmarks.

The canonical frame (``talking.config.CANONICAL_*``) puts the eye centres at (0.36, 0.42) and
(0.64, 0.42) and the mouth centre at (0.50, 0.74) of a square crop; the synthetic renderer draws
its faces there, so aligning photos the same way is what lets the model transfer to them.

- :func:`detect_face` finds the largest face with MediaPipe Face Mesh, a detector trained on
  real faces (:func:`talking.realface.find_face_mesh`: face detection in windows for small
  faces, the photo turned by up to 180 degrees for rolled ones), on a copy of the photo
  downscaled to at most ``DETECTION_MAX_SIDE`` pixels. The eye centres and the mouth centre are
  read off the mesh. When no face is found, or one too small to animate, the error says what to
  change. (OpenCV's Haar cascades, used before, found 29 of 48 synthetic faces of 80 and 150
  pixels in a 640 x 480 photo, and no face rolled by 30 degrees; the mesh finds 45, and real
  faces at any roll.)
- :func:`align_face` fits the similarity transform (rotation, uniform scale, translation) that
  maps the three points onto the canonical ones and resamples the crop, anti-aliased through an
  image pyramid when it shrinks the face; the photo's 68 iBUG landmarks come along, mapped into
  the crop.

The way back, from generated crops to video frames at the photo's resolution, is
:mod:`talking.composite`.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from talking.config import CANONICAL_LEFT_EYE, CANONICAL_MOUTH, CANONICAL_RIGHT_EYE, RESOLUTION
from talking.errors import TalkingError
from talking.realface import FaceMesh, find_face_mesh

DETECTION_MAX_SIDE = 1024  # faces are searched at this size (MAX_PHOTO_SIDE: photos as generated)
# Below this many pixels between the eye centres a face is too small to animate: the canonical
# 128 crop has 36, and the mesh's points lose their precision.
MIN_EYE_DISTANCE = 12
MIN_PHOTO_SIDE = 200  # a photo smaller than this on its long side is called too small


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class FaceBox:
    """A face in a photo: the bounding box of its mesh in pixels (x, y, width, height) and the
    mesh itself (:class:`talking.realface.FaceMesh`, in photo pixels)."""

    x: float
    y: float
    width: float
    height: float
    mesh: FaceMesh

    @classmethod
    def from_mesh(cls, mesh: FaceMesh) -> FaceBox:
        (x0, y0), (x1, y1) = mesh.points.min(axis=0), mesh.points.max(axis=0)
        return cls(float(x0), float(y0), float(x1 - x0), float(y1 - y0), mesh)

    def landmarks(self) -> np.ndarray:
        """(3, 2) left-eye, right-eye and mouth centres in photo pixels."""
        return self.mesh.eyes_and_mouth()


def detect_face(image: np.ndarray, name: str = "the photo") -> FaceBox:
    """The largest face in ``image`` (H, W, 3) uint8 RGB; :class:`TalkingError` saying what to
    change if there is none, or if it is too small."""
    height, width = image.shape[:2]
    scale = min(1.0, DETECTION_MAX_SIDE / max(height, width))
    small = image if scale == 1 else cv2.resize(image, None, fx=scale, fy=scale,
                                                interpolation=cv2.INTER_AREA)
    mesh = find_face_mesh(small)
    if mesh is None:
        if max(height, width) < MIN_PHOTO_SIDE:
            raise TalkingError(f"No face found in {name}: at {width}x{height} pixels the photo is too "
                               f"small; use a larger one (or a larger --max-side).")
        raise TalkingError(f"No face found in {name}: use a photo with one clearly visible face "
                           "looking at the camera; if the face is small, crop the photo closer to it.")
    mesh = mesh.transformed(np.array([[1 / scale, 0, (1 / scale - 1) / 2],
                                      [0, 1 / scale, (1 / scale - 1) / 2]]))
    left, right, _ = mesh.eyes_and_mouth()
    eyes = float(np.hypot(*(right - left)))
    if eyes < MIN_EYE_DISTANCE:
        raise TalkingError(
            f"The face in {name} is too small ({eyes:.0f} pixels between the eyes, at least "
            f"{MIN_EYE_DISTANCE} needed): crop the photo closer to the face, use a larger one, "
            "or a larger --max-side.")
    return FaceBox.from_mesh(mesh)


# ---------------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class AlignedFace:
    """A face mapped into the canonical frame.

    crop: (R, R, 3) uint8 RGB; matrix: (2, 3) float64 affine from photo pixels to crop pixels;
    box: the detection it came from; landmarks: (68, 2) float32 the photo's iBUG points in crop
    pixels (:func:`align_face` always sets them).
    """

    crop: np.ndarray
    matrix: np.ndarray
    box: FaceBox
    landmarks: np.ndarray | None = None


def canonical_landmarks(resolution: int = RESOLUTION) -> np.ndarray:
    """(3, 2) left-eye, right-eye and mouth centres of the canonical crop, in its pixels
    (normalised ``u`` is pixel ``u * R - 0.5``, as the renderer draws them)."""
    return np.array([CANONICAL_LEFT_EYE, CANONICAL_RIGHT_EYE, CANONICAL_MOUTH]) * resolution - 0.5


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 3) rotation + uniform scale + translation mapping points ``source`` (K, 2) onto
    ``target`` (K, 2) in the least-squares sense (closed form, no reflection)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    s, t = source - source_mean, target - target_mean
    norm = (s ** 2).sum()
    a = (s * t).sum() / norm
    b = (s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum() / norm
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (target_mean - linear @ source_mean)[:, None]])


def align_face(image: np.ndarray, resolution: int = RESOLUTION, box: FaceBox | None = None,
               name: str = "the photo") -> AlignedFace:
    """Detect the face in ``image`` (H, W, 3) uint8 (unless ``box`` is given) and crop it into
    the canonical frame at ``resolution`` x ``resolution``, with its landmarks."""
    box = box or detect_face(image, name)
    matrix = similarity_transform(box.landmarks(), canonical_landmarks(resolution))
    landmarks = box.mesh.transformed(matrix).ibug68()
    return AlignedFace(warp_to_crop(image, matrix, resolution), matrix, box, landmarks)


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, resolution: int) -> np.ndarray:
    """Resample ``image`` (H, W, 3) through ``matrix`` (photo -> crop) into (R, R, 3).

    Only the part of the photo that the crop sees is touched; while the crop shrinks it more than
    twofold, that part is halved with ``pyrDown`` first, so that the result is not aliased.
    """
    matrix = np.array(matrix, dtype=np.float64)
    x0, y0, x1, y1 = _preimage_bounds(matrix, resolution, image.shape, margin=4)
    image = image[y0:y1, x0:x1]
    matrix[:, 2] += matrix[:, :2] @ (x0, y0)
    while abs(np.linalg.det(matrix[:, :2])) < 0.25 and min(image.shape[:2]) > 1:
        image = cv2.pyrDown(image)
        matrix[:, :2] *= 2.0
    return cv2.warpAffine(image, matrix, (resolution, resolution), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _preimage_bounds(matrix: np.ndarray, resolution: int, shape: tuple[int, ...],
                     margin: int = 0) -> tuple[int, int, int, int]:
    """Integer bounds x0, y0, x1, y1 in the photo of the crop's preimage, clipped to the photo."""
    corners = np.array([(0, 0), (resolution, 0), (0, resolution), (resolution, resolution)], float)
    points = cv2.transform(corners[None], cv2.invertAffineTransform(matrix))[0]
    height, width = shape[:2]
    x0, y0 = np.clip(np.floor(points.min(axis=0)).astype(int) - margin, 0, (width - 1, height - 1))
    x1, y1 = np.clip(np.ceil(points.max(axis=0)).astype(int) + margin, (x0 + 1, y0 + 1),
                     (width, height))
    return int(x0), int(y0), int(x1), int(y1)
