"""The MAN generator (paper Fig. 6-8): the person's image and one frame's motion and audio in,
that frame out.

Data flow, one frame per batch element::

    source --conv encoder--> trunk (B, C, H/2^n, W/2^n)
        --MAN residual blocks (conditioned on image, motion, mel, pitch, energy)-->
        --CAM layer--> --upsampling decoder--> RGB (tanh) and blend mask (sigmoid)

With ``decoder_blocks`` > 0, every decoder stage (nearest upsampling and a conv) is followed by
that many MAN residual blocks at the stage's resolution, whose image and motion conditions are
encoded from the source and the motion resized to that resolution (as SPADE conditions every
resolution). Without them (the default, and the shipped checkpoints) the conditions live at the
trunk's H/2^n only, a quarter of the lips' height at 128 px. The decoder blocks' last
convolutions start at zero, so a generator grown from one without them
(:meth:`MANGenerator.grown_from`) renders exactly the same frames before it is trained on.

Our addition (DESIGN section 5, ``warp_blend=True``): the decoder also predicts a mask ``m`` and
the frame is ``m * warp(source, flow) + (1 - m) * synthesised``; the keypoint variant, which has
no flow, blends with the unwarped source. Skin, eyes and hair then come from the photo's own
pixels and the network spends its capacity on the mouth.

The work splits into :meth:`MANGenerator.encode_source` (once per clip),
:meth:`MANGenerator.encode_audio` (batchable over all frames) and :meth:`MANGenerator.render`
(per frame); :meth:`MANGenerator.forward` chains the three.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from talking.config import N_MELS, PITCH_BINS, RESOLUTION, AudioConfig
from talking.models.cam import CAMHead
from talking.models.encoders import (
    SPATIAL_KINDS,
    TEMPORAL_KINDS,
    EnergyEncoder,
    MelEncoder,
    PitchEncoder,
    SpatialEncoder,
    activation,
    conv_block,
)
from talking.models.flow import warp
from talking.models.normalization import MultimodalAdaptiveNorm

MODALITIES = ("image", "motion", "mel", "pitch", "energy")
SPATIAL_MODALITIES = ("image", "motion")
MOTION_TYPES = ("flow", "heatmaps")
MASK_BIAS = 2.0  # the blend mask starts at sigmoid(2) = 0.88: mostly the (warped) photo
# Outside a render's region (render(region=...)) the mask logit: sigmoid(30) = 1 to float
# precision, the photo kept
KEEP_PHOTO_LOGIT = 30.0
Box = tuple[int, int, int, int]  # (top, left, bottom, right) in pixels, bottom/right exclusive


@dataclass
class GeneratorOutput(BaseOutput):
    """
    Args:
        frame: (B, 3, H, W) in [-1, 1].
        mask: (B, 1, H, W) in [0, 1], the weight of the (warped) source; None without warp_blend.
        cam_logits: (B, 2) GAP and GMP logits of the CAM layer.
        attention: (B, 1, H/2^n, W/2^n) CAM attention map.
        mask_logits: (B, 1, H, W), the mask before its sigmoid (for losses that must not
            vanish where the mask saturates); None without warp_blend.
        synthesised: (B, 3, H, W) in [-1, 1], the generator's own rendering before the blend
            (what the full-resolution compositor puts where the mask is low).
    """

    frame: torch.Tensor
    mask: torch.Tensor | None
    cam_logits: torch.Tensor
    attention: torch.Tensor
    mask_logits: torch.Tensor | None = None
    synthesised: torch.Tensor | None = None


@dataclass
class SourceFeatures:
    """What the generator keeps of the person's image for a whole clip (see ``encode_source``).

    image: (B, 3, H, W); trunk: (B, C, H/2^n, W/2^n); fixed: the image's MAN modulation
    (:meth:`MultimodalAdaptiveNorm.modulation`, (B, 2C, h, w)) of each MAN layer, (norm1, norm2)
    per residual block in order, trunk blocks then decoder blocks (Nones without "image"). The
    image is the same in every frame of a clip, so its part of every layer's gamma and beta is
    computed once.
    """

    image: torch.Tensor
    trunk: torch.Tensor
    fixed: list[tuple[torch.Tensor | None, torch.Tensor | None]]

    def expand(self, batch: int) -> SourceFeatures:
        """The features of one source (B = 1) for ``batch`` frames at once (views, no copies)."""
        def grow(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.expand(batch, *x.shape[1:])

        return SourceFeatures(grow(self.image), grow(self.trunk),
                              [(grow(a), grow(b)) for a, b in self.fixed])


class MANResBlock(nn.Module):
    """x + conv(act(MAN(conv(act(MAN(x)))))) at constant width (SPADE's residual block with MAN)."""

    def __init__(self, channels: int, spatial: dict[str, int], vector: dict[str, int],
                 zero_init: bool = False) -> None:
        super().__init__()
        self.norm1 = MultimodalAdaptiveNorm(channels, spatial, vector)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = MultimodalAdaptiveNorm(channels, spatial, vector)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = activation()
        if zero_init:  # the block starts as the identity
            nn.init.zeros_(self.conv2.weight)
            nn.init.zeros_(self.conv2.bias)

    def fixed_modulation(self, spatial: dict, size: torch.Size) -> tuple[torch.Tensor | None, ...]:
        """Both layers' modulation by ``spatial`` alone (modalities fixed for a whole clip)."""
        return self.norm1.modulation(spatial, {}, size), self.norm2.modulation(spatial, {}, size)

    def forward(self, x: torch.Tensor, spatial: dict, vector: dict,
                fixed: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x, spatial, vector, fixed[0])))
        h = self.conv2(self.act(self.norm2(h, spatial, vector, fixed[1])))
        return x + h


class MANGenerator(ModelMixin, ConfigMixin):
    """Renders one frame from the person's image, the frame's motion and its audio windows.

    Args:
        resolution: frame size H = W.
        n_mels: mel bins per audio frame.
        audio_window: mel frames per video frame (W).
        pitch_bins: pitch quantisation bins (0 = unvoiced).
        motion_channels: C_m, 2 for a flow, K for keypoint heatmaps.
        motion_type: "flow" (MAN-optical) or "heatmaps" (MAN-keypoint).
        modalities: the MAN conditioning switched on, any subset of
            ("image", "motion", "mel", "pitch", "energy"); the paper's ablation (Table 7) is
            ["image"] (base), ["image", "motion", "mel"], then + "pitch", then + "energy"
            (with warp_blend=False, the paper's architecture). Switching "motion" off does not
            stop warp_blend from warping the source by the flow.
        spatial_encoder: "conv", "partial" or "eca", the 2D encoder of image and motion.
        audio_encoder: "conv" or "lstm", the 1D encoder of mel, pitch and energy.
        encoder_channels: widths of the image encoder, the first at H, each next one at half the
            resolution of the one before; the last is the width of the residual blocks.
        decoder_channels: widths of the upsampling decoder, one per doubling, ending at H.
        num_blocks: MAN residual blocks at the trunk's resolution.
        decoder_blocks: MAN residual blocks after each decoder stage, at its resolution.
        condition_channels: width of the image and motion feature maps fed to MAN.
        audio_channels: width of the mel, pitch and energy embeddings fed to MAN.
        warp_blend: blend the output with the (warped) source through a predicted mask.
    """

    @register_to_config
    def __init__(
        self,
        resolution: int = RESOLUTION,
        n_mels: int = N_MELS,
        audio_window: int = AudioConfig().window,
        pitch_bins: int = PITCH_BINS,
        motion_channels: int = 2,
        motion_type: str = "flow",
        modalities: tuple[str, ...] = MODALITIES,
        spatial_encoder: str = "conv",
        audio_encoder: str = "conv",
        encoder_channels: tuple[int, ...] = (8, 24, 48),
        decoder_channels: tuple[int, ...] = (24, 8),
        num_blocks: int = 3,
        decoder_blocks: int = 0,
        condition_channels: int = 32,
        audio_channels: int = 64,
        warp_blend: bool = True,
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self._check_config()
        downsamples = len(encoder_channels) - 1
        on = set(self.modalities)

        # Image encoder: a full-resolution conv, then one stride-2 conv per further width.
        widths = [3, *encoder_channels]
        self.encoder = nn.Sequential(*(
            conv_block("conv", c_in, c_out, stride=1 if i == 0 else 2)
            for i, (c_in, c_out) in enumerate(pairwise(widths))
        ))

        # Modality encoders: spatial maps at the blocks' resolution, vectors for the audio.
        spatial_in = {"image": 3, "motion": motion_channels}
        self.spatial_encoders = nn.ModuleDict({
            name: SpatialEncoder(spatial_in[name], condition_channels, downsamples, spatial_encoder)
            for name in SPATIAL_MODALITIES if name in on
        })
        self.audio_encoders = nn.ModuleDict()
        if "mel" in on:
            self.audio_encoders["mel"] = MelEncoder(n_mels, audio_window, audio_channels, audio_encoder)
        if "pitch" in on:
            self.audio_encoders["pitch"] = PitchEncoder(pitch_bins, audio_window, audio_channels,
                                                        audio_encoder)
        if "energy" in on:
            self.audio_encoders["energy"] = EnergyEncoder(audio_window, audio_channels, audio_encoder)

        spatial = {name: condition_channels for name in self.spatial_encoders}
        vector = {name: audio_channels for name in self.audio_encoders}
        self.blocks = nn.ModuleList(
            MANResBlock(encoder_channels[-1], spatial, vector) for _ in range(num_blocks)
        )
        self.cam = CAMHead(encoder_channels[-1])

        # Decoder: nearest upsampling + conv per doubling, thin at full resolution, each stage
        # followed by MAN blocks conditioned at its own resolution (stage i is at H / 2^(n-1-i)).
        widths = [encoder_channels[-1], *decoder_channels]
        self.decoder = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), conv_block("conv", a, b))
            for a, b in pairwise(widths)
        )
        # A stage's image and motion conditions are as wide as the stage (cheap at full size).
        self.decoder_conditions = nn.ModuleList(
            nn.ModuleDict({name: conv_block(spatial_encoder, spatial_in[name], width)
                           for name in self.spatial_encoders})
            for width in decoder_channels if decoder_blocks
        )
        self.decoder_man = nn.ModuleList(
            nn.ModuleList(MANResBlock(width, dict.fromkeys(spatial, width), vector, zero_init=True)
                          for _ in range(decoder_blocks))
            for width in decoder_channels if decoder_blocks
        )
        self.to_output = nn.Conv2d(decoder_channels[-1], 4 if warp_blend else 3, 3, padding=1)
        if warp_blend:
            with torch.no_grad():
                self.to_output.bias[3] = MASK_BIAS

    def _check_config(self) -> None:
        config = self.config
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(
                f"modalities must be distinct names from {MODALITIES}, got {list(self.modalities)}"
            )
        if config.motion_type not in MOTION_TYPES:
            raise ValueError(f"motion_type must be one of {MOTION_TYPES}, got {config.motion_type!r}")
        if config.motion_type == "flow" and config.motion_channels != 2:
            raise ValueError(f"a flow has 2 channels, got motion_channels={config.motion_channels}")
        if config.spatial_encoder not in SPATIAL_KINDS:
            raise ValueError(
                f"spatial_encoder must be one of {SPATIAL_KINDS}, got {config.spatial_encoder!r}"
            )
        if config.audio_encoder not in TEMPORAL_KINDS:
            raise ValueError(
                f"audio_encoder must be one of {TEMPORAL_KINDS}, got {config.audio_encoder!r}"
            )
        if len(config.encoder_channels) < 1:
            raise ValueError("encoder_channels needs at least one width")
        downsamples = len(config.encoder_channels) - 1
        if len(config.decoder_channels) != downsamples or downsamples < 1:
            raise ValueError(
                f"decoder_channels needs one width per halving of the encoder: "
                f"{len(config.encoder_channels)} encoder widths need {downsamples} decoder widths "
                f"(at least 1), got {list(config.decoder_channels)}"
            )
        if config.resolution % 2**downsamples:
            raise ValueError(
                f"resolution {config.resolution} must be divisible by 2^{downsamples} "
                f"(encoder_channels={list(config.encoder_channels)})"
            )
        if config.num_blocks < 1:
            raise ValueError(f"num_blocks must be at least 1, got {config.num_blocks}")
        if config.decoder_blocks < 0:
            raise ValueError(f"decoder_blocks must not be negative, got {config.decoder_blocks}")

    @classmethod
    def grown_from(cls, folder: str | Path, **changes) -> MANGenerator:
        """The generator saved in ``folder`` with config ``changes`` that add decoder blocks
        (e.g. ``decoder_blocks=1`` to one saved with 0): every saved weight is loaded, the new
        blocks start as the identity, so the grown generator renders the same frames."""
        model = cls.from_config({**cls.load_config(folder), **changes})
        missing, unexpected = model.load_state_dict(cls.from_pretrained(folder).state_dict(), strict=False)
        other = [key for key in missing if not key.startswith(("decoder_man.", "decoder_conditions."))]
        if other or unexpected:
            raise ValueError(f"{folder} does not grow into {changes}: missing {other[:3]}, "
                             f"unexpected {unexpected[:3]}")
        return model

    @property
    def uses_motion(self) -> bool:
        """Whether ``motion`` is read: by MAN, or to warp the source."""
        warps = self.config.warp_blend and self.config.motion_type == "flow"
        return "motion" in self.modalities or warps

    def encode_source(self, source: torch.Tensor) -> SourceFeatures:
        """source (B, 3, H, W) in [-1, 1] -> features reused for every frame of a clip."""
        size = (self.config.resolution, self.config.resolution)
        if source.ndim != 4 or source.shape[1] != 3 or tuple(source.shape[-2:]) != size:
            raise ValueError(f"source must be (B, 3, {size[0]}, {size[1]}), got {tuple(source.shape)}")
        trunk = self.encoder(source)
        spatial = {"image": self.spatial_encoders["image"](source)} if "image" in self.modalities else {}
        fixed = [block.fixed_modulation(spatial, trunk.shape[-2:]) for block in self.blocks]
        size = trunk.shape[-1]
        for stage, conditions in enumerate(self.decoder_conditions):
            size *= 2
            image = ({"image": conditions["image"](self._resize(source, stage))}
                     if "image" in conditions else {})
            fixed += [block.fixed_modulation(image, (size, size)) for block in self.decoder_man[stage]]
        return SourceFeatures(image=source, trunk=trunk, fixed=fixed)

    def _resize(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        """Full-resolution ``x`` (B, C, H, W) averaged down to decoder stage ``stage``'s size."""
        factor = 2 ** (len(self.decoder) - 1 - stage)
        return F.avg_pool2d(x, factor) if factor > 1 else x

    def encode_audio(
        self,
        mel: torch.Tensor | None,
        pitch: torch.Tensor | None,
        energy: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """mel (B, W, n_mels), pitch (B, W) int64, energy (B, W) -> {name: (B, audio_channels)}.

        Only the modalities switched on are read; the others may be None.
        """
        window, n_mels = self.config.audio_window, self.config.n_mels
        inputs = {"mel": (mel, (window, n_mels)), "pitch": (pitch, (window,)), "energy": (energy, (window,))}
        embeddings = {}
        for name, encoder in self.audio_encoders.items():
            x, expected = inputs[name]
            if x is None or tuple(x.shape[1:]) != expected:
                shape = None if x is None else tuple(x.shape)
                raise ValueError(f"{name} must be (B, {', '.join(map(str, expected))}), got {shape}")
            embeddings[name] = encoder(x)
        return embeddings

    def render(
        self, source: SourceFeatures, motion: torch.Tensor | None, audio: dict[str, torch.Tensor],
        region: Box | None = None,
    ) -> GeneratorOutput:
        """One frame per batch element from ``encode_source``'s features, motion (B, C_m, H, W)
        and ``encode_audio``'s embeddings.

        ``region``: decode only this box of the frame (inference, where only the mouth's inside
        is used): the decoder's convolutions run on the trunk cells under it plus a margin of
        their receptive field, so the output inside the box is what the whole frame's would be;
        outside it the rendering is 0 and the mask keeps the photo. A generator with decoder MAN
        blocks (instance-normalised over the whole map) decodes the whole frame regardless."""
        config = self.config
        # 1. motion features for MAN
        if self.uses_motion:
            expected = (config.motion_channels, config.resolution, config.resolution)
            if motion is None or tuple(motion.shape[1:]) != expected:
                shape = None if motion is None else tuple(motion.shape)
                raise ValueError(f"motion must be (B, {', '.join(map(str, expected))}), got {shape}")
        spatial = {}  # the image's part is in source.fixed
        if "motion" in self.modalities:
            spatial["motion"] = self.spatial_encoders["motion"](motion)
        fixed = iter(source.fixed)
        # 2. MAN residual blocks and the CAM layer
        x = source.trunk
        for block in self.blocks:
            x = block(x, spatial, audio, next(fixed))
        x, cam_logits, attention = self.cam(x)
        window = None if region is None or self.decoder_man else self._decoder_window(region, x.shape[-1])
        if window is not None:
            x = x[..., window[0]:window[2], window[1]:window[3]]
        # 3. decode, conditioned again at every stage's resolution
        for stage, upsample in enumerate(self.decoder):
            x = upsample(x)
            if self.decoder_man:
                stage_spatial = {}
                if "motion" in self.modalities:
                    conditions = self.decoder_conditions[stage]["motion"]
                    stage_spatial["motion"] = conditions(self._resize(motion, stage))
                for block in self.decoder_man[stage]:
                    x = block(x, stage_spatial, audio, next(fixed))
        # 4. blend with the (warped) source
        out = self.to_output(x)
        if window is not None:
            out = self._place(out, window)
        synthesised = torch.tanh(out[:, :3])
        if not config.warp_blend:
            return GeneratorOutput(synthesised, None, cam_logits, attention, synthesised=synthesised)
        mask_logits = out[:, 3:]
        mask = torch.sigmoid(mask_logits)
        base = warp(source.image, motion) if config.motion_type == "flow" else source.image
        frame = mask * base + (1 - mask) * synthesised
        return GeneratorOutput(frame, mask, cam_logits, attention, mask_logits, synthesised)

    def _decoder_window(self, region: Box, cells: int) -> Box:
        """The trunk cells (of ``cells`` x ``cells``) to decode for pixel box ``region``: those
        under it and a ring as wide as the decoder's receptive field (in trunk cells)."""
        scale = 2 ** len(self.decoder)
        margin = 2  # each stage's 3x3 conv reaches 1 px of its input: < 2 trunk cells in all
        top, left, bottom, right = region
        return (max(top // scale - margin, 0), max(left // scale - margin, 0),
                min(-(-bottom // scale) + margin, cells), min(-(-right // scale) + margin, cells))

    def _place(self, out: torch.Tensor, window: Box) -> torch.Tensor:
        """The decoded window's output (B, 4, h, w) in a whole frame's (B, 4, H, H): the margin
        ring (where the window's edge cut the decoder's reach) and everything outside hold the
        outside values (rendering 0, mask logit :data:`KEEP_PHOTO_LOGIT`)."""
        scale, size = 2 ** len(self.decoder), self.config.resolution
        margin = 2 * scale
        top, left, bottom, right = (v * scale for v in window)
        # trim the ring, except where the window reaches the frame's border (exact there)
        inner = (top + margin * (top > 0), left + margin * (left > 0),
                 bottom - margin * (bottom < size), right - margin * (right < size))
        full = out.new_zeros(out.shape[0], out.shape[1], size, size)
        full[:, 3:] = KEEP_PHOTO_LOGIT
        full[..., inner[0]:inner[2], inner[1]:inner[3]] = out[
            ..., inner[0] - top:inner[2] - top, inner[1] - left:inner[3] - left]
        return full

    def forward(
        self,
        source: torch.Tensor,
        motion: torch.Tensor | None,
        mel: torch.Tensor | None,
        pitch: torch.Tensor | None,
        energy: torch.Tensor | None,
        return_dict: bool = True,
    ) -> GeneratorOutput | tuple:
        """source (B, 3, H, W) in [-1, 1]; motion (B, C_m, H, W): flow in pixels or heatmaps in
        [0, 1]; mel (B, W, n_mels) log-mel; pitch (B, W) int64 bins; energy (B, W)."""
        output = self.render(self.encode_source(source), motion, self.encode_audio(mel, pitch, energy))
        return output if return_dict else output.to_tuple()
