"""Who the synthetic speaker looks like (:class:`FaceStyle`) and how each clip is shot
(:class:`SceneStyle`), sampled at random.

Lengths are fractions of the image side in the canonical aligned frame (eyes at
:data:`~talking.config.CANONICAL_LEFT_EYE` / ``RIGHT_EYE``, mouth at ``CANONICAL_MOUTH``); colours
are RGB in [0, 255]. Skin tones are interpolated along the 10 tones of the Monk Skin Tone scale
(Google, 2022), so the corpus covers light to deep skin evenly. The scene adds what makes a real
photo differ from a drawing (DESIGN.md §5): background clutter, lighting gradients, colour casts,
blur, sensor noise and JPEG artefacts.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

Colour = tuple[float, float, float]

MONK_SKIN_TONES = np.array([
    (246, 237, 228), (243, 231, 219), (247, 234, 208), (234, 218, 186), (215, 189, 150),
    (160, 126, 86), (130, 92, 67), (96, 65, 52), (58, 49, 42), (41, 36, 32)], dtype=np.float64)
HAIR_COLOURS = {
    "black": (22, 20, 19), "dark brown": (52, 36, 27), "brown": (92, 64, 42),
    "light brown": (140, 104, 68), "blond": (205, 170, 110), "auburn": (128, 58, 32),
    "grey": (140, 138, 136), "white": (215, 213, 208),
}
IRIS_COLOURS = {
    "dark brown": (52, 32, 20), "brown": (96, 58, 30), "hazel": (118, 96, 48),
    "green": (76, 112, 66), "blue": (78, 116, 164), "grey": (116, 126, 136),
}
HAIR_STYLES = ("bald", "short", "fringe", "side", "long", "curly")
GLASSES = ("", "round", "square")
BEARDS = ("", "stubble", "moustache", "full")
BACKGROUNDS = ("flat", "gradient", "blotches", "room")


@dataclass(frozen=True)
class FaceStyle:
    """A speaker's appearance and manner; everything that stays the same across their clips."""

    feminine: bool
    face_half_width: float  # at the cheekbones
    jaw_exponent: float  # superellipse exponent of the lower face: 2 = oval, 3 = square
    chin_y: float
    skull_top_y: float
    ear_size: float  # 0 = ears hidden
    eye_half_width: float
    eye_aperture: float  # open eye height / eye width
    eye_tilt: float  # radians, outer corners up
    iris_ratio: float  # iris radius / eye half-width
    brow_height: float  # above the eye centre
    brow_thickness: float
    brow_arch: float
    nose_tip_y: float
    nose_half_width: float
    mouth_half_width: float
    upper_lip: float  # lip thickness at the centre
    lower_lip: float
    articulation: float  # scales jaw opening (see visemes.mouth_parameters)
    skin: Colour
    lips: Colour
    hair: Colour
    iris: Colour
    teeth: Colour
    hair_style: str
    hairline_y: float
    hair_volume: float
    glasses: str
    glasses_colour: Colour
    beard: str
    expressiveness: float  # probability that a pitch accent raises the brows
    head_motion: float  # scales head motion (1 = typical)


@dataclass(frozen=True)
class SceneStyle:
    """How one clip is shot: background, clothes, light and camera."""

    background: str
    background_colours: tuple[Colour, Colour]
    clothes: Colour
    light_angle: float  # radians, direction the light comes from in the image plane
    light_strength: float  # 0 = flat light
    colour_gain: Colour  # per-channel white-balance error
    blur_sigma: float  # pixels at 128 x 128
    noise_sigma: float  # grey levels
    jpeg_quality: int  # 0 = no JPEG compression
    seed: int  # for the background texture and per-frame noise


def sample_face_style(rng: np.random.Generator, feminine: bool) -> FaceStyle:
    """A random speaker; ``feminine`` biases hair, brows and beard as in most people."""
    u = rng.uniform
    skin = _skin_tone(rng)
    lips = _mix(skin, (178, 74, 82), u(0.25, 0.45)) * u(0.82, 0.95)
    if feminine and u() < 0.25:
        lips = _mix(lips, (176, 36, 58), u(0.3, 0.6))  # lipstick
    hair_names = list(HAIR_COLOURS)
    hair_p = np.array([6, 5, 4, 3, 2, 1.5, 1.5, 1.0])
    hair = np.array(HAIR_COLOURS[hair_names[rng.choice(len(hair_names), p=hair_p / hair_p.sum())]])
    hair = np.clip(hair * u(0.85, 1.15), 0, 255)
    style_p = np.array([0.02, 0.12, 0.2, 0.16, 0.38, 0.12]) if feminine else \
        np.array([0.14, 0.42, 0.14, 0.16, 0.04, 0.10])
    hair_style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=style_p)]
    return FaceStyle(
        feminine=feminine,
        face_half_width=u(0.27, 0.32) if feminine else u(0.28, 0.34),
        jaw_exponent=u(2.0, 2.5) if feminine else u(2.2, 3.2),
        chin_y=u(0.88, 0.93) if feminine else u(0.89, 0.95),
        skull_top_y=u(0.02, 0.08),
        ear_size=0.0 if u() < 0.15 else u(0.8, 1.2),
        eye_half_width=u(0.052, 0.066),
        eye_aperture=u(0.30, 0.44),
        eye_tilt=u(-0.05, 0.15),
        iris_ratio=u(0.42, 0.52),
        brow_height=u(0.055, 0.08),
        brow_thickness=u(0.010, 0.018) if feminine else u(0.014, 0.026),
        brow_arch=u(0.006, 0.02),
        nose_tip_y=u(0.575, 0.625),
        nose_half_width=u(0.038, 0.058),
        mouth_half_width=u(0.085, 0.112),
        upper_lip=u(0.016, 0.030),
        lower_lip=u(0.022, 0.040),
        articulation=u(0.75, 1.15),
        skin=_colour(skin),
        lips=_colour(lips),
        hair=_colour(hair),
        iris=_colour(np.array(list(IRIS_COLOURS.values())[rng.integers(len(IRIS_COLOURS))]) * u(0.85, 1.15)),
        teeth=_colour(np.array((236, 230, 214)) * u(0.85, 1.0)),
        hair_style=hair_style,
        hairline_y=u(0.15, 0.24),
        hair_volume=u(0.02, 0.06),
        glasses=GLASSES[rng.choice(3, p=(0.75, 0.125, 0.125))],
        glasses_colour=_colour(rng.uniform(10, 160) * np.ones(3) + rng.uniform(-10, 10, 3)),
        beard="" if feminine else BEARDS[rng.choice(4, p=(0.55, 0.2, 0.1, 0.15))],
        expressiveness=u(0.3, 0.9),
        head_motion=u(0.4, 1.2),
    )


def sample_scene_style(rng: np.random.Generator) -> SceneStyle:
    """A random shot: background, clothes, light and camera degradations."""
    u = rng.uniform
    return SceneStyle(
        background=BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
        background_colours=(_muted_colour(rng), _muted_colour(rng)),
        clothes=_muted_colour(rng, saturation=(0.0, 0.7)),
        light_angle=u(0, 2 * np.pi),
        light_strength=u(0.0, 0.35),
        colour_gain=_colour(np.exp(rng.normal(0, 0.06, 3)) * 255) if u() < 0.7 else (255.0, 255.0, 255.0),
        blur_sigma=u(0.0, 0.9),
        noise_sigma=u(0.0, 5.0),
        jpeg_quality=0 if u() < 0.3 else int(rng.integers(45, 96)),
        seed=int(rng.integers(2**31)),
    )


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    position = rng.uniform(0, len(MONK_SKIN_TONES) - 1)
    low = int(position)
    high = min(low + 1, len(MONK_SKIN_TONES) - 1)
    tone = _mix(MONK_SKIN_TONES[low], MONK_SKIN_TONES[high], position - low)
    # The scale's swatches are flat; faces are a little redder and vary in undertone.
    return np.clip(tone * np.array([1.0, 0.96, 0.93]) * np.exp(rng.normal(0, 0.04, 3)), 0, 255)


def _muted_colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.0, 0.45)) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(0.15, 0.95))
    return (255 * r, 255 * g, 255 * b)


def _mix(a, b, t: float) -> np.ndarray:
    return (1 - t) * np.asarray(a, dtype=np.float64) + t * np.asarray(b, dtype=np.float64)


def _colour(rgb) -> Colour:
    r, g, b = (float(np.clip(c, 0, 255)) for c in rgb)
    return (r, g, b)
