"""Faces in photos: find the face, align it to the canonical crop, paste a generated one back.

The canonical frame (``talking.config.CANONICAL_*``) puts the eye centres at (0.36, 0.42) and
(0.64, 0.42) and the mouth centre at (0.50, 0.74) of a square crop; the synthetic renderer draws
its faces there, so aligning photos the same way is what lets the model transfer to them.

- :func:`detect_face` runs OpenCV's bundled Haar frontal-face cascade on a copy of the photo
  downscaled to at most ``DETECTION_MAX_SIDE`` pixels (again after CLAHE contrast equalisation
  when that finds nothing) and keeps the largest face.
- The box alone places the eyes and the mouth by ``BOX_LANDMARKS``, the average geometry of
  frontal faces under this detector; faces vary around it by about a tenth of their eye distance.
  The eye cascade, run on the upper half of the box, then looks for the eyes themselves: a pair
  near the box's estimate is taken, with the mouth below it in the canonical proportions, so that
  head roll is followed too. (On 100 of the renderer's faces in a 640 x 480 photo: 74 detected,
  eyes found in 63 of them, median error 0.055 eye distances against 0.12 from the box alone;
  the eyes and mouth land within 2.2 px of the canonical ones in a 128 crop for half the faces,
  within 6 px for 90%.) :func:`align_face` fits the similarity transform (rotation, uniform scale,
  translation) that maps the three points onto the canonical ones and resamples the crop,
  anti-aliased through an image pyramid when it shrinks the face.
- :class:`Paster` does the inverse per video frame: it warps the generated crop back into the
  photo inside a feathered ellipse, with the crop's skin colour matched to the photo's, and leaves
  every pixel outside the ellipse's support untouched.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import cv2
import numpy as np

from talking.config import CANONICAL_LEFT_EYE, CANONICAL_MOUTH, CANONICAL_RIGHT_EYE, RESOLUTION
from talking.errors import TalkingError

DETECTION_MAX_SIDE = 640  # Haar runs at this size: ~80 ms a photo, faces >= 1/10 of the short side
MIN_FACE_FRACTION = 0.1
EYE_FACE_SIDE = 200  # face box side at which the eye cascade runs
# Eyes found farther than this (in eye distances) from where the box puts them are not trusted.
EYE_TOLERANCE = 0.35
# The mouth lies this many eye distances below the eyes' midpoint, as in the canonical frame.
MOUTH_BELOW_EYES = (CANONICAL_MOUTH[1] - CANONICAL_LEFT_EYE[1]) / (
    CANONICAL_RIGHT_EYE[0] - CANONICAL_LEFT_EYE[0])
# Left eye, right eye, mouth centre in [0, 1] coordinates of the Haar frontal-face box. Measured
# on 100 neutral faces of the synthetic renderer (medians: eyes 0.31 / 0.69 across and 0.39 down,
# mouth 0.83 down, spread 0.06) and, for the mouth, pulled towards the 0.80 of real faces.
BOX_LANDMARKS = np.array([(0.31, 0.39), (0.69, 0.39), (0.50, 0.82)])
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
    """A face in a photo: the Haar box in pixels and, when the eye cascade found them, the eye
    centres ``eyes`` (2, 2): left then right in the image, (x, y) pixels."""

    x: float
    y: float
    width: float
    height: float
    eyes: np.ndarray | None = None

    def box_landmarks(self) -> np.ndarray:
        """(3, 2) left-eye, right-eye and mouth centres placed by ``BOX_LANDMARKS`` alone."""
        # Pixel centres are integers, so the box spans [x - 0.5, x + width - 0.5].
        return BOX_LANDMARKS * (self.width, self.height) + (self.x - 0.5, self.y - 0.5)

    def landmarks(self) -> np.ndarray:
        """(3, 2) left-eye, right-eye and mouth centres in photo pixels: the eyes found, with
        the mouth below them in the canonical proportions (so that the roll is followed), or
        else the box's estimate."""
        if self.eyes is None:
            return self.box_landmarks()
        left, right = self.eyes
        across = right - left
        below = np.array([-across[1], across[0]])  # ``across`` turned a right angle, y down
        return np.stack([left, right, (left + right) / 2 + MOUTH_BELOW_EYES * below])

    def scaled(self, factor: float) -> FaceBox:
        """The same face in an image resized by ``factor``."""
        eyes = None if self.eyes is None else (self.eyes + 0.5) * factor - 0.5
        return FaceBox(self.x * factor, self.y * factor, self.width * factor,
                       self.height * factor, eyes)


@functools.cache
def _cascade(filename: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, filename))
    if cascade.empty():
        raise TalkingError(f"OpenCV's {filename} is missing: install opencv-python-headless<5.")
    return cascade


def detect_face(image: np.ndarray, name: str = "the photo") -> FaceBox:
    """The largest face in ``image`` (H, W, 3) uint8 RGB; :class:`TalkingError` if none."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, DETECTION_MAX_SIDE / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    boxes = _haar_faces(small, min_neighbours=5)
    if len(boxes) == 0:
        # Low-contrast faces (dark skin in dim light, backlight) show after local contrast
        # equalisation, which also shows more false faces: hence the stricter vote.
        boxes = _haar_faces(cv2.createCLAHE(2.0, (8, 8)).apply(small), min_neighbours=8)
    if len(boxes) == 0:
        raise TalkingError(
            f"No face found in {name}: use a photo with one clearly visible, roughly frontal face."
        )
    box = FaceBox(*(float(v) for v in max(boxes, key=lambda b: b[2] * b[3]))).scaled(1.0 / scale)
    return dataclasses.replace(box, eyes=_find_eyes(grey, box))


def _haar_faces(grey: np.ndarray, min_neighbours: int) -> np.ndarray:
    """(K, 4) x, y, w, h boxes of frontal faces at least ``MIN_FACE_FRACTION`` of the short side."""
    min_side = max(24, round(min(grey.shape) * MIN_FACE_FRACTION))
    return _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=min_neighbours, minSize=(min_side, min_side))


def _find_eyes(grey: np.ndarray, box: FaceBox) -> np.ndarray | None:
    """(2, 2) eye centres in photo pixels from the eye cascade in the upper half of ``box``, or
    None unless it finds a pair near where the box puts the eyes (within ``EYE_TOLERANCE``)."""
    x, y = max(0, round(box.x)), max(0, round(box.y))
    face = grey[y:y + round(box.height), x:x + round(box.width)]
    if face.size == 0:
        return None
    # The eye cascade's window is 20 px: look at the face at a size where eyes span ~35 px.
    zoom = EYE_FACE_SIDE / face.shape[1]
    face = cv2.resize(face, (EYE_FACE_SIDE, round(face.shape[0] * zoom)),
                      interpolation=cv2.INTER_AREA)
    top = int(0.15 * face.shape[0])
    found = _cascade("haarcascade_eye.xml").detectMultiScale(
        face[top:int(0.6 * face.shape[0])], scaleFactor=1.1, minNeighbors=2,
        minSize=(EYE_FACE_SIDE // 10,) * 2, maxSize=(EYE_FACE_SIDE // 3,) * 2)
    centres = [np.array((x + (ex + ew / 2) / zoom - 0.5, y + (top + ey + eh / 2) / zoom - 0.5))
               for ex, ey, ew, eh in found]
    expected = box.box_landmarks()[:2]
    tolerance = EYE_TOLERANCE * np.hypot(*(expected[1] - expected[0]))
    pairs = [np.stack([left, right]) for left in centres for right in centres
             if np.hypot(*(left - expected[0])) < tolerance
             and np.hypot(*(right - expected[1])) < tolerance]
    if not pairs:
        return None
    return min(pairs, key=lambda pair: np.abs(pair - expected).sum())


# ---------------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class AlignedFace:
    """A face mapped into the canonical frame.

    crop: (R, R, 3) uint8 RGB; matrix: (2, 3) float64 affine from photo pixels to crop pixels;
    box: the detection it came from.
    """

    crop: np.ndarray
    matrix: np.ndarray
    box: FaceBox


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
    the canonical frame at ``resolution`` x ``resolution``."""
    box = box or detect_face(image, name)
    matrix = similarity_transform(box.landmarks(), canonical_landmarks(resolution))
    return AlignedFace(warp_to_crop(image, matrix, resolution), matrix, box)


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
