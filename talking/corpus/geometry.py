"""The face model: from a :class:`FaceStyle` and one frame's state, the parts to draw and the 68
iBUG landmarks, in normalised head coordinates before the in-plane head pose.

Eyes sit at :data:`~talking.config.CANONICAL_LEFT_EYE` / ``RIGHT_EYE`` and the lip line at
``CANONICAL_MOUTH``; the face outline, hair, ears, nose and brows vary around them. Yaw and
pitch are small 3-D rotations of the face's relief (:func:`surface_height`): points in front move
more than the outline, ears and back hair move the other way. The same relief shades the face
(see ``render.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talking.config import CANONICAL_LEFT_EYE, CANONICAL_MOUTH, CANONICAL_RIGHT_EYE
from talking.corpus.appearance import FaceStyle
from talking.corpus.mouth import JAW_TRAVEL, MAX_OPENING, mouth_shape
from talking.corpus.shapes import Part, band, ellipse, resample, shade, smooth, stroke, superellipse

CENTRE_Y = 0.47  # where the jaw contour starts (iBUG points 0 and 16), just below the eyes
_SCLERA = (232.0, 228.0, 222.0)
_PUPIL = (14.0, 12.0, 12.0)
_WHITE = (255.0, 255.0, 255.0)


@dataclass
class FaceFrame:
    """One frame of a face: ``parts`` in drawing order and ``landmarks`` (68, 2)."""

    parts: list[Part]
    landmarks: np.ndarray


def face_frame(style: FaceStyle, mouth: np.ndarray, eye_openness: float, brow_raise: float,
               gaze: np.ndarray, yaw: float = 0.0, pitch: float = 0.0) -> FaceFrame:
    """Parts and landmarks of ``style``'s face with mouth parameters ``mouth`` (P,), lids open by
    ``eye_openness``, brows raised by ``brow_raise``, irises at ``gaze`` (2,), turned by ``yaw`` /
    ``pitch`` degrees (positive: the face turns to image right / down)."""
    lip = mouth_shape(style, mouth)
    jaw = jaw_contour(style, lip.jaw_drop)
    a = style.face_half_width
    skin = style.skin
    parts: list[Part] = []
    if style.hair_style in ("long", "curly"):
        parts.append(Part(_hair_back(style), style.hair, depth=-0.15))
    parts.append(Part(band(np.array([[0.5 - 0.52 * a, 0.7], [0.5 - 0.62 * a, 1.1]]),
                           np.array([[0.5 + 0.52 * a, 0.7], [0.5 + 0.62 * a, 1.1]])),
                      shade(skin, 0.8), depth=-0.05))  # neck
    if style.ear_size > 0:
        for side in (-1, 1):
            centre = (0.5 + side * 0.97 * a, 0.49)
            parts.append(Part(ellipse(centre, (0.03 * style.ear_size, 0.068 * style.ear_size)),
                              shade(skin, 0.92), depth=-0.08))
            parts.append(Part(ellipse((centre[0] + side * 0.006, centre[1]),
                                      (0.016 * style.ear_size, 0.045 * style.ear_size)),
                              shade(skin, 0.72), depth=-0.08))
    forehead = superellipse((0.5, CENTRE_Y), (a, CENTRE_Y - style.skull_top_y), 2.0, np.pi, 2 * np.pi, 24)
    parts.append(Part(np.concatenate([forehead, jaw[::-1]]), skin))
    parts += _beard(style, jaw, lip.landmarks)
    parts += _nose(style)
    landmarks = np.zeros((68, 2), np.float32)
    landmarks[0:17] = resample(jaw, 17)
    landmarks[27:36] = _nose_landmarks(style)
    for eye, (centre, side) in enumerate(((CANONICAL_LEFT_EYE, 1), (CANONICAL_RIGHT_EYE, -1))):
        eye_parts, eye_landmarks = _eye(style, centre, side, eye_openness, gaze)
        parts += eye_parts
        landmarks[36 + 6 * eye: 42 + 6 * eye] = eye_landmarks
        brow_part, brow_landmarks = _brow(style, centre, side, brow_raise)
        parts.append(brow_part)
        landmarks[17 + 5 * eye: 22 + 5 * eye] = brow_landmarks if side == 1 else brow_landmarks[::-1]
    parts += lip.parts
    landmarks[48:68] = lip.landmarks
    if style.beard in ("moustache", "full"):
        line = smooth(lip.landmarks[0:7], iterations=2, closed=False) - (0.0, 0.5 * style.upper_lip + 0.008)
        across = np.linspace(-1, 1, len(line))
        parts.append(Part(stroke(line, 0.008 + 0.02 * (1 - across ** 2)), style.hair, alpha=0.9))
    parts += _hair_front(style)
    parts += _glasses(style)
    return FaceFrame(parts=_turn(parts, style, yaw, pitch),
                     landmarks=_rotate(landmarks, surface_height(style, landmarks), yaw, pitch))


def jaw_contour(style: FaceStyle, jaw_drop: float, num: int = 33) -> np.ndarray:
    """The lower face outline (num, 2) from the left end (iBUG 0) over the chin to the right end
    (iBUG 16): a superellipse, its lower part pulled down by ``jaw_drop``."""
    a, b = style.face_half_width, style.chin_y - CENTRE_Y
    contour = superellipse((0.5, CENTRE_Y), (a, b), style.jaw_exponent, np.pi, 0.0, num)
    below_mouth = np.clip((contour[:, 1] - 0.62) / (style.chin_y - 0.62), 0, 1) ** 1.2
    contour[:, 1] += jaw_drop * below_mouth
    return contour


def surface_height(style: FaceStyle, points: np.ndarray) -> np.ndarray:
    """Height (K,) of the face's relief in front of the head's centre plane at ``points`` (K, 2):
    an ellipsoid head with a nose ridge and tip, eye sockets and cheekbones; 0 off the face. The
    ellipsoid reaches the chin of the widest-open jaw (its shading is fixed per clip)."""
    x, y = points[:, 0] - 0.5, points[:, 1]
    a = style.face_half_width
    lowest_chin = style.chin_y + JAW_TRAVEL * MAX_OPENING
    b = np.where(y > CENTRE_Y, lowest_chin - CENTRE_Y, CENTRE_Y - style.skull_top_y)
    head = 0.3 * np.sqrt(np.clip(1 - (x / a) ** 2 - ((y - CENTRE_Y) / b) ** 2, 0, 1))
    ridge = np.clip((y - 0.43) / (style.nose_tip_y - 0.43), 0, 1) * (y < style.nose_tip_y + 0.01)
    nose = 0.05 * ridge * np.exp(-(x / (0.6 * style.nose_half_width)) ** 2)
    nose += 0.03 * np.exp(-(x ** 2 + (y - style.nose_tip_y + 0.01) ** 2) / (0.8 * style.nose_half_width) ** 2)
    eye_y = CANONICAL_LEFT_EYE[1]
    sockets = -0.02 * np.exp(-((np.abs(x) - 0.14) ** 2 + (y - eye_y) ** 2) / 0.045 ** 2)
    cheeks = 0.015 * np.exp(-((np.abs(x) - 0.17) ** 2 + (y - 0.56) ** 2) / 0.05 ** 2)
    lips = 0.012 * np.exp(-((x / style.mouth_half_width) ** 2 + ((y - CANONICAL_MOUTH[1]) / 0.03) ** 2))
    return np.where(head > 0, head + nose + sockets + cheeks + lips, 0.0)


def _turn(parts: list[Part], style: FaceStyle, yaw: float, pitch: float) -> list[Part]:
    """``parts`` with their points seen after turning the head (all points in one pass)."""
    points = np.concatenate([part.points for part in parts])
    depth = surface_height(style, points)
    fixed = np.concatenate([np.full(len(part.points), np.nan if part.depth is None else part.depth)
                            for part in parts])
    turned = _rotate(points, np.where(np.isnan(fixed), depth, fixed), yaw, pitch)
    ends = np.cumsum([len(part.points) for part in parts])
    for part, chunk in zip(parts, np.split(turned, ends[:-1]), strict=True):
        part.points = chunk
    return parts


def _rotate(points: np.ndarray, depth, yaw: float, pitch: float) -> np.ndarray:
    """Orthographic view of points at ``depth`` after turning the head by yaw / pitch degrees."""
    yaw, pitch = np.radians(yaw), np.radians(pitch)
    x = 0.5 + (points[:, 0] - 0.5) * np.cos(yaw) + depth * np.sin(yaw)
    y = 0.5 + (points[:, 1] - 0.5) * np.cos(pitch) + depth * np.sin(pitch)
    return np.stack([x, y], axis=1).astype(np.float32)


def _eye(style: FaceStyle, centre, side: int, openness: float,
         gaze: np.ndarray) -> tuple[list[Part], np.ndarray]:
    """Sclera, iris, lids of one eye (``side`` 1 = image left, its outer corner on the left) and
    its six landmarks in iBUG order (36-41 or 42-47)."""
    w = style.eye_half_width
    u = np.linspace(0, 1, 17)  # image-left corner -> image-right corner
    x = centre[0] + w * (2 * u - 1)
    tilt = -np.tan(style.eye_tilt) * w * (1 - 2 * u) * side  # outer corner up
    height = 2 * w * style.eye_aperture
    lower = centre[1] + tilt + 0.3 * height * (0.85 + 0.15 * openness) * np.sin(np.pi * u) ** 0.9
    upper = lower - height * openness * np.sin(np.pi * u) ** 0.8
    upper_lid, lower_lid = np.stack([x, upper], 1), np.stack([x, lower], 1)
    iris_centre = (centre[0] + gaze[0] * 0.35 * w, centre[1] + 0.05 * height + gaze[1] * 0.15 * w)
    r = style.iris_ratio * w
    cover_up, cover_down = upper_lid.copy(), lower_lid.copy()
    cover_up[:, 1] -= r + 0.012
    cover_down[:, 1] += r + 0.012
    crease = upper_lid.copy()
    crease[:, 1] = centre[1] + tilt - (0.85 * height + 0.012) * np.sin(np.pi * u) ** 0.8
    lash = 0.007 if style.feminine else 0.005
    parts = [
        Part(band(upper_lid, lower_lid), _SCLERA),
        Part(ellipse(iris_centre, (r, r)), style.iris),
        Part(ellipse(iris_centre, (0.45 * r, 0.45 * r), 16), _PUPIL),
        Part(ellipse((iris_centre[0] - 0.3 * r, iris_centre[1] - 0.35 * r), (0.16 * r, 0.16 * r), 12),
             _WHITE, alpha=0.85),
        Part(band(upper_lid, cover_up), style.skin),
        Part(band(lower_lid, cover_down), style.skin),
        Part(crease[2:-2], shade(style.skin, 0.72), thickness=0.004, alpha=0.6),
        Part(upper_lid, _PUPIL, thickness=lash),
        Part(lower_lid[2:-2], shade(style.skin, 0.7), thickness=0.003, alpha=0.5),
    ]
    # iBUG runs clockwise from the image-left corner: left corner, upper lid at 1/3 and 2/3,
    # right corner, lower lid at 2/3 and 1/3 (36-41: outer corner first; 42-47: inner first).
    landmarks = [upper_lid[0], upper_lid[5], upper_lid[11], upper_lid[16], lower_lid[11], lower_lid[5]]
    return parts, np.array(landmarks, np.float32)


def _brow(style: FaceStyle, centre, side: int, raise_: float) -> tuple[Part, np.ndarray]:
    """One brow stroke and its five landmarks from the outer to the inner end."""
    w = style.eye_half_width
    s = np.linspace(0, 1, 15)  # outer end -> inner end
    x = centre[0] - side * w * (1.3 - 2.25 * s)
    arch = style.brow_arch * np.sin(np.pi * np.clip(s * 1.15, 0, 1))
    y = centre[1] - style.brow_height - arch - raise_ * (0.012 + 0.01 * s) + 0.01 * (1 - s) ** 2
    widths = style.brow_thickness * (0.45 + 0.55 * np.sqrt(s))
    line = np.stack([x, y], 1)
    return (Part(stroke(line, widths), shade(style.hair, 0.8 if style.hair[0] > 120 else 1.0), alpha=0.92),
            line[[0, 4, 7, 10, 14]].astype(np.float32))


def _nose_landmarks(style: FaceStyle) -> np.ndarray:
    """iBUG 27-30 down the bridge to the tip, 31-35 along the base of the nose."""
    tip, nw = style.nose_tip_y, style.nose_half_width
    bridge = [(0.5, y) for y in np.linspace(CANONICAL_LEFT_EYE[1], tip, 4)]
    base = [(0.5 - nw, tip - 0.004), (0.5 - nw / 2, tip + 0.01), (0.5, tip + 0.015),
            (0.5 + nw / 2, tip + 0.01), (0.5 + nw, tip - 0.004)]
    return np.array(bridge + base, np.float32)


def _nose(style: FaceStyle) -> list[Part]:
    tip, nw = style.nose_tip_y, style.nose_half_width
    parts = []
    for side in (-1, 1):
        parts.append(Part(ellipse((0.5 + side * 0.42 * nw, tip + 0.008), (0.3 * nw, 0.13 * nw), 16,
                                  angle=side * 0.3), shade(style.skin, 0.35), alpha=0.8))
        wing = np.array([(0.5 + side * nw * 0.9, tip - 0.025), (0.5 + side * nw * 1.05, tip - 0.005),
                         (0.5 + side * nw * 0.85, tip + 0.012)])
        parts.append(Part(wing, shade(style.skin, 0.7), thickness=0.004, alpha=0.6))
    return parts


def _beard(style: FaceStyle, jaw: np.ndarray, lips: np.ndarray) -> list[Part]:
    """Stubble or a full beard over the lower face (the lips are drawn over it), with a soft edge."""
    if style.beard not in ("stubble", "full"):
        return []
    mw, tip = style.mouth_half_width, style.nose_tip_y
    chin = jaw[4:-4]
    top = np.array([[chin[-1, 0], 0.58], [0.5 + 1.3 * mw, 0.66], [0.5 + 0.9 * mw, tip + 0.035],
                    [0.5 - 0.9 * mw, tip + 0.035], [0.5 - 1.3 * mw, 0.66], [chin[0, 0], 0.58]])
    outline = smooth(np.concatenate([chin, top]))
    centre = outline.mean(axis=0)
    alpha = 0.22 if style.beard == "stubble" else 0.85
    return [Part(centre + (outline - centre) * 1.04, style.hair, alpha=0.35 * alpha),
            Part(outline, style.hair, alpha=alpha)]


def _hair_back(style: FaceStyle) -> np.ndarray:
    """Long hair behind the head, falling to the shoulders."""
    a = style.face_half_width + 0.03 + style.hair_volume
    top = superellipse((0.5, CENTRE_Y), (a, CENTRE_Y - style.skull_top_y + style.hair_volume), 2.0,
                       np.pi, 2 * np.pi, 24)
    return np.concatenate([[[0.5 - a - 0.04, 1.02]], top, [[0.5 + a + 0.04, 1.02]]])


def _hair_front(style: FaceStyle) -> list[Part]:
    """The hair over the skull: from an outer arc (the skull plus volume) down to the hairline,
    which runs across the forehead and down the temples to sideburns in front of the ears."""
    if style.hair_style == "bald":
        return []
    a, v = style.face_half_width, style.hair_volume
    radii = (a + v, CENTRE_Y - style.skull_top_y + v)
    outer = superellipse((0.5, CENTRE_Y), radii, 2.0, np.pi, 2 * np.pi, 33)
    if style.hair_style == "curly":
        bumps = 1.04 + 0.035 * np.sin(np.linspace(0, 15 * np.pi, len(outer)))
        outer = np.array([0.5, CENTRE_Y]) + (outer - (0.5, CENTRE_Y)) * bumps[:, None]
    s = np.linspace(-1, 1, 33)  # across the forehead, temple to temple
    line = style.hairline_y + 0.06 * s ** 4
    if style.hair_style == "fringe":
        line = 0.26 + 0.03 * s ** 2 + 0.006 * np.sin(s * 40)
    elif style.hair_style == "side":
        line = line + 0.07 * np.clip(s + 0.3, 0, 1.3) ** 1.5
    forehead = np.stack([0.5 + 0.9 * a * s, line], axis=1)
    sideburn = CENTRE_Y - 0.02
    left = np.array([[0.5 - a - v, sideburn], [0.5 - 0.93 * a, sideburn]])
    right = np.array([[0.5 + 0.93 * a, sideburn], [0.5 + a + v, sideburn]])
    return [Part(np.concatenate([outer, right[::-1], forehead[::-1], left[::-1]]), style.hair)]


def _glasses(style: FaceStyle) -> list[Part]:
    if not style.glasses:
        return []
    exponent = 2.0 if style.glasses == "round" else 4.0
    radii = (1.7 * style.eye_half_width, 1.25 * style.eye_half_width)
    rims = [superellipse((cx, cy + 0.006), radii, exponent, 0, 2 * np.pi, 32)
            for cx, cy in (CANONICAL_LEFT_EYE, CANONICAL_RIGHT_EYE)]
    colour = style.glasses_colour
    inner = CANONICAL_LEFT_EYE[0] + radii[0], CANONICAL_RIGHT_EYE[0] - radii[0]
    y = CANONICAL_LEFT_EYE[1] - 0.004
    parts = [Part(rim, (235.0, 240.0, 245.0), alpha=0.1, depth=0.25) for rim in rims]
    parts += [Part(rim, colour, thickness=0.009, closed=True, depth=0.25) for rim in rims]
    parts.append(Part(np.array([[inner[0], y], [0.5, y - 0.008], [inner[1], y]]), colour,
                      thickness=0.008, depth=0.25))
    for side, x in ((-1, CANONICAL_LEFT_EYE[0] - radii[0]), (1, CANONICAL_RIGHT_EYE[0] + radii[0])):
        parts.append(Part(np.array([[x, y], [0.5 + side * style.face_half_width * 1.02, y + 0.01]]),
                          colour, thickness=0.008, depth=0.1))
    return parts
