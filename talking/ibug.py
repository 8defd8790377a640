"""The 68-point iBUG (300-W) face landmark scheme: where each part's points are, and the lip box.

Every module that picks landmarks by index takes the indices from here, and every lip box is
:func:`lip_box_bounds`: training's lip terms and evaluation's registered lip L1 measure the same
region.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 68
JAW = slice(0, 17)  # the jaw line from the image-left ear to the image-right one
BROWS = slice(17, 27)  # 17-21 and 22-26
NOSE_BASE = 33  # the middle of the nose's base, just above the upper lip
EYES = slice(36, 48)  # 36-41 and 42-47, each from the outer corner clockwise
LIPS = slice(48, 68)  # outer lip 48-59, inner lip 60-67
INNER_LIPS = slice(60, 68)
INNER_LIP_TOP, INNER_LIP_BOTTOM = 62, 66  # middle of the inner upper and lower lip
OUTER_MOUTH_CORNERS, INNER_MOUTH_CORNERS = (48, 54), (60, 64)  # image left, image right
# the inner lips as two chains from the image-left corner to the image-right one
INNER_LIP_UPPER_CHAIN = (60, 61, 62, 63, 64)
INNER_LIP_LOWER_CHAIN = (60, 67, 66, 65, 64)
# Points that move with the head only: jaw top (0-2, 14-16), nose (27-35), eye corners.
RIGID = np.array([0, 1, 2, 14, 15, 16, *range(27, 36), 36, 39, 42, 45])

# The lip box is the lip points' bounding box grown by this fraction of its size on each side:
# the lips, the skin they move and the teeth and tongue between them, little else.
LIP_BOX_MARGIN = 0.25


def lip_box_bounds(low, high):
    """The lip box's corners from the lip points' bounding box ``low``, ``high`` ((..., 2) x, y
    in pixels; numpy arrays or torch tensors)."""
    grow = (high - low) * LIP_BOX_MARGIN
    return low - grow, high + grow
