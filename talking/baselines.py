"""Baselines for evaluation on the synthetic corpus: what a talking-face model has to beat.

- **static**: the clip's first frame (the source image every model is given) repeated. It is
  perfect wherever nothing moves, so on aligned crops its SSIM and PSNR are high; its mouth never
  moves, so it has no sync and no blinks.
- **energy**: the static baseline with a moving mouth: the clip's own face re-rendered by the
  corpus renderer (same identity, scene and camera) with head, eyes, brows and gaze held as in
  the first frame, and a jaw opening that follows the loudness of the speech (the per-frame
  energy feature, rescaled from the clip's quietest to its loudest frame to
  0..:data:`ENERGY_MAX_OPENING`); every other mouth parameter rests. It is the classic "open the
  mouth when it is loud" animation, drawn by the renderer that made the ground truth, so against
  the static baseline it shows what a loudness-driven mouth is worth, and against MAN what
  learning the mouth's shapes from the mel spectrogram adds.
- **true mouth**: the same re-rendering (head still) with the clip's own ground-truth mouth: what
  a model would make that keeps the photo's pose and gets the mouth exactly right. Audio cannot
  tell where the head wanders or when the eyes blink, so against the real, moving frames this is
  about the best an audio-driven model of a still photo can score on the mouth metrics.

Re-rendering needs the clip's face, scene and motion. The motion is in ``truth.npz``; the face
and scene are drawn by :func:`talking.corpus.build.build_clip` from its random stream, which
:func:`clip_scene` replays. The replay is checked, not trusted: the replayed motion must equal the
recorded ground truth and the replayed first frame the stored one, else :class:`TalkingError`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from talking.config import MOUTH_PARAMETERS
from talking.corpus.appearance import FaceStyle, SceneStyle, sample_scene_style
from talking.corpus.build import ClipPlan, CorpusConfig, plan_corpus, speaker_style
from talking.corpus.geometry import face_frame
from talking.corpus.motion import FaceMotion, face_motion, prosody
from talking.corpus.render import FaceRenderer, render_clip
from talking.data import Clip, load_index
from talking.errors import TalkingError

ENERGY_MAX_OPENING = 0.6  # jaw opening at the clip's loudest frame (between the visemes EH and OH)


def static_frames(clip: Clip) -> np.ndarray:
    """(N, R, R, 3) uint8: the clip's first frame, N times."""
    return np.repeat(np.asarray(clip.frames[:1]), clip.num_frames, axis=0)


def energy_opening(clip: Clip) -> np.ndarray:
    """Jaw opening (N,) in [0, ENERGY_MAX_OPENING] from the loudness of the clip's speech."""
    _, loudness = prosody(clip.features)
    span = float(loudness.max() - loudness.min())
    if span == 0:
        return np.zeros_like(loudness)
    return ENERGY_MAX_OPENING * (loudness - loudness.min()) / span


def energy_frames(clip: Clip, corpus: str | Path) -> np.ndarray:
    """(N, R, R, 3) uint8: the clip's first frame held still, re-rendered with the energy-driven
    mouth (every mouth parameter at rest but the jaw)."""
    mouth = np.zeros((clip.num_frames, len(MOUTH_PARAMETERS)), np.float32)
    mouth[:, MOUTH_PARAMETERS.index("jaw_open")] = energy_opening(clip)
    return still_head_frames(clip, corpus, mouth)


def true_mouth_frames(clip: Clip, corpus: str | Path) -> np.ndarray:
    """(N, R, R, 3) uint8: the clip's first frame held still, re-rendered with the clip's own
    mouth (its ground-truth visemes)."""
    return still_head_frames(clip, corpus, clip.truth["mouth"])


def still_head_frames(clip: Clip, corpus: str | Path, mouth: np.ndarray,
                      resolution: int | None = None) -> np.ndarray:
    """(N, R, R, 3) uint8: the clip's face re-rendered with head, eyes, brows, gaze and camera
    noise held as in its first frame, and ``mouth`` (N, len(MOUTH_PARAMETERS)) per frame, at
    ``resolution`` (None: the clip's). The renderer would draw new noise each frame; holding the
    first frame's makes these frames differ from the static baseline in the mouth alone."""
    style, scene, motion = clip_scene(clip, corpus)
    resolution = resolution or clip.frames.shape[1]
    renderer = FaceRenderer(style, scene, resolution)
    first_frame_noise = renderer.rng.bit_generator.state
    yaw, pitch, roll = (float(v) for v in motion.head_pose[0])
    frames = np.empty((len(mouth), resolution, resolution, 3), np.uint8)
    for t in range(len(mouth)):
        face = face_frame(style, mouth[t], float(motion.eye_openness[0]), float(motion.brow_raise[0]),
                          motion.gaze[0], yaw, pitch)
        renderer.rng.bit_generator.state = first_frame_noise
        frames[t], _ = renderer.render(face, motion.head_offset[0], roll)
    return frames


def clip_scene(clip: Clip, corpus: str | Path) -> tuple[FaceStyle, SceneStyle, FaceMotion]:
    """The face, scene and motion that drew ``clip`` of the synthetic corpus at ``corpus``,
    replayed from the corpus seed and checked against the clip."""
    config, plans = _corpus_plan(str(corpus))
    if clip.id not in plans or clip.truth is None:
        raise TalkingError(f"{clip.id} is not a clip of the synthetic corpus at {corpus}")
    plan, truth = plans[clip.id], clip.truth
    style = speaker_style(config, plan)
    # The draws of build_clip, in its order: 1. audio (lead, trail, level, noise floor), ...
    rng = np.random.default_rng([config.seed, 2, plan.index])
    rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.6), rng.uniform(0.3, 0.9)
    if rng.uniform() < 0.7:
        rng.uniform(25, 50)
        rng.normal(0, 1, len(clip.audio))  # consumed as many draws whatever the noise's scale
    # ... 2. motion, 3. scene.
    motion = face_motion(rng, clip.features, blink_rate=rng.uniform(0.2, 0.5),
                         expressiveness=style.expressiveness, head_amount=style.head_motion)
    scene = sample_scene_style(rng)
    first = FaceMotion(**{name: value[:1] for name, value in vars(motion).items()})
    frame, _ = render_clip(style, scene, truth["mouth"][:1], first, clip.frames.shape[1])
    if not all(np.array_equal(value, truth[name]) for name, value in vars(motion).items()) or \
            not np.array_equal(frame[0], clip.frames[0]):
        raise TalkingError(f"cannot re-render {clip.id}: the corpus at {corpus} was built by another "
                           "version of the renderer; rebuild it to evaluate the re-rendered baselines")
    return style, scene, motion


@functools.lru_cache(maxsize=4)
def _corpus_plan(corpus: str) -> tuple[CorpusConfig, dict[str, ClipPlan]]:
    index = load_index(corpus)
    if index.get("source") != "synthetic" or "config" not in index:
        raise TalkingError(f"{corpus} is not a synthetic corpus: the energy and true-mouth baselines "
                           "re-render its faces")
    config = CorpusConfig(out=corpus, **index["config"])
    return config, {plan.id: plan for plan in plan_corpus(config)}

