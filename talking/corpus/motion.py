"""Life in a synthetic face: blinks, brow raises, gaze and head motion, per video frame.

- Blinks: a Poisson process of ``blink_rate`` per second (people blink 0.2-0.5 times a second,
  more in conversation), at least 0.6 s apart; each lasts 100-200 ms: the lid closes in 35 % of
  the time, stays shut for 25 %, reopens in 40 % (closing is faster than opening).
- Brows rise on pitch accents: peaks of pitch x loudness at least 0.5 s apart trigger, with the
  speaker's ``expressiveness`` as probability, a raise of 0.12 s up, 0.1-0.3 s hold, 0.3 s down.
- Gaze: fixations of about 1.5 s, mostly near the camera, with instant saccades between them.
- Head: slow smooth wander (a few sinusoids of 0.08-0.5 Hz per axis) plus small nods that
  follow the loudness of the speech. Yaw/pitch/roll in degrees, offset in image fractions.

All tracks are evaluated at the frames' mid-times (:func:`talking.corpus.visemes.frame_times`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talking.audio import AudioFeatures, video_frame_times

HEAD_POSE_AXES = ("yaw", "pitch", "roll")  # degrees
HEAD_OFFSET_AXES = ("dx", "dy", "scale")  # fractions of the image width / height; scale factor - 1


@dataclass
class FaceMotion:
    """Per-frame state of a face beside its mouth, for N frames."""

    eye_openness: np.ndarray  # (N,) 1 = open as the face's neutral, 0 = shut
    brow_raise: np.ndarray  # (N,) 0 = rest, 1 = fully raised
    gaze: np.ndarray  # (N, 2) iris offset (x, y) in [-1, 1] of its travel
    head_pose: np.ndarray  # (N, 3) yaw, pitch, roll in degrees
    head_offset: np.ndarray  # (N, 3) dx, dy (image fractions), scale - 1


def face_motion(rng: np.random.Generator, features: AudioFeatures, blink_rate: float,
                expressiveness: float, head_amount: float) -> FaceMotion:
    """All tracks for the ``features.num_video_frames`` frames of a clip, driven by its speech."""
    fps, num_frames = features.config.fps, features.num_video_frames
    accent, loudness = prosody(features)
    pose, offset = head_motion(rng, loudness, fps, head_amount)
    return FaceMotion(eye_openness=blink_openness(rng, num_frames, fps, blink_rate),
                      brow_raise=brow_raise(rng, accent, fps, expressiveness),
                      gaze=gaze_track(rng, num_frames, fps), head_pose=pose, head_offset=offset)


def prosody(features: AudioFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame accent (pitch z-score over the clip's voiced frames x loudness) and loudness in
    [0, 1] (energy over the clip's maximum), from the two mel frames at each frame's centre: (N,)."""
    windows = features.windows()
    centre = slice(features.config.window // 2 - 1, features.config.window // 2 + 1)
    energy = windows.energy[:, centre].mean(axis=1)
    loudness = energy / max(float(energy.max()), 1e-6)
    pitch = windows.pitch[:, centre].max(axis=1).astype(np.float64)
    voiced = pitch > 0
    z = np.zeros_like(pitch)
    if voiced.sum() > 2:
        z[voiced] = (pitch[voiced] - pitch[voiced].mean()) / max(pitch[voiced].std(), 1.0)
    return (z * loudness).astype(np.float32), loudness.astype(np.float32)


def blink_openness(rng: np.random.Generator, num_frames: int, fps: float,
                   rate: float) -> np.ndarray:
    """Eye openness (N,) in [0, 1] with blinks at ``rate`` per second."""
    t = video_frame_times(num_frames, fps)
    duration = num_frames / fps
    openness = np.ones(num_frames)
    start = rng.exponential(1.0 / rate) * rng.uniform()  # the clip starts mid-interval
    while start < duration:
        length = rng.uniform(0.10, 0.20)
        phase = (t - start) / length  # 0..1 over the blink
        closing = np.clip(phase / 0.35, 0, 1)
        opening = np.clip((phase - 0.60) / 0.40, 0, 1)
        closure = np.where(phase < 0.60, _ease(closing), 1 - _ease(opening))
        openness = np.minimum(openness, np.where((phase >= 0) & (phase <= 1), 1 - closure, 1))
        start += length + max(0.6, rng.exponential(1.0 / rate))
    return openness.astype(np.float32)


def brow_raise(rng: np.random.Generator, accent: np.ndarray, fps: float,
               expressiveness: float) -> np.ndarray:
    """Brow raise (N,) in [0, 1] on the peaks of ``accent`` (N,), a pitch x loudness contour."""
    num_frames = len(accent)
    t = video_frame_times(num_frames, fps)
    raise_ = np.zeros(num_frames)
    last = -np.inf
    for i in _peaks(accent, threshold=1.0):
        if t[i] - last < 0.5 or rng.uniform() > expressiveness:
            continue
        last = t[i]
        rise, hold, fall = 0.12, rng.uniform(0.1, 0.3), 0.3
        start = t[i] - rise / 2
        up = _ease(np.clip((t - start) / rise, 0, 1))
        down = _ease(np.clip((t - start - rise - hold) / fall, 0, 1))
        raise_ = np.maximum(raise_, rng.uniform(0.5, 1.0) * up * (1 - down))
    return raise_.astype(np.float32)


def gaze_track(rng: np.random.Generator, num_frames: int, fps: float) -> np.ndarray:
    """Gaze (N, 2): fixations (mean 1.5 s) near the camera or, one time in three, elsewhere."""
    t = video_frame_times(num_frames, fps)
    gaze = np.zeros((num_frames, 2))
    start = 0.0
    while start < num_frames / fps:
        spread = 0.15 if rng.uniform() < 2 / 3 else 0.6
        target = np.clip(rng.normal(0, spread, 2) * (1.0, 0.5), -1, 1)
        length = max(0.3, rng.exponential(1.5))
        gaze[(t >= start) & (t < start + length)] = target
        start += length
    return gaze.astype(np.float32)


def head_motion(rng: np.random.Generator, loudness: np.ndarray, fps: float,
                amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Head pose (N, 3) in degrees and offset (N, 3); ``amount`` scales the motion (1 = typical).

    ``loudness`` (N,) in [0, 1] drives small downward nods on stressed speech.
    """
    t = video_frame_times(len(loudness), fps)[:, None]
    # Typical range (one standard deviation) of each axis: yaw, pitch, roll (deg), dx, dy, scale.
    scale = amount * np.array([2.5, 2.0, 1.5, 0.012, 0.008, 0.012])
    freq = rng.uniform(0.08, 0.5, (3, 6))
    phase = rng.uniform(0, 2 * np.pi, (3, 6))
    weight = rng.dirichlet(np.ones(3), 6).T  # (3, 6): each axis's power split over 3 sinusoids
    wander = (np.sqrt(2 * weight)[None] * np.sin(2 * np.pi * freq[None] * t[..., None] + phase[None])).sum(1)
    motion = wander * scale  # (N, 6)
    kernel = np.hanning(max(3, int(0.3 * fps)))
    nod = np.convolve(loudness, kernel / kernel.sum(), mode="same")
    motion[:, 1] += amount * 2.0 * (nod - nod.mean())  # chin dips on loud stretches
    return motion[:, :3].astype(np.float32), motion[:, 3:].astype(np.float32)


def _peaks(x: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of local maxima of ``x`` that are at least ``threshold``."""
    inner = (x[1:-1] >= x[:-2]) & (x[1:-1] > x[2:]) & (x[1:-1] >= threshold)
    return np.flatnonzero(inner) + 1


def _ease(x: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 (raised cosine) for ``x`` in [0, 1]."""
    return 0.5 - 0.5 * np.cos(np.pi * x)
