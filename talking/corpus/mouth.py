"""The mouth from its parameters (:data:`~talking.config.MOUTH_PARAMETERS`): lips, oral
cavity, teeth and tongue, and the 20 lip landmarks (iBUG 48-67).

The lips meet on the lip line through :data:`~talking.config.CANONICAL_MOUTH`. Opening the jaw
parts them (the lower lip travels 70 % of the way, the upper 30 %); spreading widens the mouth and
rounding narrows it, makes the opening rounder and the lips fuller; raising the upper lip bares the
upper teeth; tucking the lower lip lifts it against the upper teeth (f, v) and closes the gap.
Teeth and tongue are drawn inside the opening only, so they never poke through closed lips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talking.config import CANONICAL_MOUTH
from talking.corpus.appearance import FaceStyle
from talking.corpus.shapes import Part, band, ellipse, shade

MAX_OPENING = 0.085  # lip gap at jaw_open = 1, image fractions
JAW_TRAVEL = 0.75  # the chin moves down by this share of the lip gap
_CAVITY = (52.0, 18.0, 22.0)
_TONGUE = (172.0, 78.0, 84.0)
_SAMPLES = 25  # points per lip curve


@dataclass
class MouthShape:
    """The drawn mouth: ``parts`` in drawing order, ``landmarks`` (20, 2) = iBUG points 48-67, and
    ``jaw_drop``, how far the chin moves down."""

    parts: list[Part]
    landmarks: np.ndarray
    jaw_drop: float


def mouth_shape(style: FaceStyle, mouth: np.ndarray) -> MouthShape:
    """Lips, cavity, teeth, tongue for mouth parameters ``mouth`` (P,) of a face ``style``."""
    jaw, spread, rounding, upper_raise, tuck, teeth, tongue = (float(v) for v in mouth)
    cx, cy = CANONICAL_MOUTH
    w = style.mouth_half_width * (1 + 0.22 * spread - 0.32 * rounding)  # outer half-width
    wi = w * (0.86 - 0.25 * rounding)  # half-width of the opening
    opening = jaw * MAX_OPENING
    lower_gap = max(0.0, 0.7 * opening - tuck * 0.035)
    upper_gap = 0.3 * opening + 0.02 * upper_raise
    power = 0.45 + 0.3 * rounding - 0.1 * spread  # rounder opening when rounded

    def inner_profile(x):  # 1 at the centre, 0 at and beyond the inner corners
        return np.clip(1 - (x / wi) ** 2, 0, 1) ** power

    def inner_upper(x):
        return cy - upper_gap * inner_profile(x)

    def inner_lower(x):
        return cy + lower_gap * inner_profile(x)

    fuller = 1 + 0.35 * rounding
    upper_thickness = style.upper_lip * fuller
    lower_thickness = style.lower_lip * fuller * (1 - 0.35 * tuck)

    def outer_upper(x):
        bow = np.clip(1 - np.abs(x / w) ** 1.8, 0, 1) ** 0.7 * (1 - 0.18 * np.exp(-(x / (0.18 * w)) ** 2))
        return inner_upper(x) - upper_thickness * bow

    def outer_lower(x):
        return inner_lower(x) + lower_thickness * np.clip(1 - (x / w) ** 2, 0, 1) ** 0.6

    xo = np.linspace(-w, w, _SAMPLES)
    xi = np.linspace(-wi, wi, _SAMPLES)

    def curve(fn, xs):
        return np.stack([cx + xs, fn(xs)], axis=1)

    gap = upper_gap + lower_gap
    parts = [
        Part(band(curve(outer_upper, xo), curve(inner_upper, xo)), shade(style.lips, 0.88)),
        Part(band(curve(inner_lower, xo), curve(outer_lower, xo)), style.lips),
        Part(ellipse((cx, cy + lower_gap + lower_thickness * 0.45), (w * 0.35, lower_thickness * 0.18)),
             (255.0, 255.0, 255.0), alpha=0.18),  # highlight on the lower lip
    ]
    if gap > 0.002:
        # Always well below the lips, also for the darkest lips: the opening must show.
        cavity = tuple(min(c, 0.4 * lip) for c, lip in zip(_CAVITY, style.lips, strict=True))
        parts.append(Part(band(curve(inner_upper, xi), curve(inner_lower, xi)), cavity))
        if tongue > 0.05:
            xt = xi * 0.7
            top = np.maximum(inner_lower(xt) - tongue * 0.75 * gap * np.sqrt(1 - (xt / wi) ** 2),
                             inner_upper(xt))
            parts.append(Part(band(curve(inner_lower, xt), np.stack([cx + xt, top], 1)), _TONGUE))
        teeth_height = 0.022 * (0.3 + 0.7 * teeth)
        xt = xi * 0.9
        lower_top = np.maximum(inner_lower(xt) - 0.5 * teeth_height * teeth, inner_upper(xt))
        parts.append(Part(band(curve(inner_lower, xt), np.stack([cx + xt, lower_top], 1)),
                          shade(style.teeth, 0.85)))
        upper_bottom = np.minimum(inner_upper(xt) + teeth_height, inner_lower(xt))
        parts.append(Part(band(curve(inner_upper, xt), np.stack([cx + xt, upper_bottom], 1)), style.teeth))
    # The lip line: where the lips touch, or the shadow at the edge of the opening.
    parts.append(Part(curve(inner_upper, xo), shade(style.lips, 0.55), thickness=0.005))

    def at(fn, fractions, half_width):
        return np.stack([cx + np.asarray(fractions) * half_width, fn(np.asarray(fractions) * half_width)], 1)

    landmarks = np.concatenate([
        at(outer_upper, [-1.0, -0.62, -0.27, 0.0, 0.27, 0.62, 1.0], w),  # 48-54
        at(outer_lower, [0.62, 0.3, 0.0, -0.3, -0.62], w),  # 55-59
        at(inner_upper, [-1.0, -0.45, 0.0, 0.45, 1.0], wi),  # 60-64
        at(inner_lower, [0.45, 0.0, -0.45], wi),  # 65-67
    ])
    return MouthShape(parts=parts, landmarks=landmarks.astype(np.float32), jaw_drop=JAW_TRAVEL * opening)
