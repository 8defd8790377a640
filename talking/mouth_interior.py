"""The inside of an open photo's mouth, shown again wherever a frame opens the mouth.

A photo taken with the mouth open (an open smile: teeth) is closed once before the frames
(:mod:`talking.closed_mouth`), and the frames open it again by the predicted motion. What
shows in the opening then need not be invented: the photo's own teeth are there, at the photo's
resolution. Column by column of the upright face, between the frame's mouth corners:

- the upper half of the photo's opening (the upper teeth) hangs from the frame's upper inner lip
  and the lower half (the lower teeth) rests on the frame's lower inner lip, each moving with its
  lip, as teeth move with the skull and the jaw;
- a frame opened wider than the photo shows the dark of the mouth between them (the photo's own
  darkest inside), and one opened less shows each half only as far as the lips let it.

The compositor shows this image where the frame's mouth is open, instead of the generator's
rendering; a photo whose mouth was closed has no inside to show and keeps the generator's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from talking.ibug import INNER_LIP_LOWER_CHAIN, INNER_LIP_UPPER_CHAIN, INNER_MOUTH_CORNERS

if TYPE_CHECKING:
    from talking.closed_mouth import LipFold

DARK_SHARE = 0.02  # the dark of the mouth: the mean of this darkest share of the photo's inside
EDGE_POWERS = np.linspace(0.3, 1.5, 25)  # the lip edges' shapes :func:`lip_edge` chooses from
EDGE = 0.3  # of the photo's half opening: how far a half of the teeth fades into the dark beyond it


class MouthInterior:
    """The inside of ``photo``'s open mouth (H, W, 3) uint8, whose lips ``fold`` closes."""

    def __init__(self, photo: np.ndarray, fold: LipFold) -> None:
        self.photo, self.fold = photo, fold
        # the photo's inside: pixels between its lip edges, darkest share averaged
        part, x, y = fold.box(photo.shape)
        upper, lower = fold.edges(x)
        inside = photo[part][(y > upper) & (y < lower)].astype(np.float32)  # (K, 3)
        if len(inside) == 0:
            inside = photo[part].reshape(-1, 3).astype(np.float32)
        darkest = np.argsort(inside.sum(axis=1))[: max(1, int(len(inside) * DARK_SHARE))]
        self.dark = inside[darkest].mean(axis=0)  # (3,)

    def __call__(self, grid_x: np.ndarray, grid_y: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32: the inside to show at photo pixels ``grid_x``, ``grid_y`` (h, w)
        of a frame whose 68 landmarks are ``landmarks`` (68, 2) in photo pixels."""
        fold = self.fold
        x, y = np.moveaxis(fold.upright(np.stack([grid_x, grid_y], axis=-1).astype(np.float64)), -1, 0)
        frame = fold.upright(np.asarray(landmarks, np.float64))
        top, bottom = (lip_edge(frame[list(chain)], x)
                       for chain in (INNER_LIP_UPPER_CHAIN, INNER_LIP_LOWER_CHAIN))
        # the photo's column that each of the frame's columns shows, corner to corner
        corners = frame[list(INNER_MOUTH_CORNERS), 0]
        left, right = corners.min(), corners.max()
        share = np.clip((x - left) / max(right - left, 1e-6), 0, 1)
        source_x = fold.columns[0] + share * (fold.columns[-1] - fold.columns[0])
        upper, lower = fold.edges(source_x)
        middle = (upper + lower) / 2
        from_top, from_bottom = y - top, bottom - y
        hanging = from_top <= from_bottom  # the upper half of the frame's opening
        source_y = np.where(hanging, upper + from_top, lower - from_bottom)
        beyond = np.where(hanging, source_y - middle, middle - source_y)  # > 0: past the photo's half
        source = np.stack([source_x, np.where(hanging, np.minimum(source_y, middle),
                                              np.maximum(source_y, middle))], axis=-1)
        source = fold.to_photo(source)  # (h, w, 2)
        teeth = cv2.remap(self.photo, source[..., 0].astype(np.float32), source[..., 1].astype(np.float32),
                          cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        dark = np.clip(beyond / np.maximum(EDGE * (middle - upper), 1e-6), 0, 1)[..., None]
        return teeth + dark * (self.dark - teeth)


def lip_edge(points: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A lip chain (K, 2) upright points, corner to corner, as a smooth curve: y at ``x``.

    The line between the chain's end points (the mouth's inner corners) plus ``h (1 - u^2)^p``,
    u from -1 at one corner to 1 at the other, with h and p (:data:`EDGE_POWERS`: 0.5 is an
    ellipse, 1 a parabola) the least-squares fit to the chain's inner points. An open mouth's
    edge is full in the middle and rounds into the corners; a parabola through the points is
    pointed there and runs on past them."""
    points = np.asarray(points, np.float64)
    start, end = sorted((points[0], points[-1]), key=lambda p: p[0])
    middle, half = (start[0] + end[0]) / 2, max((end[0] - start[0]) / 2, 1e-6)
    slope = (end[1] - start[1]) / (2 * half)
    inner = points[1:-1]
    u = np.clip((inner[:, 0] - middle) / half, -0.999, 0.999)
    offset = inner[:, 1] - (start[1] + slope * (inner[:, 0] - start[0]))  # (K-2,) from the corner line
    profiles = (1 - u**2) ** EDGE_POWERS[:, None]  # (P, K-2)
    heights = (profiles * offset).sum(axis=1) / (profiles**2).sum(axis=1)
    best = int(np.argmin(((heights[:, None] * profiles - offset) ** 2).sum(axis=1)))
    profile = (1 - np.clip((x - middle) / half, -1, 1) ** 2) ** EDGE_POWERS[best]
    return start[1] + slope * (x - start[0]) + heights[best] * profile
