"""The methods the real-input evaluation compares; each writes the mp4 a user would get.

A method is ``make(photo, wav, words, path)``: photo (H, W, 3) uint8 RGB, speech (S,) float32
at 22050 Hz, the words said in it (known or recognised), the mp4 to write. Every method encodes
through :func:`encode`, with the settings ``talking.generate`` uses, so that the ``static`` video
(the photo held still) is the photo as the encoder leaves it: the ceiling of every other
method's sharpness.

- ``static``: the photo repeated;
- a MAN checkpoint: :class:`talking.pipeline.TalkingFacePipeline` as the product runs it;
- a MAN checkpoint ``+words``: the same, given the clip's words as its ``transcript`` (the lips
  shut on their /p b m/: :mod:`talking.lip_closures`). The evaluation times its /p b m/ by the
  same alignment of the same words, so this row shows whether the video shows the closures it
  is told, not whether the model hears them;
- ``energy``: a checkpoint driven by a mouth (the pipeline's ``motion=``, (N, 7) mouth
  parameters) that rests but for ``jaw_open``, which follows the speech's loudness: the classic
  "open the mouth when it is loud" animation (:mod:`talking.baselines` draws the same on the
  corpus). Skipped while the pipeline takes no ``motion``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from talking.audio import frame_rms
from talking.config import FPS, SAMPLE_RATE

MakeVideo = Callable[[np.ndarray, np.ndarray, str, Path], None]  # photo, wav, words, mp4 to write
SHIPPED = {"optical": "man-optical", "keypoint": "man-keypoint"}
WITH_WORDS = "+words"  # a shipped checkpoint given the clip's words: "optical+words"
WITH_CLEAN_SPEECH = "+clean"  # ... hearing the clip's voice alone (talking.clean_speech): "optical+clean"


def encode(frames: Iterable[np.ndarray], wav: np.ndarray, path: Path) -> None:
    """Write ``frames`` with ``wav`` as ``talking.generate`` writes its videos."""
    from talking.generate import ENCODER_PRESET
    from talking.video import VideoWriter

    with VideoWriter(path, wav, fps=FPS, sample_rate=SAMPLE_RATE, preset=ENCODER_PRESET) as writer:
        for frame in frames:
            writer.write(frame)


def static_video(photo: np.ndarray, wav: np.ndarray, words: str, path: Path) -> None:
    """The photo held still for the length of the speech."""
    from talking.audio import num_video_frames

    encode((photo for _ in range(num_video_frames(len(wav)))), wav, path)


def energy_motion(wav: np.ndarray) -> np.ndarray:
    """(N, 7) mouth parameters (corpus order) at rest but ``jaw_open``, which follows the speech's
    RMS rescaled from its quietest to its loudest frame to 0..ENERGY_MAX_OPENING."""
    from talking.audio import num_video_frames
    from talking.baselines import ENERGY_MAX_OPENING
    from talking.config import MOUTH_PARAMETERS

    frames = num_video_frames(len(wav))
    rms = frame_rms(wav, SAMPLE_RATE, FPS, frames)
    motion = np.zeros((frames, len(MOUTH_PARAMETERS)), np.float32)
    span = float(rms.max() - rms.min())
    if span > 0:
        motion[:, MOUTH_PARAMETERS.index("jaw_open")] = ENERGY_MAX_OPENING * (rms - rms.min()) / span
    return motion


def model_video(folder: Path, device: str, motion: Callable[[np.ndarray], np.ndarray] | None = None,
                words: bool = False, clean_speech: bool = False) -> MakeVideo:
    """The pipeline in ``folder``; with ``motion``, driven by ``motion(wav)`` instead of its own;
    with ``words``, given the clip's words as its transcript; with ``clean_speech``, its motion
    made from the clip's voice alone."""
    from talking.generate import load_pipeline, set_threads

    set_threads(None)
    pipe = load_pipeline(folder.resolve(), device)

    def make(photo: np.ndarray, wav: np.ndarray, said: str, path: Path) -> None:
        extra = {} if motion is None else {"motion": motion(wav)}
        if words and said:
            extra["transcript"] = said
        result = pipe(photo, wav, sample_rate=SAMPLE_RATE, clean_speech=clean_speech, **extra)
        encode(result.frames, result.audio, path)

    return make


def takes_motion() -> bool:
    """Whether the pipeline can be driven by a given mouth motion (the energy baseline needs it)."""
    from talking.pipeline import TalkingFacePipeline

    return "motion" in inspect.signature(TalkingFacePipeline.__call__).parameters


def build_methods(checkpoints: list[str], names: list[str], device: str) -> dict[str, MakeVideo]:
    """``static`` first (the sharpness ceiling), then the shipped checkpoints among ``names``
    (optical, keypoint, and either given the words or hearing the voice alone: optical+words,
    optical+clean, ...) and ``checkpoints`` by
    folder name, then ``energy`` if asked for and the pipeline takes a motion."""
    from talking.generate import CHECKPOINTS

    folders = {f"man-{n}": CHECKPOINTS / SHIPPED[n] for n in names if n in SHIPPED}
    folders.update({Path(c).name: Path(c) for c in checkpoints})
    methods: dict[str, MakeVideo] = {"static": static_video}  # first: every case's ceiling
    methods.update({name: model_video(folder, device) for name, folder in folders.items()})
    for n in names:
        for suffix, option in ((WITH_WORDS, "words"), (WITH_CLEAN_SPEECH, "clean_speech")):
            shipped = n.removesuffix(suffix)
            if n.endswith(suffix) and shipped in SHIPPED:
                methods[f"man-{n}"] = model_video(CHECKPOINTS / SHIPPED[shipped], device, **{option: True})
    if "energy" in names:
        if not takes_motion() or not folders:
            print("energy: skipped (the pipeline takes no motion=, or no checkpoint to drive)")
        else:
            methods["energy"] = model_video(next(iter(folders.values())), device, energy_motion)
    return methods
