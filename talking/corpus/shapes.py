"""What the renderer draws: :class:`Part` s (a filled polygon or a stroked polyline with its
paint), and the small curve constructors the face model builds them from.

Coordinates are normalised to the image side: (x, y) in [0, 1], x right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talking.corpus.appearance import Colour


@dataclass
class Part:
    """One thing to draw: ``points`` (K, 2) as a filled polygon, or as a polyline of
    ``thickness`` (image fractions) when ``thickness > 0``; ``alpha`` < 1 blends it.

    ``depth`` is how far the part stands in front of the head's centre plane, for the small
    parallax of yaw and pitch; ``None`` takes the face surface's height at each point.
    """

    points: np.ndarray
    colour: Colour
    thickness: float = 0.0
    alpha: float = 1.0
    closed: bool = False
    depth: float | None = None


def ellipse(centre, radii, num: int = 24, angle: float = 0.0) -> np.ndarray:
    """Polygon (num, 2) of an ellipse with half-axes ``radii`` rotated by ``angle`` radians."""
    t = np.linspace(0, 2 * np.pi, num, endpoint=False)
    x, y = radii[0] * np.cos(t), radii[1] * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([centre[0] + c * x - s * y, centre[1] + s * x + c * y], axis=1)


def superellipse(centre, radii, exponent: float, start: float, stop: float, num: int) -> np.ndarray:
    """Points (num, 2) of ``|x/a|^n + |y/b|^n = 1`` for angles ``start``..``stop`` (radians,
    0 = right, pi/2 = down)."""
    t = np.linspace(start, stop, num)
    c, s = np.cos(t), np.sin(t)
    power = 2.0 / exponent
    return np.stack([centre[0] + radii[0] * np.sign(c) * np.abs(c) ** power,
                     centre[1] + radii[1] * np.sign(s) * np.abs(s) ** power], axis=1)


def band(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Polygon between two curves sampled at the same x positions: ``lower`` forth, ``upper`` back."""
    return np.concatenate([lower, upper[::-1]])


def stroke(centreline: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Polygon of a brush stroke along ``centreline`` (K, 2) with ``widths`` (K,) across it."""
    tangent = np.gradient(centreline, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-12
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) * (widths[:, None] / 2)
    return band(centreline + normal, centreline - normal)


def resample(curve: np.ndarray, num: int) -> np.ndarray:
    """``num`` points evenly spaced by arc length along the polyline ``curve`` (K, 2)."""
    length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    target = np.linspace(0, length[-1], num)
    return np.stack([np.interp(target, length, curve[:, 0]), np.interp(target, length, curve[:, 1])],
                    axis=1)


def smooth(points: np.ndarray, iterations: int = 3, closed: bool = True) -> np.ndarray:
    """Chaikin corner cutting: a smooth curve near the polygon ``points`` (K, 2)."""
    for _ in range(iterations):
        following = np.roll(points, -1, axis=0) if closed else points[1:]
        current = points if closed else points[:-1]
        cut = np.stack([0.75 * current + 0.25 * following, 0.25 * current + 0.75 * following], axis=1)
        cut = cut.reshape(-1, 2)
        points = cut if closed else np.concatenate([points[:1], cut, points[-1:]])
    return points


def shade(colour: Colour, factor: float) -> Colour:
    """``colour`` scaled by ``factor`` (darker below 1), clipped to [0, 255]."""
    r, g, b = (float(np.clip(c * factor, 0, 255)) for c in colour)
    return (r, g, b)
