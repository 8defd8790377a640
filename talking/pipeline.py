"""The talking-face pipeline: a person's image and speech features in, video frames out.

``TalkingFacePipeline`` holds the two networks that run at inference, the MAN generator and its
motion predictor; the variant follows from the predictor's class (``FlowPredictor`` ->
"optical", ``KeypointPredictor`` -> "keypoint"). ``save_pretrained(dir)`` writes one folder
with ``model_index.json`` and a subfolder per network, which ``from_pretrained(dir)`` reloads.

Generation is autoregressive as in the paper: the motion of frame t is predicted from frames
t-5..t-1 (the source image repeated before the clip starts) and the frame's mel window, so
frames are made one after another. What does not depend on the recurrence is batched: the source
is encoded once per clip, and the audio windows are encoded ``batch_size`` frames at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from diffusers import DiffusionPipeline

from talking.audio import AudioWindows
from talking.models.flow import FlowPredictor
from talking.models.generator import MANGenerator
from talking.models.keypoints import KeypointPredictor


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
