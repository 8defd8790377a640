"""Motion as geometry: speech -> mouth parameters -> lip and jaw landmarks -> the generator's motion.

DESIGN section 5: motion predicted as pixels of previous frames came out about 8x too small on the
corpus and near zero on real photos, while a small network from a mel window to the jaw opening
learns it in seconds. So the motion predictor reads only the audio, never pixels:

1. every video frame's audio window (mel, pitch, energy; normalised per utterance, so a real
   voice, microphone and level look like the corpus's) is encoded by a small 1D CNN;
2. a temporal convolution gives each frame ``lookahead`` frames of context on both sides (real
   lips move about 80 ms before the sound), and a GRU carries the previous motion forward;
3. a linear head gives the frame's mouth parameters (:data:`MOUTH_PARAMETERS`, each in [0, 1],
   the corpus's own articulation model: jaw opening, lip spread, rounding, ...), scaled down to
   rest where the frame's window holds no sound (below the utterance's speech range and an
   absolute floor), so silence keeps the mouth closed and still;
4. a fixed linear ``basis`` (fitted on the corpus renderer's faces when training starts, stored with
   the weights) turns parameters into the displacement of the jaw and lip landmarks in the
   canonical crop, added to the photo's own landmarks: a photo whose mouth is already open has its
   opening read off its inner lips (:meth:`MotionPredictor.source_parameters`) and subtracted, so
   it can close its mouth on silences and on /p b m/;
5. the subclasses draw the generator's motion input from the landmarks: a thin-plate flow
   (MAN-optical, :class:`FlowMotion`) or contour heatmaps (MAN-keypoint, :class:`KeypointMotion`).

A departure from the paper (its predictors read the previous 5 frames), measured in
docs/RESULTS.md; the MAN generator and its normalisation are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from talking.audio import AudioWindows
from talking.config import (
    CANONICAL_LEFT_EYE,
    CANONICAL_RIGHT_EYE,
    MOUTH_PARAMETERS,
    N_MELS,
    PITCH_BINS,
    RESOLUTION,
    AudioConfig,
)
from talking.models.keypoints import CONTOURS, landmarks_to_heatmaps
from talking.models.thin_plate import thin_plate_flow

NUM_LANDMARKS = 68
EYE_DISTANCE = CANONICAL_RIGHT_EYE[0] - CANONICAL_LEFT_EYE[0]  # crop fractions
# iBUG-68 inner-lip points facing each other: the vertical gap between them is the mouth opening
INNER_LIP_UPPER, INNER_LIP_LOWER = [61, 62, 63], [67, 66, 65]
# The thin-plate flow is evaluated every FLOW_STRIDE crop pixels and upsampled: 2.9 instead of
# 9.4 ms a frame at stride 2 (one thread, 128 px), a fifth of the frame's budget; the field is
# smooth, and inside the mouth opening, where the lips part, the generator renders anyway.
FLOW_STRIDE = 4
# ... except around the lips, where the upper and lower lip move apart within a few pixels: there
# every pixel is evaluated (the lips' motion realised to 96-98 % instead of 73-84 % at stride 4)
MOUTH_MARGIN = 4  # crop pixels around the lips' landmarks
SPEECH_RANGE = 4.0  # log-energy below the loudest frame that still counts as speech (about 35 dB)
# Log-energy below which a frame is silence whatever the utterance's level: about 28 dB below
# speech at a normal level (4.5), above the corpus's noise floors (up to 1.2).
SILENCE_FLOOR = 1.5
GATE_FRACTION = 0.25  # a frame's window is speech once a quarter of it (~45 ms) has sound


def sound_threshold(energy: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """(B,) the log-energy that separates sound from silence in each utterance: energy
    (B, N, W) of the valid ``frames`` (B, N, W)."""
    loudest = energy.masked_fill(~frames, -1e9).flatten(1).amax(dim=1)  # (B,)
    return torch.clamp(loudest - SPEECH_RANGE, min=SILENCE_FLOOR)


@dataclass
class MotionOutput(BaseOutput):
    """
    Args:
        parameters: (B, N, P) mouth parameters in [0, 1], P = len(MOUTH_PARAMETERS).
        logits: (B, N, P) the same before the sigmoid.
    """

    parameters: torch.Tensor
    logits: torch.Tensor


def normalise_audio(mel: torch.Tensor, pitch: torch.Tensor, energy: torch.Tensor,
                    valid: torch.Tensor | None = None, pitch_bins: int = PITCH_BINS) -> torch.Tensor:
    """Per-utterance normalised frame features (B, N, W, n_mels + 3).

    mel (B, N, W, n_mels) log-mel, pitch (B, N, W) int bins (0 unvoiced), energy (B, N, W)
    log-energy; ``valid`` (B, N) marks real frames in a padded batch. The mel bands get the mean
    and spread of the utterance's speech frames taken out (the voice's timbre, the microphone's
    colour, the level); energy is measured from the utterance's loudest frame; pitch becomes a
    voicing flag and the log-pitch relative to the speaker's median.
    """
    if valid is None:
        valid = torch.ones(mel.shape[:2], dtype=torch.bool, device=mel.device)
    frames = valid[..., None].expand_as(energy)  # (B, N, W)
    loudest = energy.masked_fill(~frames, -1e9).flatten(1).amax(dim=1)  # (B,)
    speech = frames & (energy > sound_threshold(energy, frames)[:, None, None])
    weight = speech[..., None].to(mel.dtype)
    count = weight.sum(dim=(1, 2)).clamp_min(1.0)  # (B, 1)
    mean = (mel * weight).sum(dim=(1, 2)) / count  # (B, n_mels)
    spread = (((mel - mean[:, None, None]) ** 2) * weight).sum(dim=(1, 2)) / count
    mel = (mel - mean[:, None, None]) / spread.sqrt().clamp_min(0.1)[:, None, None]
    relative_energy = ((energy - loudest[:, None, None]) / SPEECH_RANGE).clamp_min(-3.0)
    voiced = (pitch > 0) & frames
    pitch = pitch.to(mel.dtype)
    median = torch.stack([p[v].median() if v.any() else p.new_zeros(())
                          for p, v in zip(pitch, voiced, strict=True)])  # (B,)
    # an eighth of the quantiser's range (about half an octave at 256 bins over 50-800 Hz) -> 1
    relative_pitch = torch.where(voiced, (pitch - median[:, None, None]) / (pitch_bins / 8), 0.0)
    extra = torch.stack([relative_energy, voiced.to(mel.dtype), relative_pitch], dim=-1)
    return torch.cat([mel, extra], dim=-1)


class MotionPredictor(ModelMixin, ConfigMixin):
    """Mouth parameters and landmarks of every video frame from the speech alone.

    Args:
        resolution: side of the canonical crop the landmarks live in.
        channels: width of the frame encoder.
        hidden: width of the GRU that carries the motion from frame to frame.
        lookahead: video frames of audio context on each side of a frame.
        n_mels: mel bands of the audio windows.
        audio_window: mel frames per video frame's window.
        pitch_bins: pitch quantisation of the audio front-end (bin 0 = unvoiced).
    """

    variant: ClassVar[str]  # "optical" or "keypoint"
    motion_type: ClassVar[str]  # the generator's motion_type
    motion_channels: ClassVar[int]  # channels of the generator's motion input

    @register_to_config
    def __init__(
        self,
        resolution: int = RESOLUTION,
        channels: int = 96,
        hidden: int = 96,
        lookahead: int = 2,
        n_mels: int = N_MELS,
        audio_window: int = AudioConfig().window,
        pitch_bins: int = PITCH_BINS,
    ) -> None:
        super().__init__()
        if channels < 1 or hidden < 1 or lookahead < 0:
            raise ValueError(f"need channels, hidden >= 1 and lookahead >= 0, got {channels}, {hidden}, "
                             f"{lookahead}")
        count = len(MOUTH_PARAMETERS)
        self.frame_encoder = nn.Sequential(
            nn.Conv1d(n_mels + 3, channels, 3, padding=1), nn.GELU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool1d(1),
        )
        self.context = nn.Sequential(nn.Conv1d(channels, channels, 2 * lookahead + 1, padding=lookahead),
                                     nn.GELU())
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, count)
        # Landmark displacement (in crop fractions) per unit of each parameter; fitted on the
        # corpus's faces before training (talking.training.motion.fit_mouth_basis).
        self.register_buffer("basis", torch.zeros(count, NUM_LANDMARKS, 2))

    def forward(self, mel: torch.Tensor, pitch: torch.Tensor, energy: torch.Tensor,
                valid: torch.Tensor | None = None) -> MotionOutput:
        """mel (B, N, W, n_mels), pitch (B, N, W) int64, energy (B, N, W): the windows of N
        consecutive video frames; ``valid`` (B, N) marks real frames of a padded batch."""
        features = normalise_audio(mel, pitch, energy, valid, self.config.pitch_bins)  # (B, N, W, n_mels + 3)
        b, n = features.shape[:2]
        # 1. one embedding per frame from its window
        frames = self.frame_encoder(features.flatten(0, 1).transpose(1, 2))[..., 0]  # (B*N, C)
        # 2. context across neighbouring frames, then the recurrence over time
        frames = self.context(frames.unflatten(0, (b, n)).transpose(1, 2)).transpose(1, 2)  # (B, N, C)
        state, _ = self.gru(frames)  # (B, N, hidden)
        logits = self.head(state)  # (B, N, P)
        # 3. silence keeps the mouth at rest: each frame's parameters are scaled by how much of
        #    its window has sound (an utterance of nothing but noise stays closed and still)
        if valid is None:
            valid = torch.ones(mel.shape[:2], dtype=torch.bool, device=mel.device)
        sound = energy > sound_threshold(energy, valid[..., None].expand_as(energy))[:, None, None]
        gate = (sound.to(logits.dtype).mean(dim=-1) / GATE_FRACTION).clamp(max=1.0)  # (B, N)
        return MotionOutput(parameters=torch.sigmoid(logits) * gate[..., None], logits=logits)

    @torch.no_grad()
    def predict_parameters(self, windows: AudioWindows) -> torch.Tensor:
        """(N, P) mouth parameters for a whole clip's windows (one sequence)."""
        mel = torch.from_numpy(windows.mel)[None].to(self.device, self.dtype)
        pitch = torch.from_numpy(windows.pitch)[None].to(self.device)
        energy = torch.from_numpy(windows.energy)[None].to(self.device, self.dtype)
        return self(mel, pitch, energy).parameters[0]

    @staticmethod
    def open_jaw(parameters: torch.Tensor, scale: float) -> torch.Tensor:
        """(N, P) mouth parameters -> the same with the jaw opening (parameter 0) scaled by
        ``scale``, at most fully open (:data:`~talking.config.ARTICULATION`)."""
        opened = parameters.clone()
        opened[:, 0] = (parameters[:, 0] * scale).clamp(0, 1)
        return opened

    def displacement(self, parameters: torch.Tensor) -> torch.Tensor:
        """(..., P) parameters -> (..., 68, 2) landmark displacement in crop pixels."""
        return torch.einsum("...p,pkc->...kc", parameters, self.basis) * self.config.resolution

    def source_parameters(self, landmarks: torch.Tensor) -> torch.Tensor:
        """The mouth state of a photo from its landmarks (B, 68, 2) in crop pixels -> (B, P).

        Only the opening can be read reliably off one photo: the inner-lip gap over the gap that
        a unit of ``jaw_open`` makes. The other parameters are taken as at rest."""
        gap = mouth_opening(landmarks).clamp_min(0)  # (B,)
        jaw = torch.eye(len(MOUTH_PARAMETERS), device=landmarks.device, dtype=landmarks.dtype)[0]
        unit_gap = mouth_opening(self.displacement(jaw)).clamp_min(1e-6)
        parameters = torch.zeros(len(landmarks), len(MOUTH_PARAMETERS), device=landmarks.device,
                                 dtype=landmarks.dtype)
        parameters[:, 0] = (gap / unit_gap).clamp(0, 1)
        return parameters

    def landmarks(self, parameters: torch.Tensor, source_landmarks: torch.Tensor,
                  source_parameters: torch.Tensor) -> torch.Tensor:
        """Where the photo's landmarks go: (B, 68, 2) crop pixels for parameters (B, P), given
        the photo's landmarks (B, 68, 2) and mouth state (B, P)."""
        return source_landmarks + self.displacement(parameters - source_parameters)

    def drive(self, source_landmarks: torch.Tensor,
              landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For frames whose landmarks are ``landmarks`` (B, 68, 2), the photo's being
        ``source_landmarks`` (B, 68, 2): the flow that moves the photo (B, 2, R, R) and the
        generator's motion input (B, C_m, R, R), drawn once each."""
        flow = self.flow(source_landmarks, landmarks, self.config.resolution)
        return flow, self.motion_input(landmarks, flow)

    def condition(self, source_landmarks: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """The generator's motion input (B, C_m, R, R) alone (see :meth:`drive`)."""
        return self.drive(source_landmarks, landmarks)[1]

    def motion_input(self, landmarks: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """The variant's motion input from the frame's landmarks and the photo's flow."""
        raise NotImplementedError

    @staticmethod
    def flow(source_landmarks: torch.Tensor, landmarks: torch.Tensor, size: int) -> torch.Tensor:
        """(B, 2, size, size) backward flow moving the photo's landmarks to ``landmarks``.

        Where the lips meet or cross (a lower inner-lip point less than a pixel below the upper
        one facing it: an open photo's opening is only estimated), each facing pair becomes one
        point at their middle, taken from the middle of the pair in the photo: two controls at
        one place pulling towards different sources, or crossed, fold the spline into ripples
        across the mouth (seen when an open smile closes)."""
        source, target = source_landmarks.clone(), landmarks.clone()
        upper, lower = INNER_LIP_UPPER, INNER_LIP_LOWER
        closed = (target[:, lower, 1:] - target[:, upper, 1:]) < 1.0  # (B, 3, 1): met or crossed
        for points in (source, target):
            middle = (points[:, upper] + points[:, lower]) / 2
            points[:, upper] = torch.where(closed, middle, points[:, upper])
            points[:, lower] = torch.where(closed, middle, points[:, lower])
        return thin_plate_flow(source, target, size, stride=FLOW_STRIDE,
                               detail=_mouth_box(source, target, size))


class FlowMotion(MotionPredictor):
    """MAN-optical: the motion input is the thin-plate flow from the photo to the frame."""

    variant = "optical"
    motion_type = "flow"
    motion_channels = 2

    def motion_input(self, landmarks: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return flow


class KeypointMotion(MotionPredictor):
    """MAN-keypoint: the motion input is the frame's contour heatmaps (15 parts, paper 4.3.1)."""

    variant = "keypoint"
    motion_type = "heatmaps"
    motion_channels = len(CONTOURS)

    def motion_input(self, landmarks: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return landmarks_to_heatmaps(landmarks, self.config.resolution)


MOTION_CLASSES: dict[str, type[MotionPredictor]] = {cls.variant: cls for cls in (FlowMotion, KeypointMotion)}


def _mouth_box(source: torch.Tensor, target: torch.Tensor, size: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) pixel box around the lips of ``source`` and ``target`` (B, 68, 2)
    and :data:`MOUTH_MARGIN` beyond: where the flow is evaluated at every pixel."""
    lips = torch.cat([source[:, 48:68], target[:, 48:68]], dim=1).detach()
    low = (lips.amin(dim=(0, 1)) - MOUTH_MARGIN).floor().clamp(0, size).int().tolist()
    high = (lips.amax(dim=(0, 1)) + MOUTH_MARGIN).ceil().clamp(0, size).int().tolist()
    return low[1], low[0], high[1], high[0]


def lip_gap(parameters: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """(...,) inner-lip gap, in eye distances of the canonical crop, that parameters (..., P)
    open from the mouth at rest (through ``basis`` (P, 68, 2)); 0 = lips closed."""
    per_parameter = mouth_opening(basis)  # (P,) crop fractions per unit
    return parameters @ per_parameter.to(parameters) / EYE_DISTANCE


def mouth_opening(landmarks: np.ndarray | torch.Tensor):
    """Inner-lip gap (...,) in the landmarks' units from iBUG-68 landmarks (..., 68, 2)."""
    return (landmarks[..., INNER_LIP_LOWER, 1] - landmarks[..., INNER_LIP_UPPER, 1]).mean(-1)
