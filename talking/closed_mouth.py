"""A photo whose mouth is open, closed once per clip at its own resolution.

Every frame is the photo moved by a smooth flow (:mod:`talking.composite`). A smooth flow cannot
close an open mouth: where the lips must meet, the pixels between them (teeth, the dark inside)
can only be squeezed into a thin band, never hidden. So the mouth is closed once, before any
frame is made, by a *fold* along the line where the lips meet, column by column of the upright
face (the photo turned by the alignment's rotation):

1. the photo's own inner-lip contour, 11 points per lip from MediaPipe's mesh, gives in every
   column between the mouth's corners the upper lip's inner edge ``u(x)`` and the lower one's
   ``l(x)``; the lips meet on the line half way, ``c(x)``;
2. above the line, the band from the nose's base down to ``c(x)`` shows the photo's band from the
   nose's base down to ``u(x)`` (stretched); below it, the band from ``c(x)`` down to the chin
   shows the photo's from ``l(x)`` (compressed: the jaw comes up). What lay between the lips,
   teeth and the dark inside, is shown nowhere; each lip's edge is taken :data:`PRESS` of the
   opening past the contour, so that what meets is lip, not the blend of lip and teeth;
3. at the corners ``u = l = c``, and at the nose, the chin and beyond the corners the map is the
   identity, so the fold is seamless everywhere but along the lips;
4. where the lips meet, the seam is shaded as the corpus draws its lip line (without it, lips
   that meet show no line, and MediaPipe read the pink band as parted lips: 0.05), fading with
   the opening towards the corners.

An earlier version moved only the 68 points' three inner-lip pairs (thin-plate fields): between
them an open smile's curved edge was not followed, and the closed mouth kept a broken line of
teeth that MediaPipe still read as a gap of 0.06 (astronaut), against 0.11 open.

The closed photo, its crop and its landmarks (the mesh moved by the same fold) then stand in for
the photo: in silence and on /p b m/ its lips meet, and the generator renders the inside of the
mouth only where the predicted motion opens it (as for a photo taken with the mouth closed).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from talking import realface
from talking.face import AlignedFace, warp_to_crop
from talking.ibug import INNER_MOUTH_CORNERS, OUTER_MOUTH_CORNERS
from talking.models.motion import INNER_LIP_LOWER, INNER_LIP_UPPER, MotionPredictor
from talking.mouth_interior import MouthInterior
from talking.realface import FaceMesh

PRESS = 0.15  # of the opening: how far past its contour each lip's edge is taken
# The seam where the lips meet, shaded as the corpus draws its lip line (talking/corpus/mouth.py):
# 0.55 of the lips' colour on a line 0.005 of the crop's side thick (here its Gaussian's FWHM)
SEAM_SHADE = 0.55
SEAM_WIDTH = 0.005
# A photo whose opening reads below this much jaw_open is left as it is: MediaPipe reads closed
# corpus lips as up to 0.17 (and their mouths as open 0.24-0.74 at a true jaw_open of 0.6)
OPEN_ABOVE = 0.2


def close_mouth(photo: np.ndarray, face: AlignedFace,
                predictor: MotionPredictor) -> tuple[np.ndarray, AlignedFace, MouthInterior | None]:
    """(photo (H, W, 3) uint8, its aligned face, the inside of its mouth) with the mouth closed;
    the photo and face unchanged, and no inside, when the photo's mouth is closed already (its
    opening reads below :data:`OPEN_ABOVE`)."""
    source = torch.from_numpy(face.landmarks).float()[None]  # (1, 68, 2) crop pixels
    with torch.no_grad():
        if float(predictor.source_parameters(source)[0, 0]) < OPEN_ABOVE:
            return photo, face, None
    fold = LipFold(face.box.mesh, face.matrix, face.crop.shape[0])
    closed = fold.apply(photo)
    landmarks = FaceMesh(fold.forward(face.box.mesh.points)).transformed(face.matrix).ibug68()
    contact = (landmarks[INNER_LIP_UPPER] + landmarks[INNER_LIP_LOWER]) / 2  # (3, 2) met pairs
    landmarks[INNER_LIP_UPPER] = landmarks[INNER_LIP_LOWER] = contact
    # the lips meet from corner to corner, as the fold closed them (from the outer corners on)
    landmarks[list(INNER_MOUTH_CORNERS)] = landmarks[list(OUTER_MOUTH_CORNERS)]
    closed_face = dataclasses.replace(face, crop=warp_to_crop(closed, face.matrix, face.crop.shape[0]),
                                      landmarks=landmarks)
    return closed, closed_face, MouthInterior(photo, fold)


class LipFold:
    """The fold that closes a mouth (module docstring), set up once from a photo's ``mesh``
    (:class:`~talking.realface.FaceMesh`, photo pixels) and its alignment ``matrix`` (2, 3) into
    a crop ``resolution`` pixels wide."""

    def __init__(self, mesh: FaceMesh, matrix: np.ndarray, resolution: int) -> None:
        scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))  # crop pixels per photo pixel
        self.rotation = matrix[:, :2] / scale  # (2, 2) photo -> upright, photo pixel units
        self.seam_sigma = SEAM_WIDTH * resolution / scale / (2 * np.sqrt(2 * np.log(2)))
        contours = (realface.INNER_LIP_UPPER_CONTOUR, realface.INNER_LIP_LOWER_CONTOUR)
        self.origin = mesh.points[list(contours[0] + contours[1])].mean(axis=0)
        upright = self.upright(mesh.points)  # (468, 2)
        upper, lower = (_to_corners(upright[list(lip)], upright[list(realface.OUTER_MOUTH_CORNERS)])
                        for lip in contours)
        self.columns = np.sort(np.concatenate([upper[:, 0], lower[:, 0]]))  # where u, l are known
        self.upper_edge = _curve(upper, self.columns)
        self.lower_edge = np.maximum(_curve(lower, self.columns), self.upper_edge)
        self.top, self.bottom = upright[realface.NOSE_BASE, 1], upright[realface.CHIN, 1]
        # the photo's pixels the fold can touch: the upright box between the corners, nose and chin
        corners = np.array([[x, y] for x in self.columns[[0, -1]] for y in (self.top, self.bottom)])
        box = self.to_photo(corners)
        self.low = np.floor(box.min(axis=0)).astype(int)
        self.high = np.ceil(box.max(axis=0)).astype(int) + 1

    def upright(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) photo pixels -> the upright face's (x right, y down; photo pixel units)."""
        return (points - self.origin) @ self.rotation.T

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) upright points -> photo pixels (the rotation's inverse is its transpose)."""
        return points @ self.rotation + self.origin

    def edges(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The photo's upper and lower inner-lip edges (y) at upright columns ``x``."""
        return np.interp(x, self.columns, self.upper_edge), np.interp(x, self.columns, self.lower_edge)

    def _pressed(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """At upright columns ``x``: the pressed upper and lower edges, the contact line, and
        whether the column lies between the corners."""
        upper, lower = self.edges(x)
        press = PRESS * (lower - upper)
        inside = (x > self.columns[0]) & (x < self.columns[-1])
        return upper - press, lower + press, (upper + lower) / 2, inside

    def box(self, shape: tuple[int, ...]) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
        """The pixels the fold can touch in an image of ``shape`` (H, W, ...): their (rows,
        columns) slices and their upright coordinates x, y, (h, w) each (empty when none)."""
        x0, y0 = np.maximum(self.low, 0)
        x1, y1 = np.maximum(np.minimum(self.high, shape[1::-1]), (x0, y0))
        grid = np.stack(np.meshgrid(np.arange(x0, x1), np.arange(y0, y1)), axis=-1).astype(np.float64)
        x, y = np.moveaxis(self.upright(grid), -1, 0)
        return (slice(y0, y1), slice(x0, x1)), x, y

    def apply(self, photo: np.ndarray) -> np.ndarray:
        """``photo`` (H, W, 3) uint8 with its mouth folded shut: a new array."""
        part, x, y = self.box(photo.shape)
        closed = photo.copy()
        if x.size == 0:
            return closed
        upper, lower, contact, inside = self._pressed(x)
        # backward map: the photo's row each output row shows
        above = (y >= self.top) & (y < contact)
        below = (y >= contact) & (y <= self.bottom)
        source_y = y.copy()
        source_y[above] = _rescale(y, self.top, contact, upper)[above]
        source_y[below] = _rescale(y, self.bottom, contact, lower)[below]
        source_y = np.where(inside, source_y, y)
        source = self.to_photo(np.stack([x, source_y], axis=-1))  # (h, w, 2)
        folded = cv2.remap(photo, source[..., 0].astype(np.float32), source[..., 1].astype(np.float32),
                           cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        opening = np.maximum(lower - upper, 0)
        fade = np.sqrt(opening / max(float(opening.max()), 1e-6)) * inside
        seam = 1 - (1 - SEAM_SHADE) * fade * np.exp(-0.5 * ((y - contact) / self.seam_sigma) ** 2)
        closed[part] = np.clip(folded * seam[..., None] + 0.5, 0, 255).astype(np.uint8)
        return closed

    def forward(self, points: np.ndarray) -> np.ndarray:
        """(K, 2) photo points moved where the fold shows them; points between the lips (their
        inner edges, the teeth) go onto the contact line."""
        x, y = self.upright(np.asarray(points, np.float64)).T
        upper, lower, contact, inside = self._pressed(x)
        moved = y.copy()
        lip_above = inside & (y >= self.top) & (y <= upper)
        lip_below = inside & (y >= lower) & (y <= self.bottom)
        between = inside & (y > upper) & (y < lower)
        moved[lip_above] = _rescale(y, self.top, upper, contact)[lip_above]
        moved[lip_below] = _rescale(y, self.bottom, lower, contact)[lip_below]
        moved[between] = contact[between]
        return self.to_photo(np.stack([x, moved], axis=-1)).astype(np.float32)


def _to_corners(edge: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """An inner-lip edge (K, 2) upright, corner to corner, widened so that its ends lie under the
    mouth's outer ``corners`` (2, 2): the inner corners lie inside the dark of the mouth's corners."""
    centre = edge[[0, -1], 0].mean()
    gain = np.where(edge[:, 0] < centre, (corners[0, 0] - centre) / (edge[0, 0] - centre),
                    (corners[1, 0] - centre) / (edge[-1, 0] - centre))
    return np.stack([centre + (edge[:, 0] - centre) * gain, edge[:, 1]], axis=-1)


def _curve(points: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """A lip edge (K, 2) upright points, as y at ``columns`` (sorted), flat beyond its ends."""
    order = np.argsort(points[:, 0])
    return np.interp(columns, points[order, 0], points[order, 1])


def _rescale(y: np.ndarray, anchor: float, end: np.ndarray, end_to: np.ndarray) -> np.ndarray:
    """``y`` mapped linearly so that ``anchor`` stays and ``end`` goes to ``end_to``."""
    span = np.where(np.abs(end - anchor) > 1e-6, end - anchor, 1e-6)
    return anchor + (y - anchor) * (end_to - anchor) / span
