"""Faces in photos: find the face, align it to the canonical crop, paste a generated one back.

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
- :class:`Paster` does the inverse per video frame: it warps the generated crop back into the
  photo inside a feathered ellipse, with the crop's skin colour matched to the photo's, and leaves
  every pixel outside the ellipse's support untouched.
"""

from __future__ import annotations

import dataclasses
import math

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
# Paste-back region in [0, 1] crop coordinates: an ellipse over brows, eyes, mouth and jaw, whose
# feathered edge stays inside the crop.
MASK_CENTER = (0.50, 0.54)
MASK_AXES = (0.36, 0.44)
FEATHER = 0.03  # Gaussian sigma of the mask's edge, as a fraction of the crop side
# Skin sampled for colour matching: the mask's core minus the eye band and the mouth.
EYE_BAND = (0.32, 0.50)
MOUTH_BOX = (0.34, 0.64, 0.66, 0.86)  # x0, y0, x1, y1


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


# ---------------------------------------------------------------------------------------------
# Paste-back
# ---------------------------------------------------------------------------------------------


def face_mask(resolution: int = RESOLUTION, feather: float = FEATHER) -> np.ndarray:
    """(R, R) float32 blend weight in [0, 1]: 1 over the face, a Gaussian edge of sigma
    ``feather * R`` and exactly 0 outside the ellipse ``MASK_CENTER``, ``MASK_AXES``."""
    radius = math.ceil(3 * feather * resolution)
    core = np.zeros((resolution, resolution), np.float32)
    axes = [max(1, round(a * resolution) - radius) for a in MASK_AXES]
    center = [round(c * resolution) for c in MASK_CENTER]
    cv2.ellipse(core, center, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    if radius > 0:
        core = cv2.GaussianBlur(core, (2 * radius + 1,) * 2, feather * resolution)
    core[core < 1 / 512] = 0.0  # no faint halo: below half a grey level the photo stays exact
    return core


def skin_region(resolution: int = RESOLUTION) -> np.ndarray:
    """(R, R) bool: cheeks, nose and forehead of the canonical crop (no eyes, no mouth)."""
    region = face_mask(resolution) > 0.99
    rows = np.arange(resolution) / resolution
    region[(rows >= EYE_BAND[0]) & (rows < EYE_BAND[1])] = False
    x0, y0, x1, y1 = (round(v * resolution) for v in MOUTH_BOX)
    region[y0:y1, x0:x1] = False
    return region


def colour_statistics(crop: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (3,), (3,) of ``crop`` (R, R, 3) in ``region``."""
    pixels = crop[region].astype(np.float64)
    return pixels.mean(axis=0), pixels.std(axis=0)


def colour_transfer_lut(source: tuple[np.ndarray, np.ndarray],
                        target: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(1, 256, 3) uint8 per-channel lookup table mapping mean/std ``source`` onto ``target``
    (gain clipped to [0.5, 2] so that a flat region cannot blow the colours up)."""
    gain = np.clip(target[1] / np.maximum(source[1], 1e-3), 0.5, 2.0)
    values = np.arange(256, dtype=np.float64)[:, None]
    table = (values - source[0]) * gain + target[0]
    return np.clip(table + 0.5, 0, 255).astype(np.uint8)[None]


class Paster:
    """Pastes generated crops back into one photo; built once per clip, called once per frame.

    Built from the photo (H, W, 3) uint8 and its :class:`AlignedFace`: the inverse warp, the
    region of the photo it covers, and the feathered mask warped into that region are computed
    here. The colour transfer is fitted on the first crop pasted and then kept for the whole clip,
    so that the skin does not flicker as the mouth opens and closes.
    """

    def __init__(self, photo: np.ndarray, aligned: AlignedFace, feather: float = FEATHER):
        resolution = aligned.crop.shape[0]
        self.photo = photo
        self.region = skin_region(resolution)
        self.target = colour_statistics(aligned.crop, self.region)
        self.lut: np.ndarray | None = None
        x0, y0, x1, y1 = _preimage_bounds(aligned.matrix, resolution, photo.shape, margin=2)
        self.inverse = cv2.invertAffineTransform(aligned.matrix)
        self.inverse[:, 2] -= (x0, y0)
        alpha = cv2.warpAffine(face_mask(resolution, feather), self.inverse, (x1 - x0, y1 - y0),
                               flags=cv2.INTER_LINEAR, borderValue=0.0)
        alpha[alpha < 1 / 512] = 0.0
        # Shrink the region to the mask's support: fewer pixels to warp and blend per frame.
        rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
        top, left = int(rows[0]), int(cols[0])
        self.alpha = np.ascontiguousarray(alpha[top:rows[-1] + 1, left:cols[-1] + 1])
        self.inverse[:, 2] -= (left, top)
        self.origin = (y0 + top, x0 + left)

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """(R, R, 3) uint8 generated crop -> (H, W, 3) uint8 photo with the face replaced."""
        if self.lut is None:
            self.lut = colour_transfer_lut(colour_statistics(crop, self.region), self.target)
        face = cv2.warpAffine(cv2.LUT(crop, self.lut), self.inverse, self.alpha.shape[::-1],
                              flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        frame = self.photo.copy()
        top, left = self.origin
        roi = frame[top:top + self.alpha.shape[0], left:left + self.alpha.shape[1]]
        roi[:] = cv2.blendLinear(face, roi, self.alpha, 1.0 - self.alpha)
        return frame


def paste_back(photo: np.ndarray, crop: np.ndarray, aligned: AlignedFace,
               feather: float = FEATHER) -> np.ndarray:
    """One generated crop (R, R, 3) back into ``photo`` (H, W, 3); for video use :class:`Paster`."""
    return Paster(photo, aligned, feather)(crop)
