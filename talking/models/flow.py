"""Optical-flow predictor (paper 4.3.2, Fig. 13) and the 2D warp that applies a flow.

Flow convention, used everywhere in the project: a flow is a *backward* field in *pixels*,
``flow (B, 2, H, W)`` with channel 0 = dx and channel 1 = dy, such that
``warped[y, x] = image[y + dy, x + dx]`` (:func:`warp`). OpenCV's
``calcOpticalFlowFarneback(target, reference, ...)`` returns exactly this field for
``target ~ warp(reference, flow)``.

What the flow maps: the paper predicts the flow between consecutive frames. We predict the flow
from the *source image* to the next frame, ``next_frame ~ warp(source, flow)``, so the generator
can warp the photo's own pixels (DESIGN section 5) without errors piling up along the
autoregressive recurrence; the predictor therefore also sees the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from talking.config import HISTORY, N_MELS, RESOLUTION, AudioConfig
from talking.models.encoders import conv_block
from talking.models.hourglass import Hourglass, check_config, with_audio


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` (B, C, H, W) by ``flow`` (B, 2, H, W) in pixels -> (B, C, H, W).

    Bilinear sampling at ``(x + dx, y + dy)``; samples outside the image repeat the border.
    Pixel centres sit at integer coordinates and the normalised grid uses
    ``align_corners=False``, so a zero flow returns ``image`` exactly. Only 4-D ``grid_sample``
    is used, which every backend (Apple MPS included) supports.
    """
    if flow.ndim != 4 or flow.shape[1] != 2 or flow.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"flow must be (B, 2, {image.shape[-2]}, {image.shape[-1]}) for an image of shape "
            f"{tuple(image.shape)}, got {tuple(flow.shape)}"
        )
    height, width = image.shape[-2:]
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype)
    x = xs[None, None, :] + flow[:, 0]  # (B, H, W)
    y = ys[None, :, None] + flow[:, 1]
    grid = torch.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], dim=-1)  # (B, H, W, 2)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the latent elements, mean over the batch."""
    per_element = 0.5 * (mu.square() + logvar.exp() - 1 - logvar)
    return per_element.flatten(1).sum(dim=1).mean()


@dataclass
class FlowPredictorOutput(BaseOutput):
    """
    Args:
        flow: (B, 2, H, W) backward flow from the source to the next frame, in pixels.
        mu: (B, latent_channels, H / 2^n, W / 2^n) mean of the variational bottleneck.
        logvar: same shape, log-variance of the bottleneck.
    """

    flow: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class FlowPredictor(ModelMixin, ConfigMixin):
    """Predicts the next frame's flow from the source, the previous frames and the mel window.

    An hourglass encodes ``source`` + ``history``; at its bottleneck, joined with the mel
    embedding, a 1x1 convolution gives ``mu`` and ``logvar``; ``z`` (``mu`` at inference, a
    sample when training or when a ``torch.Generator`` is given) joined with the mel embedding
    again is decoded to a flow at H/2, upsampled bilinearly to H (a flow is smooth).

    Args:
        resolution: frame size H = W.
        n_mels: mel bins per audio frame.
        audio_window: mel frames per video frame (W).
        history: previous frames T seen by the predictor (5 in the paper).
        channels: hourglass widths, one per halving of the resolution.
        latent_channels: channels of the variational bottleneck.
        audio_channels: width of the mel embedding.
        audio_encoder: "conv" or "lstm".
    """

    @register_to_config
    def __init__(
        self,
        resolution: int = RESOLUTION,
        n_mels: int = N_MELS,
        audio_window: int = AudioConfig().window,
        history: int = HISTORY,
        channels: tuple[int, ...] = (16, 32, 64, 64),
        latent_channels: int = 16,
        audio_channels: int = 64,
        audio_encoder: str = "conv",
    ) -> None:
        super().__init__()
        check_config(resolution, channels, audio_encoder)
        self.hourglass = Hourglass(resolution, history, n_mels, audio_window, channels,
                                   audio_channels, audio_encoder)
        self.to_latent = nn.Conv2d(channels[-1] + audio_channels, 2 * latent_channels, 1)
        self.from_latent = conv_block("conv", latent_channels + audio_channels, channels[-1])
        self.to_flow = nn.Conv2d(channels[0], 2, 3, padding=1)
        # Start near the identity warp, the most likely motion between nearby frames.
        nn.init.normal_(self.to_flow.weight, std=1e-3)
        nn.init.zeros_(self.to_flow.bias)

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, W, n_mels) -> (B, audio_channels); independent of the frames, so batchable."""
        return self.hourglass.encode_audio(mel)

    def predict(
        self,
        source: torch.Tensor,
        history: torch.Tensor,
        audio: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> FlowPredictorOutput:
        """source (B, 3, H, W), history (B, T, 3, H, W), audio (B, A) from :meth:`encode_audio`."""
        # 1. encode the frames
        features = self.hourglass.encode(source, history)
        # 2. variational bottleneck, conditioned on the audio
        mu, logvar = self.to_latent(with_audio(features[-1], audio)).chunk(2, dim=1)
        z = mu
        if self.training or generator is not None:
            noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + (0.5 * logvar).exp() * noise
        # 3. decode to a flow at H/2, then to full resolution
        x = self.hourglass.decode(self.from_latent(with_audio(z, audio)), features, audio)
        flow = F.interpolate(self.to_flow(x), size=source.shape[-2:], mode="bilinear",
                             align_corners=False)
        return FlowPredictorOutput(flow=flow, mu=mu, logvar=logvar)

    def forward(
        self,
        source: torch.Tensor,
        history: torch.Tensor,
        mel: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> FlowPredictorOutput | tuple[torch.Tensor, ...]:
        """source (B, 3, H, W), history (B, T, 3, H, W) in [-1, 1], mel (B, W, n_mels) log-mel."""
        output = self.predict(source, history, self.encode_audio(mel), generator)
        return output if return_dict else output.to_tuple()
