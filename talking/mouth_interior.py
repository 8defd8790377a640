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
    """A lip chain (K, 2) upright points as a smooth curve, y at ``x``: the parabola nearest the
    points (a lip's edge is one smooth arc; through the points it would have corners)."""
    spread = max(float(np.ptp(points[:, 0])), 1e-6)
    coefficients = np.polyfit((points[:, 0] - points[:, 0].mean()) / spread, points[:, 1], 2)
    return np.polyval(coefficients, (x - points[:, 0].mean()) / spread)
