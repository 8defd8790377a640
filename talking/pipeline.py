"""The talking-face pipeline: a photo of a person and speech in, video frames out.

``TalkingFacePipeline`` holds the two networks that run at inference, the MAN generator and its
motion predictor; the variant follows from the predictor's class (``FlowPredictor`` ->
"optical", ``KeypointPredictor`` -> "keypoint"). ``save_pretrained(dir)`` writes one folder
with ``model_index.json`` and a subfolder per network, which ``from_pretrained(dir)`` reloads.

Calling the pipeline does the per-clip work up front, so that every bad input fails before any
frame is made: the face is found and aligned (:mod:`talking.face`), the speech decoded or spoken
by espeak-ng, its features computed (:mod:`talking.audio`). The frames come back as a lazy
iterator: each is generated, pasted into the photo and handed over before the next is made, so a
writer or a UI can stream them and memory stays flat in the clip's length. The pipeline leaves
torch's thread count to its caller (the CLI and the app set it: ``talking.generate.set_threads``).

Generation is autoregressive as in the paper: the motion of frame t is predicted from frames
t-5..t-1 (the source image repeated before the clip starts) and the frame's mel window, so
frames are made one after another. What does not depend on the recurrence is batched: the source
is encoded once per clip, and the audio windows are encoded ``batch_size`` frames at a time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from PIL import Image

from talking.audio import AudioWindows, extract_features, load_audio
from talking.config import MAX_PHOTO_SIDE, SAMPLE_RATE, AudioConfig
from talking.errors import TalkingError
from talking.face import Paster, align_face
from talking.image import load_image
from talking.models.flow import FlowPredictor
from talking.models.generator import MANGenerator
from talking.models.keypoints import KeypointPredictor
from talking.speech import Voice, synthesize

ImageInput = str | os.PathLike | np.ndarray | Image.Image
AudioInput = str | os.PathLike | np.ndarray
ProgressCallback = Callable[[int, int], None]


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
        motion_predictor: predicts each frame's motion (flow or keypoint heatmaps).
    """

    def __init__(
        self, generator: MANGenerator, motion_predictor: FlowPredictor | KeypointPredictor
    ) -> None:
        super().__init__()
        self.register_modules(generator=generator, motion_predictor=motion_predictor)

    @property
    def variant(self) -> str:
        """"optical" (flow predictor) or "keypoint" (heatmap predictor)."""
        return "optical" if isinstance(self.motion_predictor, FlowPredictor) else "keypoint"

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
        crop_only: bool = False,
        max_side: int | None = MAX_PHOTO_SIDE,
        max_seconds: float = AudioConfig().max_seconds,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        callback: ProgressCallback | None = None,
    ) -> TalkingFaceOutput:
        """Make the talking video of the person in ``image`` saying ``audio`` (or ``text``).

        Everything that can fail on the user's input fails here, before any frame is made; the
        frames are made lazily as ``output.frames`` is iterated.

        Args:
            image: a photo with one roughly frontal face: a file, an (H, W, 3) RGB array or a
                PIL image. EXIF orientation and transparency are handled (:mod:`talking.image`).
            audio: the speech: any audio file (wav, mp3, m4a, ...) or an array with its
                ``sample_rate``. Give either ``audio`` or ``text``.
            sample_rate: samples per second of an ``audio`` array.
            text: words for espeak-ng to speak, instead of ``audio``.
            voice: espeak-ng voice for ``text``: a language, optionally with a variant, as in
                ``"en-us"`` or ``"en-gb+f3"`` (see ``espeak-ng --voices``).
            crop_only: yield the generated face crops (R, R, 3) instead of the full photo.
            max_side: the photo is downscaled to at most this many pixels on its long side
                (None keeps its size); the video has the photo's size.
            max_seconds: longer speech is refused with a TalkingError before any work.
            seed: sample the flow predictor's variational bottleneck with this seed; None uses
                its mean, the most likely motion (the keypoint variant has nothing to sample).
                Either way the frames are deterministic.
            generator: a ``torch.Generator`` to sample with instead of ``seed``.
            batch_size: audio windows encoded in one batch (memory, not results).
            callback: called as ``callback(done_frames, total_frames)`` as each frame is made.
        """
        self.check_components()
        if seed is not None and generator is not None:
            raise ValueError("give seed or generator, not both")
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)

        # 1. load the photo and align its face: a photo without one fails before any heavy work
        photo = load_image(image, max_side=max_side)
        aligned = align_face(photo, self.resolution, name=_display_name(image, "the photo"))
        paster = None if crop_only else Paster(photo, aligned)  # per clip: warp, mask, colours

        # 2. the speech as mono float32 at 22050 Hz, decoded from the audio or spoken by espeak-ng
        config = dataclasses.replace(self.audio_config, max_seconds=max_seconds)
        wav = load_audio(*_speech(audio, sample_rate, text, voice), config=config)  # (S,)

        # 3. the paper's audio features, cut into one window per video frame
        features = extract_features(wav, config)
        windows = features.windows()  # N = ceil(S * fps / sr) windows

        # 4. generate the frames autoregressively and 5. paste each into the photo, lazily
        source = torch.from_numpy(aligned.crop).permute(2, 0, 1).float() / 127.5 - 1  # (3, R, R)
        frames = self.generate_frames(source, windows, batch_size=batch_size, generator=generator)
        return TalkingFaceOutput(
            frames=_finish(frames, paster, len(windows), callback),
            audio=wav,
            sample_rate=config.sample_rate,
            fps=config.fps,
            num_frames=len(windows),
            face=aligned.crop,
        )

    def check_components(self) -> None:
        """Raise ValueError when generator and predictor do not fit together."""
        generator, predictor = self.generator.config, self.motion_predictor.config
        if self.variant == "optical":
            expected = ("flow", 2)
        else:
            expected = ("heatmaps", predictor.num_heatmaps)
        if (generator.motion_type, generator.motion_channels) != expected:
            raise ValueError(
                f"the {self.variant} variant needs a generator with motion_type={expected[0]!r} "
                f"and motion_channels={expected[1]}, got {generator.motion_type!r} and "
                f"{generator.motion_channels}"
            )
        for key in ("resolution", "n_mels", "audio_window"):
            if generator[key] != predictor[key]:
                raise ValueError(
                    f"generator and motion predictor disagree on {key}: {generator[key]} vs {predictor[key]}"
                )

    @torch.inference_mode()
    def generate_frames(
        self,
        source: torch.Tensor,
        windows: AudioWindows,
        *,
        batch_size: int = 64,
        generator: torch.Generator | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield one frame (3, H, W) in [-1, 1] per audio window, as soon as it is made.

        Args:
            source: the person's aligned face (3, H, W) in [-1, 1], H = W = ``resolution``.
            windows: per-frame audio windows (see :meth:`talking.audio.AudioFeatures.windows`).
            batch_size: audio windows encoded in one batch; memory stays flat in clip length.
            generator: a ``torch.Generator`` to sample the flow predictor's bottleneck; None
                uses its mean, which makes the frames deterministic (models in eval mode).
        """
        self.check_components()
        if source.ndim != 3:
            raise ValueError(f"source must be one image (3, H, W), got {tuple(source.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        device, dtype = self.device, self.dtype
        history_length = self.motion_predictor.config.history

        # 1. encode the person's image once: it is the same for every frame
        source = source.to(device=device, dtype=dtype)[None]  # (1, 3, H, W)
        source_features = self.generator.encode_source(source)
        history = source[:, None].expand(-1, history_length, -1, -1, -1)  # (1, T, 3, H, W)

        for start in range(0, len(windows), batch_size):
            # 2. encode a chunk of audio windows in one batch (independent of the recurrence)
            stop = min(start + batch_size, len(windows))
            mel = torch.from_numpy(windows.mel[start:stop]).to(device=device, dtype=dtype)
            pitch = torch.from_numpy(windows.pitch[start:stop]).to(device=device)
            energy = torch.from_numpy(windows.energy[start:stop]).to(device=device, dtype=dtype)
            audio = self.generator.encode_audio(mel, pitch, energy)  # {name: (n, A)}
            motion_audio = self.motion_predictor.encode_audio(mel)  # (n, A)

            for i in range(stop - start):
                # 3. predict this frame's motion from the previous frames and its audio
                motion = self._predict_motion(source, history, motion_audio[i : i + 1], generator)
                # 4. render the frame and push it onto the history
                frame_audio = {name: embedding[i : i + 1] for name, embedding in audio.items()}
                frame = self.generator.render(source_features, motion, frame_audio).frame
                history = torch.cat([history[:, 1:], frame[:, None]], dim=1)
                yield frame[0]

    def _predict_motion(
        self,
        source: torch.Tensor,
        history: torch.Tensor,
        audio: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """(1, 2, H, W) flow or (1, K, H, W) heatmaps for the next frame."""
        if self.variant == "optical":
            return self.motion_predictor.predict(source, history, audio, generator).flow
        return self.motion_predictor.predict(source, history, audio).heatmaps


def _display_name(source: object, fallback: str) -> str:
    """How error messages name a user's input: its file name, or ``fallback`` for data."""
    return Path(source).name if isinstance(source, str | os.PathLike) else fallback


def _speech(
    audio: AudioInput | None, sample_rate: int | None, text: str | None, voice: str
) -> tuple[AudioInput, int | None]:
    """The speech to load: ``audio`` as given, or ``text`` spoken by espeak-ng at 22050 Hz."""
    if audio is None and text is None:
        raise TalkingError("No speech: give an audio file or a text to speak.")
    if audio is not None and text is not None:
        raise TalkingError("Give the speech as audio or as text, not both.")
    if text is None:
        return audio, sample_rate
    language, _, variant = voice.partition("+")
    utterance = synthesize(text, Voice(language=language, variant=variant))
    return utterance.audio, SAMPLE_RATE


def _finish(
    frames: Iterator[torch.Tensor],
    paster: Paster | None,
    total: int,
    callback: ProgressCallback | None,
) -> Iterator[np.ndarray]:
    """(3, R, R) frames in [-1, 1] -> (R, R, 3) uint8 crops, pasted into the photo unless
    ``paster`` is None; ``callback(done, total)`` as each is made."""
    for done, frame in enumerate(frames, start=1):
        crop = frame.add(1).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)
        crop = crop.permute(1, 2, 0).contiguous().cpu().numpy()  # (R, R, 3)
        image = crop if paster is None else paster(crop)
        if callback is not None:
            callback(done, total)
        yield image
