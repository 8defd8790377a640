"""A photo and speech in, an mp4 file out: what ``python -m talking generate`` and the app run.

:func:`generate_video` first reads the inputs (:func:`read_inputs`: the photo decoded and its
face found, the speech decoded or spoken by espeak-ng), so that a bad one is answered in about a
second, before torch is imported or a model loaded. Then it loads the pipeline (once per
checkpoint and device, then from a cache, so the app pays for it once), calls it on the decoded
arrays, and streams its frames into :class:`talking.video.VideoWriter` one at a time: memory
stays flat however long the speech. The mp4 appears only once complete; on any failure nothing
is left under the output name, and a file already there is untouched.

The mp4's sound track is the speech exactly as the model heard it (mono, 22050 Hz), so picture
and sound come from the same samples whatever the input (a file, an array or espeak-ng's text).

This module stays light to import (no torch): the CLI builds its flags from
:class:`GenerateOptions` for ``--help`` too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from talking.audio import check_length_limit
from talking.config import ARTICULATION, MAX_ARTICULATION, MAX_PHOTO_SIDE, SAMPLE_RATE, AudioConfig
from talking.errors import TalkingError
from talking.speech import Utterance, Voice

if TYPE_CHECKING:
    import numpy as np

    from talking.pipeline import AudioInput, ImageInput, TalkingFacePipeline

# save_pretrained folders of the shipped models, beside the package (so any working dir works).
CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
# libx264 "veryfast" encodes 720p 2.4x faster than "medium" on 2 cores, with files no larger
# (the background of a talking-head video is static), so the encoder never holds the model up.
ENCODER_PRESET = "veryfast"
MAX_SEED = 2**64 - 1  # seeds are 64-bit, as torch's and numpy's generators take them
MAX_THREADS = 1024


@dataclasses.dataclass(frozen=True)
class GenerateOptions:
    """How to make the video; every field is a ``python -m talking generate`` flag."""

    checkpoint: str | None = dataclasses.field(default=None, metadata={
        "help": "pipeline folder (save_pretrained); default: checkpoints/man-VARIANT in the repo"})
    variant: str | None = dataclasses.field(default=None, metadata={
        "help": "optical or keypoint; picks the default checkpoint (optical) and, with "
                "--checkpoint, must match it"})
    device: str = dataclasses.field(default="auto", metadata={
        "help": "torch device: cpu, cuda, cuda:1, mps; auto = cuda when available, else cpu"})
    seed: int | None = dataclasses.field(default=None, metadata={
        "help": "draw a speaking style with this seed (how wide the mouth opens, 0.8-1.25 times "
                "the predicted opening); none = as predicted"})
    articulation: float = dataclasses.field(default=ARTICULATION, metadata={
        "help": "how wide the mouth opens against the training corpus's articulation (real speakers "
                "open wider: 1.4); 1 = as predicted"})
    clean_speech: bool = dataclasses.field(default=False, metadata={
        "help": "for a recording with music or noise under the voice: make the motion from the "
                "voice alone, at the training speech's level (DeepFilterNet3, ~0.25 s per second "
                "of audio; the video keeps the recording's sound)"})
    crop_only: bool = dataclasses.field(default=False, metadata={
        "help": "write the aligned face crops at the model's resolution, not the whole photo"})
    text: str | None = dataclasses.field(default=None, metadata={
        "help": "words for espeak-ng to speak, instead of --audio"})
    voice: str = dataclasses.field(default=Voice().name, metadata={
        "help": "espeak-ng voice for --text, e.g. en-gb or en-us+f3 (espeak-ng --voices)"})
    transcript: str | None = dataclasses.field(default=None, metadata={
        "help": "the English words said in --audio: the lips shut on their /p b m/, timed by "
                "forced alignment (~0.1x real time); --text does this by itself"})
    max_side: int = dataclasses.field(default=MAX_PHOTO_SIDE, metadata={
        "help": "downscale the photo to at most this many pixels on its long side"})
    max_seconds: float = dataclasses.field(default=AudioConfig().max_seconds, metadata={
        "help": "refuse speech longer than this many seconds"})
    threads: int | None = dataclasses.field(default=None, metadata={
        "help": "CPU threads for torch; default: OMP_NUM_THREADS if set, else the physical "
                "cores but one, which is left to the video encoder"})

    def __post_init__(self) -> None:
        if self.max_side < 16:
            raise TalkingError(f"max_side must be at least 16 pixels, got {self.max_side}.")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise TalkingError(f"threads must be between 1 and {MAX_THREADS}, got {self.threads}.")
        check_length_limit(AudioConfig(max_seconds=self.max_seconds))
        if not 0 < self.articulation <= MAX_ARTICULATION:
            raise TalkingError(f"articulation must be in (0, {MAX_ARTICULATION}], got {self.articulation}.")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise TalkingError(f"seed must be between 0 and 2**64 - 1, got {self.seed}.")
        if self.text is not None:
            Voice.parse(self.voice)
            if self.transcript is not None:
                raise TalkingError("A transcript is for recorded speech (--audio); --text is its own.")


@dataclasses.dataclass(frozen=True)
class GeneratedVideo:
    """What :func:`generate_video` wrote: ``path``, its frame count and rate, the speech's
    duration in seconds, the aligned face crop the model saw (R, R, 3) uint8 RGB, and the model
    that made it."""

    path: Path
    num_frames: int
    fps: int
    duration: float
    face: np.ndarray
    variant: str
    checkpoint: Path


def generate_video(
    image: ImageInput,
    audio: AudioInput | None,
    output: str | os.PathLike,
    options: GenerateOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GeneratedVideo:
    """Write the mp4 ``output`` of the person in ``image`` saying ``audio`` (or ``options.text``).

    ``progress(done_frames, total_frames)`` is called as each frame is written. Raises
    :class:`TalkingError` for a bad photo, speech or checkpoint, before any file is made.
    """
    from talking.video import VideoWriter

    options = options or GenerateOptions()
    output = Path(output)
    if output.suffix.lower() != ".mp4":
        raise TalkingError(f"{output.name}: the output must be an .mp4 file.")
    # 1. the inputs, checked before anything heavy is imported or loaded
    photo, speech = read_inputs(image, audio, options)
    # 2. the pipeline, loaded once per checkpoint and device
    checkpoint = checkpoint_folder(options)
    set_threads(options.threads)
    pipe = load_pipeline(checkpoint, resolve_device(options.device))
    if options.variant is not None and pipe.variant != options.variant:
        raise TalkingError(f"{checkpoint} holds the {pipe.variant} variant, not {options.variant}.")
    # 3. align the face and compute the speech's features; the frames are made as they are read
    #    (typed text as espeak-ng's utterance, which knows its /p b m/)
    result = pipe(photo, speech, sample_rate=SAMPLE_RATE, transcript=options.transcript,
                  crop_only=options.crop_only, max_side=options.max_side,
                  max_seconds=options.max_seconds, seed=options.seed,
                  articulation=options.articulation, clean_speech=options.clean_speech,
                  callback=progress)
    # 4. stream them into the mp4, which appears only once complete
    with VideoWriter(output, result.audio, fps=result.fps, sample_rate=result.sample_rate,
                     preset=ENCODER_PRESET) as writer:
        for frame in result.frames:
            writer.write(frame)
    return GeneratedVideo(path=output, num_frames=writer.num_frames, fps=result.fps,
                          duration=len(result.audio) / result.sample_rate, face=result.face,
                          variant=pipe.variant, checkpoint=checkpoint)


def warm_up() -> None:
    """Do now what the first clip of a process would otherwise wait for, ~4-5 s on 2 cores that
    no later clip pays: start MediaPipe's face graphs, compute the audio features once (librosa's
    and numba's first call) and import the video writer (moviepy). The app calls it at start-up,
    after loading the models."""
    import numpy as np
    from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter  # noqa: F401  (the import is the work)

    from talking import realface
    from talking.audio import extract_features

    realface.start()
    extract_features(np.zeros(SAMPLE_RATE, np.float32))


def read_inputs(image: ImageInput, audio: AudioInput | None,
                options: GenerateOptions) -> tuple[np.ndarray, np.ndarray | Utterance]:
    """The photo (H, W, 3) uint8 RGB, at most ``options.max_side`` on its long side and with a
    face in it, and the speech: ``audio`` decoded, (S,) float32 at 22050 Hz, or ``options.text``
    spoken by espeak-ng (its :class:`~talking.speech.Utterance`, which times its phonemes).
    :class:`TalkingError` for a bad one; nothing heavy is imported."""
    from talking.audio import load_audio
    from talking.face import detect_face
    from talking.image import load_image
    from talking.speech import synthesize

    if (audio is None) == (options.text is None):
        raise TalkingError("No speech: give an audio file or a text to speak." if audio is None
                           else "Give the speech as audio or as text, not both.")
    photo = load_image(image, max_side=options.max_side)
    config = AudioConfig(max_seconds=options.max_seconds)
    if options.text is not None:
        speech = synthesize(options.text, Voice.parse(options.voice))
        load_audio(speech.audio, SAMPLE_RATE, config)  # its length, checked
    else:
        speech = load_audio(audio, config=config)
    # last, as the face detector takes the longest to start
    detect_face(photo, name=Path(image).name if isinstance(image, str | os.PathLike) else "the photo")
    return photo, speech


def checkpoint_folder(options: GenerateOptions) -> Path:
    """``options.checkpoint``, or the shipped ``checkpoints/man-<variant>`` folder."""
    from talking.models import VARIANTS

    if options.variant is not None and options.variant not in VARIANTS:
        raise TalkingError(f"Unknown variant {options.variant!r}: use one of {', '.join(VARIANTS)}.")
    if options.checkpoint is not None:
        return Path(options.checkpoint).expanduser().resolve()
    return CHECKPOINTS / f"man-{options.variant or 'optical'}"


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is available, else "cpu"; other names are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise TalkingError(f"Device {device!r} is not available here ({error}).") from error
    return device


@functools.lru_cache(maxsize=4)
def load_pipeline(folder: Path, device: str) -> TalkingFacePipeline:
    """The pipeline saved in ``folder``, in eval mode on ``device``; cached per (folder, device).

    Raises :class:`TalkingError` naming the folder when it is missing or damaged.
    """
    from talking.pipeline import TalkingFacePipeline

    if not (folder / "model_index.json").is_file():
        raise TalkingError(f"No checkpoint in {folder}: pass --checkpoint with a folder that "
                           "save_pretrained wrote (it holds model_index.json).")
    try:
        with _quiet_diffusers():
            pipe = TalkingFacePipeline.from_pretrained(folder, local_files_only=True,
                                                        use_safetensors=True)
        pipe.check_components()
        _check_finite(pipe)
    except Exception as error:  # diffusers, safetensors and json raise many types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TalkingError(f"The checkpoint in {folder} is damaged or incomplete ({reason}).") from error
    pipe.generator.eval()
    pipe.motion_predictor.eval()
    return pipe.to(device)


def _check_finite(pipe: TalkingFacePipeline) -> None:
    """ValueError naming the first weight that holds NaN or infinity. safetensors has no
    checksum, so damaged bytes load as other numbers; these would make black videos."""
    import torch

    for component in ("generator", "motion_predictor"):
        for name, tensor in getattr(pipe, component).state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ValueError(f"{component}.{name} holds NaN or infinite values")


@contextlib.contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """No loading bar and no log lines from diffusers: two small networks load in a blink, and a
    failure becomes our own one-line error."""
    from diffusers.utils import logging as diffusers_logging

    bar, verbosity = diffusers_logging.is_progress_bar_enabled(), diffusers_logging.get_verbosity()
    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity(diffusers_logging.CRITICAL)
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(verbosity)
        if bar:
            diffusers_logging.enable_progress_bar()


def set_threads(threads: int | None) -> None:
    """Give torch ``threads`` CPU threads, unless None and the user chose with
    ``OMP_NUM_THREADS``; by default one per physical core but one.

    Why not more: hyper-threads share a core's arithmetic units, and ffmpeg encodes while the
    frames are made. Every convolution of a batch-1 frame ends with its OpenMP threads waiting
    for each other, so one thread that the encoder (or anything else) preempts stalls them all:
    on 2 busy cores, a 10 s clip took 17-150 s with 2 threads and 6.5-7 s with 1.
    """
    import torch

    if threads is None and "OMP_NUM_THREADS" not in os.environ:
        cores = physical_cores()
        threads = None if cores is None else max(1, cores - 1)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)


def physical_cores() -> int | None:
    """Physical cores among the CPUs this process may run on; None where Linux's CPU topology
    (/sys/devices/system/cpu) cannot be read."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = set()
    for cpu in os.sched_getaffinity(0):
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(),
                       (topology / "core_id").read_text()))
        except OSError:
            return None
    return len(cores) or None
