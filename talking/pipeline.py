"""The talking-face pipeline: a photo of a person and speech in, video frames out.

``TalkingFacePipeline`` holds the two networks that run at inference: the motion predictor
(:mod:`talking.models.motion`: speech -> mouth parameters -> lip and jaw landmarks, and from them
the generator's motion input) and the MAN generator; the variant is the predictor's
(``FlowMotion`` -> "optical", ``KeypointMotion`` -> "keypoint"). ``save_pretrained(dir)`` writes
one folder with ``model_index.json`` and a subfolder per network, which ``from_pretrained(dir)``
reloads.

Calling the pipeline does the per-clip work up front, so that every bad input fails before any
frame is made: the face is found and aligned with its landmarks (:mod:`talking.face`) and an
open mouth closed (:mod:`talking.closed_mouth`), the speech decoded or spoken by espeak-ng, its
features computed (:mod:`talking.audio`), and the whole clip's mouth motion predicted (a few
kilobytes), its lips shut on every /p b m/ when the words are known (typed text, or a recording
with its transcript: :mod:`talking.lip_closures`). The frames come back as a lazy iterator, made
``batch_size`` at a time: the landmarks of each frame give the thin-plate flow and the generator's
motion input, the generator renders the crop, and :class:`~talking.composite.Compositor` makes the
frame at the photo's own resolution (the photo warped by the flow, the rendering only where the
mouth shows what the photo does not). Memory stays flat in the clip's length. The pipeline leaves
torch's thread count to its caller (the CLI and the app set it: ``talking.generate.set_threads``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from PIL import Image

from talking.audio import AudioWindows, extract_features, load_audio
from talking.clean_speech import heard_speech, lift_quiet
from talking.closed_mouth import close_mouth
from talking.composite import (
    Compositor,
    Detail,
    compose_crop,
    detail_inputs,
    mouth_openings,
    opening_box,
)
from talking.config import ARTICULATION, MAX_PHOTO_SIDE, MOUTH_PARAMETERS, SAMPLE_RATE, AudioConfig
from talking.errors import TalkingError, TalkingWarning
from talking.face import align_face
from talking.image import load_image
from talking.lip_closures import close_lips, closure_weights, closures_from_phonemes, closures_from_phones
from talking.models.generator import MANGenerator
from talking.models.motion import MotionPredictor
from talking.models.refiner import MouthRefiner
from talking.phonemes import align_phones
from talking.speech import Utterance, Voice, synthesize

ImageInput = str | os.PathLike | np.ndarray | Image.Image
AudioInput = str | os.PathLike | np.ndarray | Utterance
ProgressCallback = Callable[[int, int], None]
DETAIL_MARGIN = 2  # crop pixels the refined inside reaches beyond the frames' openings


@dataclass
class TalkingFaceOutput(BaseOutput):
    """
    Args:
        frames: the video frames, each (H, W, 3) uint8 RGB, made one by one as the iterator is
            read: the photo with its face replaced, or the aligned crop (R, R, 3) with crop_only.
        audio: the speech the frames follow, (S,) float32 at ``sample_rate``.
        sample_rate: samples per second of ``audio`` (22050).
        fps: frames per second (25).
        num_frames: how many frames ``frames`` yields, ``ceil(S * fps / sample_rate)``.
        face: the aligned face crop the model saw, (R, R, 3) uint8 RGB.
    """

    frames: Iterator[np.ndarray]
    audio: np.ndarray
    sample_rate: int
    fps: int
    num_frames: int
    face: np.ndarray


class TalkingFacePipeline(DiffusionPipeline):
    """Audio-driven talking-face generation with multimodal adaptive normalization (MAN).

    Args:
        generator: renders a frame from the source, the frame's motion and its audio.
        motion_predictor: predicts each frame's mouth motion from the speech and draws the
            generator's motion input from it (a flow or keypoint heatmaps).
        refiner: makes the generator's rendering of the mouth's inside sharp at more than the
            crop's resolution, for the full-resolution frames; None: the rendering upsampled.
    """

    _optional_components = ["refiner"]

    def __init__(self, generator: MANGenerator, motion_predictor: MotionPredictor,
                 refiner: MouthRefiner | None = None) -> None:
        super().__init__()
        self.register_modules(generator=generator, motion_predictor=motion_predictor, refiner=refiner)

    @property
    def variant(self) -> str:
        """"optical" (thin-plate flow) or "keypoint" (contour heatmaps)."""
        return self.motion_predictor.variant

    @property
    def resolution(self) -> int:
        """Side of the square face crops the generator works on."""
        return self.generator.config.resolution

    @property
    def audio_config(self) -> AudioConfig:
        """The audio front-end's settings that the networks were built for."""
        return AudioConfig(n_mels=self.generator.config.n_mels, window=self.generator.config.audio_window)

    def __call__(
        self,
        image: ImageInput,
        audio: AudioInput | None = None,
        *,
        sample_rate: int | None = None,
        text: str | None = None,
        voice: str = Voice().name,
        transcript: str | None = None,
        crop_only: bool = False,
        max_side: int | None = MAX_PHOTO_SIDE,
        max_seconds: float = AudioConfig().max_seconds,
        seed: int | None = None,
        articulation: float = ARTICULATION,
        clean_speech: bool = False,
        motion: np.ndarray | None = None,
        batch_size: int = 16,
        callback: ProgressCallback | None = None,
    ) -> TalkingFaceOutput:
        """Make the talking video of the person in ``image`` saying ``audio`` (or ``text``).

        Everything that can fail on the user's input fails here, before any frame is made; the
        frames are made lazily as ``output.frames`` is iterated.

        Args:
            image: a photo with one roughly frontal face: a file, an (H, W, 3) RGB array or a
                PIL image. EXIF orientation and transparency are handled (:mod:`talking.image`).
            audio: the speech: any audio file (wav, mp3, m4a, ...), an array with its
                ``sample_rate``, or espeak-ng's :class:`~talking.speech.Utterance` (whose /p b m/
                the lips shut on, as for ``text``). Give either ``audio`` or ``text``.
            sample_rate: samples per second of an ``audio`` array.
            text: words for espeak-ng to speak, instead of ``audio``.
            voice: espeak-ng voice for ``text``: a language, optionally with a variant, as in
                ``"en-us"`` or ``"en-gb+f3"`` (see ``espeak-ng --voices``).
            transcript: the English words of ``audio``: their /p b m/ are timed by forced
                alignment (~0.1x real time) and the lips shut on them (typed ``text`` does this by
                itself). A word outside pocketsphinx's dictionary, or words that do not fit the
                audio (another text, or speech buried under noise or music), make a
                :class:`~talking.errors.TalkingWarning`, and the lips follow the sound alone.
                A given ``motion`` is used as given.
            crop_only: yield the generated face crops (R, R, 3) instead of the full photo.
            max_side: the photo is downscaled to at most this many pixels on its long side
                (None keeps its size); the video has the photo's size.
            max_seconds: longer speech is refused with a TalkingError before any work.
            seed: draw a speaking style with this seed (how wide this speaker opens the mouth,
                0.8-1.25 times the predicted opening); None keeps the predicted motion.
            articulation: how wide the predicted mouth opens against the corpus's articulation
                (:data:`~talking.config.ARTICULATION`: real speakers open wider); 1 = as
                predicted. A given ``motion`` is used as given.
            clean_speech: make a recording's features from its voice alone, at the training
                speech's level (:mod:`talking.clean_speech`: DeepFilterNet3 takes music, noise and
                room out, ~0.25 s per second of audio); for recordings with music or noise under
                the voice. Without it, a recording quieter than any training speech is brought
                up to its level. The video keeps the recording's sound either way; espeak-ng's
                speech is used as it is.
            motion: (N, P) mouth parameters (:data:`~talking.config.MOUTH_PARAMETERS`, N the
                clip's frame count) to use instead of the predicted ones (baselines, puppeteering).
            batch_size: frames rendered in one batch (memory, not results).
            callback: called as ``callback(done_frames, total_frames)`` as each frame is made.
        """
        self.check_components()
        # 1. load the photo, find its face and its landmarks: a photo without one fails first;
        #    an open mouth is closed once, so that it can close in silence and on /p b m/ (its
        #    inside kept, to show where the frames open it)
        photo = load_image(image, max_side=max_side)
        aligned = align_face(photo, self.resolution, name=_display_name(image, "the photo"))
        photo, aligned, interior = close_mouth(photo, aligned, self.motion_predictor)

        # 2. the speech as mono float32 at 22050 Hz, decoded from the audio or spoken by espeak-ng,
        #    and when the words are known, where the lips shut: (start, end) seconds
        config = dataclasses.replace(self.audio_config, max_seconds=max_seconds)
        transcript = (transcript or "").strip()
        if transcript and text is not None:
            raise TalkingError("A transcript is for recorded speech; typed text is its own.")
        speech, rate, closures = _speech(audio, sample_rate, text, voice)
        recorded = closures is None  # espeak-ng's utterances come with their closures
        wav = load_audio(speech, rate, config=config)  # (S,)
        if transcript and motion is None:
            closures = _transcript_closures(wav, config.sample_rate, transcript)

        # 3. the paper's audio features of what the motion hears (a recording: lifted when quiet,
        #    or its voice alone, levelled), cut into one window per video frame
        heard = wav  # (S,)
        if recorded:
            hear = heard_speech if clean_speech else lift_quiet
            heard = hear(wav, config.sample_rate)
        windows = extract_features(heard, config).windows()  # N = ceil(S * fps / sr) windows

        # 4. the whole clip's mouth motion, from the speech alone (or as given), the jaw scaled
        #    once by the articulation (predicted motion only) and the seed's speaking style, the
        #    lips shut where the words have /p b m/ (predicted motion only)
        if motion is None:
            parameters = self.motion_predictor.predict_parameters(windows)  # (N, P)
            jaw_scale = articulation
        else:
            parameters = _given_motion(motion, len(windows)).to(self.device, self.dtype)
            jaw_scale, closures = 1.0, None
        if seed is not None:
            jaw_scale *= np.random.default_rng(seed).uniform(0.8, 1.25)
        parameters = self.motion_predictor.open_jaw(parameters, jaw_scale)
        if closures:
            parameters = close_lips(parameters, closure_weights(closures, len(windows), config.fps))

        # 5. render and composite the frames, lazily
        source = torch.from_numpy(aligned.crop).permute(2, 0, 1).float() / 127.5 - 1  # (3, R, R)
        landmarks = torch.from_numpy(aligned.landmarks).float()  # (68, 2) crop pixels
        compositor = None if crop_only else Compositor(photo, aligned.matrix, self.resolution,
                                                       interior=interior)
        refine = compositor is not None and compositor.detail_share > 0
        frames = self.generate_frames(source, landmarks, parameters, windows, batch_size=batch_size,
                                      refine=refine)
        return TalkingFaceOutput(
            frames=_finish(frames, compositor, len(windows), callback),
            audio=wav,
            sample_rate=config.sample_rate,
            fps=config.fps,
            num_frames=len(windows),
            face=aligned.crop,
        )

    def check_components(self) -> None:
        """Raise ValueError when generator and motion predictor do not fit together."""
        generator, predictor = self.generator.config, self.motion_predictor
        expected = (predictor.motion_type, predictor.motion_channels)
        if (generator.motion_type, generator.motion_channels) != expected:
            raise ValueError(
                f"the {self.variant} variant needs a generator with motion_type={expected[0]!r} "
                f"and motion_channels={expected[1]}, got {generator.motion_type!r} and "
                f"{generator.motion_channels}"
            )
        for key in ("resolution", "n_mels", "audio_window"):
            if generator[key] != predictor.config[key]:
                raise ValueError(f"generator and motion predictor disagree on {key}: {generator[key]} "
                                 f"vs {predictor.config[key]}")

    @torch.inference_mode()
    def generate_frames(
        self,
        source: torch.Tensor,
        landmarks: torch.Tensor,
        parameters: torch.Tensor,
        windows: AudioWindows,
        *,
        batch_size: int = 16,
        refine: bool = True,
    ) -> Iterator[FrameParts]:
        """Yield each frame's parts as soon as its batch is made.

        Args:
            source: the person's aligned face (3, R, R) in [-1, 1], R = ``resolution``.
            landmarks: the face's 68 landmarks (68, 2) in crop pixels.
            parameters: (N, P) mouth parameters of every frame.
            windows: the N frames' audio windows (:meth:`talking.audio.AudioFeatures.windows`).
            batch_size: frames rendered in one batch; memory stays flat in clip length.
            refine: refine the rendered insides (:attr:`FrameParts.detail`) when the pipeline
                has a refiner; the crops do not use them.
        """
        self.check_components()
        if source.ndim != 3:
            raise ValueError(f"source must be one image (3, H, W), got {tuple(source.shape)}")
        if len(parameters) != len(windows):
            raise ValueError(f"{len(parameters)} frames of motion for {len(windows)} audio windows")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        device, dtype = self.device, self.dtype
        predictor = self.motion_predictor

        # 1. encode the person's image and read its mouth state once: the same for every frame
        source = source.to(device=device, dtype=dtype)[None]  # (1, 3, R, R)
        features = self.generator.encode_source(source)
        source_landmarks = landmarks.to(device=device, dtype=dtype)[None]  # (1, 68, 2)
        source_state = predictor.source_parameters(source_landmarks)  # (1, P)

        resolution = source.shape[-1]
        blends = self.generator.config.warp_blend  # else no blend mask: the opening is all rendering
        for start in range(0, len(windows), batch_size):
            stop = min(start + batch_size, len(windows))
            count = stop - start
            # 2. this batch's landmarks, the flow that moves the photo's onto them and the mouth
            #    openings (where a rendering can show)
            targets = predictor.landmarks(parameters[start:stop], source_landmarks, source_state)
            flow = predictor.flow(source_landmarks.expand(count, -1, -1), targets, resolution)
            opening = mouth_openings(targets, resolution)  # (n, R, R)
            # 3. render the frames whose mouth is open (their motion input drawn for them
            #    alone), only around their openings
            rendering = source.new_zeros(count, 3, resolution, resolution)
            mask = source.new_ones(count, 1, resolution, resolution) if blends else None
            shown = torch.nonzero(opening.amax(dim=(1, 2)) > 0)[:, 0]
            if len(shown):
                frames = (shown + start).cpu().numpy()
                mel = torch.from_numpy(windows.mel[frames]).to(device=device, dtype=dtype)
                pitch = torch.from_numpy(windows.pitch[frames]).to(device=device)
                energy = torch.from_numpy(windows.energy[frames]).to(device=device, dtype=dtype)
                audio = self.generator.encode_audio(mel, pitch, energy)  # {name: (n', A)}
                motion = predictor.motion_input(targets[shown], flow[shown])  # (n', C_m, R, R)
                output = self.generator.render(features.expand(len(shown)), motion, audio,
                                               region=opening_box(opening[shown]))
                rendering[shown] = output.synthesised
                if mask is not None:
                    mask[shown] = output.mask
            # 4. keep the rendering only inside the predicted mouth opening
            crops, _ = compose_crop(source.expand(count, -1, -1, -1), flow, rendering, mask,
                                    opening)  # (n, 3, R, R)
            blend = source.new_zeros(count, resolution, resolution)  # (n, R, R)
            blend[shown] = 1 - mask[shown, 0] if mask is not None else 1.0
            # 5. the rendered insides, refined at more than the crop's resolution
            details = {}
            if refine and self.refiner is not None and len(shown):
                refined = self._details(rendering[shown], blend[shown], targets[shown], opening[shown],
                                        parameters[start:stop][shown])
                details = dict(zip(shown.tolist(), refined, strict=True))
            for i in range(count):
                yield FrameParts(crops[i], rendering[i], blend[i], flow[i], targets[i], details.get(i))

    def _details(self, rendering: torch.Tensor, share: torch.Tensor, landmarks: torch.Tensor,
                 opening: torch.Tensor, parameters: torch.Tensor) -> list[Detail]:
        """Each rendered frame's inside of the mouth refined by the refiner (:class:`Detail`),
        over the box around the frames' openings (B, R, R), given the frames' mouth parameters
        (B, P)."""
        top, left, bottom, right = opening_box(opening)
        margin, resolution = DETAIL_MARGIN, opening.shape[-1]
        region = (max(top - margin, 0), max(left - margin, 0), min(bottom + margin, resolution),
                  min(right + margin, resolution))
        scale = self.refiner.config.scale
        refined = self.refiner(*detail_inputs(rendering, share, landmarks, region, scale), parameters)
        return [Detail(to_uint8(image), region[0], region[1], scale) for image in refined]


@dataclass
class FrameParts:
    """What the compositor needs of one generated frame (crop resolution R).

    Args:
        crop: (3, R, R) in [-1, 1], the frame at crop resolution: the aligned photo moved by
            ``flow``, the rendering blended in inside the opening (:func:`talking.composite.compose_crop`).
        synthesised: (3, R, R) in [-1, 1], the generator's own rendering.
        blend: (R, R) in [0, 1], the rendering's share where the mouth is open (one minus the
            generator's blend mask; 0 when the generator did not render the frame, its mouth
            closed); the compositor draws the opening itself, at the photo's resolution.
        flow: (2, R, R) backward flow in crop pixels that moves the photo's landmarks.
        landmarks: (68, 2) the frame's landmarks in crop pixels (where the flow moves them).
        detail: the rendering's inside of the mouth refined at more than the crop's resolution
            (:class:`~talking.composite.Detail`); None without a refiner or a rendering.
    """

    crop: torch.Tensor
    synthesised: torch.Tensor
    blend: torch.Tensor
    flow: torch.Tensor
    landmarks: torch.Tensor
    detail: Detail | None = None

    def image(self, compositor: Compositor | None = None) -> np.ndarray:
        """The frame as (H, W, 3) uint8: composited into ``compositor``'s photo, or the
        (R, R, 3) crop when it is None."""
        if compositor is None:
            return to_uint8(self.crop)
        return compositor(self.flow.float().cpu().numpy(), to_uint8(self.synthesised),
                          self.blend.float().cpu().numpy(), self.landmarks.float().cpu().numpy(), self.detail)


def _given_motion(motion: np.ndarray, num_frames: int) -> torch.Tensor:
    """``motion`` checked as (N, P) finite values in [0, 1] -> a float tensor."""
    motion = np.asarray(motion, dtype=np.float32)
    expected = (num_frames, len(MOUTH_PARAMETERS))
    if motion.shape != expected:
        raise TalkingError(f"motion must be {expected} (frames x mouth parameters), got {motion.shape}")
    if not np.isfinite(motion).all() or motion.min() < 0 or motion.max() > 1:
        raise TalkingError("motion must hold finite mouth parameters in [0, 1]")
    return torch.from_numpy(motion)


def _display_name(source: object, fallback: str) -> str:
    """How error messages name a user's input: its file name, or ``fallback`` for data."""
    return Path(source).name if isinstance(source, str | os.PathLike) else fallback


def _speech(
    audio: AudioInput | None, sample_rate: int | None, text: str | None, voice: str
) -> tuple[AudioInput, int | None, list[tuple[float, float]] | None]:
    """The speech to load, its sample rate and its lip closures (seconds; None when unknown):
    ``audio`` as given, or an espeak-ng utterance (``text`` spoken, or given as ``audio``) at
    22050 Hz with its bilabials."""
    if audio is None and text is None:
        raise TalkingError("No speech: give an audio file or a text to speak.")
    if audio is not None and text is not None:
        raise TalkingError("Give the speech as audio or as text, not both.")
    utterance = synthesize(text, Voice.parse(voice)) if text is not None else audio
    if not isinstance(utterance, Utterance):
        return audio, sample_rate, None
    return utterance.audio, SAMPLE_RATE, closures_from_phonemes(utterance.phonemes)


def _transcript_closures(wav: np.ndarray, sample_rate: int,
                         transcript: str) -> list[tuple[float, float]] | None:
    """The /p b m/ of ``transcript`` timed in ``wav`` (seconds); None, with a TalkingWarning, when
    they cannot be."""
    try:
        return closures_from_phones(align_phones(wav, sample_rate, transcript))
    except TalkingError as error:
        warnings.warn(f"{error} The lips follow the sound alone.", TalkingWarning, stacklevel=3)
        return None


def _finish(
    frames: Iterator[FrameParts],
    compositor: Compositor | None,
    total: int,
    callback: ProgressCallback | None,
) -> Iterator[np.ndarray]:
    """Each generated frame as (H, W, 3) uint8: composited into the photo, or the (R, R, 3)
    crop when ``compositor`` is None; ``callback(done, total)`` as each is made. The model
    makes the next frames on a thread of its own while this one composites."""
    for done, parts in enumerate(ahead(frames), start=1):
        image = parts.image(compositor)
        if callback is not None:
            callback(done, total)
        yield image


def ahead(items: Iterator, size: int = 32) -> Iterator:
    """``items``, read up to ``size`` ahead on a thread of their own: the model (torch) makes
    frames while the caller composites and encodes the ones made (OpenCV and numpy let go of
    the GIL, so both cores work). The thread's exceptions are raised here, in order; closing
    this iterator early stops the thread at its next item."""
    done = object()
    queue: Queue = Queue(maxsize=size)
    stop = threading.Event()

    def read() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put((item, None))
        except BaseException as error:  # handed to the reader, raised there
            queue.put((done, error))
            return
        queue.put((done, None))

    thread = threading.Thread(target=read, name="talking-frames", daemon=True)
    thread.start()
    try:
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a thread waiting on a full queue
            try:
                queue.get_nowait()
            except Empty:
                thread.join(timeout=0.05)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, R, R) in [-1, 1] -> (R, R, 3) uint8."""
    image = image.add(1).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)
    return image.permute(1, 2, 0).contiguous().cpu().numpy()
