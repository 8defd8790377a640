"""Measures of a talking video made from a real photo and real speech, as pure numpy functions.

The mouth is read by an independent real-face tracker (:mod:`talking.realface`) as a *lip gap*
per frame: the inner-lip gap over the eye-corner distance, 0 for closed lips. From that track:

- :func:`lip_activity`: its standard deviation over the clip (real speakers: about 0.05);
- :func:`loud_minus_quiet`: the mean gap in the loudest third of the frames minus the quietest
  third, loudness being the speech's RMS over each frame (:func:`talking.audio.frame_rms`); real speakers
  0.011-0.022;
- :func:`viseme_accuracy`: the share of phone intervals (from :mod:`talking.phonemes`) in which
  the lips close (``P B M``: the smallest gap at most ``closed_below``) or open (open vowels: the
  largest gap at least ``open_above``). Real lips lead the sound by about 80 ms, so each interval
  is searched from :data:`LIP_LEAD` frames before its start;
- :func:`silence_stillness`: in silent stretches (:func:`silent_frames`), the mean frame-to-frame
  change of the gap (jitter) and the mean gap (a closed mouth is near 0);
- :func:`pearson`: the correlation of two gap tracks (a generated one and a real speaker's).

Sharpness and faithfulness to the photo, in regions found from the photo's own landmarks
(:class:`FaceRegions`, iBUG-68 points in photo pixels):

- :func:`laplacian_variance`: the variance of the grey Laplacian over a region, a standard focus
  measure; the evaluation divides a frame's by the same photo's encoded as a still video;
- :func:`luma_ssim`: SSIM of the grey levels (a box of a frame against the photo's);
- :func:`background_psnr`: PSNR over the pixels outside the face; infinite when untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from talking import ibug, metrics
from talking.phonemes import Phone

OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
LIP_LEAD = 2  # frames (80 ms at 25 fps) by which real lips lead the sound
# Viseme thresholds, in eye distances: lips within CLOSE_MARGIN of their closed gap are closed,
# OPEN_MARGIN beyond it open; a photo whose lips read apart is held to CLOSED_GAP
CLOSED_GAP = 0.02  # the most MediaPipe reads on closed real lips (grace_hopper: 0.003)
CLOSE_MARGIN = 0.02  # a still photo's gap jitters by ~0.005
OPEN_MARGIN = 0.05  # one real speaker's spread of the gap
SILENCE_DB = -30.0  # a frame this far below the clip's loud level (95th percentile RMS) is silent
MIN_SILENCE_FRAMES = 5  # 200 ms: shorter pauses are stop closures and gaps between words
BACKGROUND_MARGIN = 0.1  # the background starts this fraction of the face's width beyond it
MOUTH_VIEW = 1.6  # a contact sheet's mouth crop: a square this many lip widths across
STILL = 1e-9  # a gap track that moves less than this (rounding) has no correlation


def lip_activity(gaps: np.ndarray) -> float | None:
    """Standard deviation of the lip gap over the frames where a face was found."""
    found = gaps[np.isfinite(gaps)]
    return float(found.std()) if len(found) > 1 else None


def loud_minus_quiet(gaps: np.ndarray, rms: np.ndarray) -> float | None:
    """Mean gap of the loudest third of the frames minus that of the quietest third."""
    found = np.isfinite(gaps)
    gaps, rms = gaps[found], rms[found]
    third = len(gaps) // 3
    if third == 0:
        return None
    order = np.argsort(rms, kind="stable")
    return float(gaps[order[-third:]].mean() - gaps[order[:third]].mean())


def interval_frames(phone: Phone, fps: float, num_frames: int, lead: int = LIP_LEAD) -> np.ndarray:
    """Frames whose mid-time lies in the phone's interval, from ``lead`` frames before it."""
    mid = (np.arange(num_frames) + 0.5) / fps  # talking.audio.video_frame_times
    inside = np.flatnonzero((mid >= phone.start) & (mid < phone.end))
    if len(inside) == 0:  # a phone shorter than a frame: the frame it falls in
        inside = np.array([min(int(phone.start * fps), num_frames - 1)])
    return np.arange(max(inside[0] - lead, 0), inside[-1] + 1)


def viseme_accuracy(gaps: np.ndarray, phones: Iterable[Phone], fps: float, labels: frozenset[str],
                    closed_below: float | None = None, open_above: float | None = None) -> float | None:
    """Share of the ``labels`` phones in which the lips close (the smallest gap of the interval
    at most ``closed_below``) or, given ``open_above`` instead, open (the largest at least it).
    None when no such phone was heard or the tracker lost the face throughout."""
    if (closed_below is None) == (open_above is None):
        raise ValueError("give closed_below or open_above")
    hits = []
    for phone in phones:
        if phone.label not in labels:
            continue
        track = gaps[interval_frames(phone, fps, len(gaps))]
        track = track[np.isfinite(track)]
        if len(track):
            hits.append(track.min() <= closed_below if open_above is None else track.max() >= open_above)
    return float(np.mean(hits)) if hits else None


def silent_frames(rms: np.ndarray, below_db: float = SILENCE_DB,
                  min_frames: int = MIN_SILENCE_FRAMES) -> np.ndarray:
    """(N,) bool: frames in runs of at least ``min_frames`` frames ``below_db`` under the clip's
    loud level (its 95th percentile RMS)."""
    loud = max(float(np.percentile(rms, 95)), 1e-9)
    quiet = 20 * np.log10(np.maximum(rms, 1e-12) / loud) < below_db
    silent = np.zeros_like(quiet)
    start = None
    for i, q in enumerate([*quiet, False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            silent[start:i] = i - start >= min_frames
            start = None
    return silent


def silence_stillness(gaps: np.ndarray, silent: np.ndarray) -> tuple[float | None, float | None]:
    """(mean |frame-to-frame change| of the gap, mean gap) over the silent frames; Nones when
    the clip has no silent stretch."""
    pairs = silent[1:] & silent[:-1]
    steps = np.abs(np.diff(gaps))[pairs]
    steps, held = steps[np.isfinite(steps)], gaps[silent & np.isfinite(gaps)]
    return (float(steps.mean()) if len(steps) else None, float(held.mean()) if len(held) else None)


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Correlation of two tracks over the frames both have; None if either is constant there."""
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    if len(a) < 3 or a.std() < STILL or b.std() < STILL:
        return None
    return float(np.corrcoef(a, b)[0, 1])


# ---------------------------------------------------------------------------------------------
# Regions of a photo and sharpness
# ---------------------------------------------------------------------------------------------

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, exclusive ends


@dataclass(frozen=True)
class FaceRegions:
    """Where to measure, from a photo's iBUG-68 landmarks: ``face`` (H, W) bool, the hull of the
    jaw line and brows without ``mouth`` (the lip box, :func:`talking.ibug.lip_box_bounds`), the
    box ``above_mouth`` (brows, eyes and nose: what a mouth's motion must leave alone),
    ``background`` (H, W) bool, everything :data:`BACKGROUND_MARGIN` of the face width beyond it,
    and ``mouth_view``, a square about the lips with room for them to open (contact sheets)."""

    face: np.ndarray
    mouth: Box
    above_mouth: Box
    background: np.ndarray
    mouth_view: Box

    @classmethod
    def from_landmarks(cls, points: np.ndarray, shape: Sequence[int]) -> FaceRegions:
        """Regions of an image of ``shape`` (H, W, ...) from its (68, 2) landmarks."""
        height, width = shape[:2]
        jaw, brows, eyes, lips = (points[part] for part in (ibug.JAW, ibug.BROWS, ibug.EYES, ibug.LIPS))
        hull = cv2.convexHull(np.round(np.concatenate([jaw, brows])).astype(np.int32))
        face = np.zeros((height, width), np.uint8)
        cv2.fillConvexPoly(face, hull, 1)
        mouth = _box(*ibug.lip_box_bounds(lips.min(0), lips.max(0)), width, height)
        face_mask = face.astype(bool)
        face_mask[mouth[1]:mouth[3], mouth[0]:mouth[2]] = False
        brows_eyes = np.concatenate([brows, eyes])
        above = _box(brows_eyes.min(0), (brows_eyes[:, 0].max(), points[ibug.NOSE_BASE, 1]), width, height)
        reach = max(1, int(round(BACKGROUND_MARGIN * np.ptp(jaw[:, 0]))))
        grown = cv2.dilate(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
        half = MOUTH_VIEW * np.ptp(lips[:, 0]) / 2
        centre = lips.mean(0)
        view = _box(centre - half, centre + half, width, height)
        return cls(face=face_mask, mouth=mouth, above_mouth=above, background=~grown.astype(bool),
                   mouth_view=view)


def _box(low: np.ndarray, high: np.ndarray, width: int, height: int) -> Box:
    x0, y0 = (int(max(np.floor(v), 0)) for v in low)
    return x0, y0, int(min(np.ceil(high[0]) + 1, width)), int(min(np.ceil(high[1]) + 1, height))


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """``image``'s pixels in ``box``."""
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def laplacian_variance(image: np.ndarray, region: np.ndarray) -> float:
    """Variance of the Laplacian of ``image`` (H, W, 3) RGB over ``region`` (H, W) bool."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=1)[region].var())


def luma_ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of the grey levels of ``image`` against ``reference`` (H, W, 3) RGB, same shape."""
    grey = [cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY) for a in (image, reference)]
    return metrics.ssim(*grey)


def background_psnr(image: np.ndarray, photo: np.ndarray, background: np.ndarray) -> float:
    """PSNR (dB) of ``image`` against ``photo`` over ``background`` (H, W) bool; inf if equal."""
    return metrics.psnr(image[background], photo[background])
