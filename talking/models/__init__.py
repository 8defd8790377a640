"""The MAN networks, each a diffusers ``ModelMixin`` + ``ConfigMixin`` saved with ``save_pretrained``.

- :class:`MANGenerator` (generator.py): image + motion + audio -> frame, with MAN residual blocks
  (normalization.py), a CAM layer (cam.py) and the warp-and-blend output.
- :class:`MotionPredictor` (motion.py): speech -> mouth parameters -> landmarks -> the generator's
  motion; :class:`FlowMotion` (MAN-optical) draws a thin-plate flow (thin_plate.py),
  :class:`KeypointMotion` (MAN-keypoint) contour heatmaps (keypoints.py).
- :class:`MouthRefiner` (refiner.py): the rendering's inside of the mouth made sharp at 4x the
  crop's resolution, for the frames at the photo's resolution.
- :func:`warp` (flow.py): the backward warp of an image by a flow, and the project's flow convention.
- :class:`MultiscaleDiscriminator` (discriminator.py): PatchGAN at several scales with CAM heads.

Sizes: the class defaults are the 128x128 configuration for CPU. ``PRESETS[256]`` holds the
256x256 configuration for GPU training; build a matching set with ``build_models("optical", 256)``,
or one network with ``MANGenerator.from_config(PRESETS[256]["generator"])``.
"""

from __future__ import annotations

from talking.models.discriminator import DiscriminatorOutput, MultiscaleDiscriminator
from talking.models.flow import warp
from talking.models.generator import MODALITIES, GeneratorOutput, MANGenerator
from talking.models.keypoints import CONTOURS, landmarks_to_heatmaps
from talking.models.motion import MOTION_CLASSES, FlowMotion, KeypointMotion, MotionPredictor
from talking.models.refiner import MouthRefiner

VARIANTS = tuple(MOTION_CLASSES)  # ("optical", "keypoint")

# Per resolution, the non-default config of each network ({} = the class defaults).
PRESETS: dict[int, dict[str, dict]] = {
    64: {"generator": {"resolution": 64}, "motion": {"resolution": 64},  # tests and quick experiments
         "discriminator": {"resolution": 64}},
    128: {"generator": {}, "motion": {}, "discriminator": {}},
    256: {
        "generator": {
            "resolution": 256,
            "encoder_channels": [16, 32, 64, 128],
            "decoder_channels": [64, 32, 16],
            "num_blocks": 4,
            "condition_channels": 64,
            "audio_channels": 128,
        },
        "motion": {"resolution": 256},
        "discriminator": {"resolution": 256, "channels": [64, 128, 256, 256]},
    },
}


def build_models(
    variant: str = "optical", resolution: int = 128, **generator_config
) -> tuple[MANGenerator, MotionPredictor, MultiscaleDiscriminator]:
    """Fresh generator, motion predictor and discriminator of ``variant`` ("optical" or
    "keypoint") at ``resolution`` (a key of :data:`PRESETS`), wired to each other.

    ``generator_config`` overrides the preset's generator arguments, e.g. ``modalities`` and
    ``warp_blend`` for the paper's ablation."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if resolution not in PRESETS:
        raise ValueError(f"no preset for resolution {resolution}; have {sorted(PRESETS)}")
    preset = PRESETS[resolution]
    predictor = MOTION_CLASSES[variant].from_config(preset["motion"])
    motion = {"motion_type": predictor.motion_type, "motion_channels": predictor.motion_channels}
    generator = MANGenerator.from_config({**preset["generator"], **motion, **generator_config})
    return generator, predictor, MultiscaleDiscriminator.from_config(preset["discriminator"])


__all__ = [
    "CONTOURS",
    "MODALITIES",
    "PRESETS",
    "VARIANTS",
    "DiscriminatorOutput",
    "FlowMotion",
    "GeneratorOutput",
    "KeypointMotion",
    "MANGenerator",
    "MotionPredictor",
    "MouthRefiner",
    "MultiscaleDiscriminator",
    "build_models",
    "landmarks_to_heatmaps",
    "warp",
]
