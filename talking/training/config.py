"""Training run configuration: a recipe (a base YAML and small overrides, plus ``--set``; see
:mod:`talking.training.recipe`) validated into :class:`TrainConfig`.

Research hyper-parameters live here; devices and processes come from ``accelerate launch`` /
``torchrun`` and the script's ``--resume`` flag. A run is reproducible from its resolved config
and seed, which it saves as ``config.yaml`` in its folder.

The motion predictor is not trained here: train/train_motion.py trains it on the speech alone
(:mod:`talking.training.motion`) and writes ``<output_dir>/<variant>/motion_predictor``; a real run
names that folder as its ``init_from`` (``runs/motion/<variant>`` with train/configs/motion.yaml).
Without ``init_from`` or ``init_pipeline`` the run's predictor is ``build_models``' fresh one, whose
mouth basis is zero (no motion): fine for tests, not for a model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from talking.training.recipe import build, load_recipe


@dataclass
class LossWeights:
    """Weights of the paper's losses (section 5); a weight of 0 switches a loss off."""

    adversarial: float = 1.0  # Eq. 10, patch logits at every scale
    cam: float = 1.0  # Eq. 9/14, CAM logits at every scale
    mouth_l1: float = 20.0  # Eq. 11, L1 on the lower half of the frame
    lip_box_l1: float = 0.0  # L1 inside the lip landmarks' box (our addition; needs landmarks)
    # Mean of -log(1 - mask) of the warp blend inside the lip box (our addition): without it
    # the mask saturates at 1 within a few hundred steps, the frame is the (warped) photo, and
    # no gradient reaches the generator's own rendering again; the lips must be rendered.
    lip_mask: float = 0.0
    # Mean of -log(mask) outside the lip box (our addition): the other side of the same split,
    # the rest of the face is the (warped) photo's own sharp pixels, not a blurry rendering of it.
    photo_mask: float = 0.0
    l1: float = 10.0  # L1 on the whole frame
    feature_matching: float = 10.0  # Eq. 12, also our stand-in for the VGG perceptual loss
    # L1 of the generator's own rendering against the frame inside the true mouth opening, the
    # only place inference shows it (our addition).
    opening_l1: float = 0.0

    @property
    def uses_discriminator(self) -> bool:
        """Whether any term reads the discriminator; if none does, the run skips it."""
        return any((self.adversarial, self.cam, self.feature_matching))


@dataclass
class Architecture:
    """What the run changes of the generator of ``build_models(variant, resolution)`` (None: the
    preset's value)."""

    # MAN conditioning switched on (None = all); the paper's ablation (Table 7) changes this.
    modalities: list[str] | None = None
    # Blend with the warped photo through a predicted mask (None: the generator's default, on);
    # the ablation's "base" turns it off so that no flow reaches the frame.
    warp_blend: bool | None = None
    # MAN blocks after each decoder stage (None: the generator's default, 0). Set on a run that
    # starts from an `init_pipeline` without them, it grows them (MANGenerator.grown_from).
    decoder_blocks: int | None = None

    def generator_overrides(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class TrainConfig:
    """One training run of the MAN generator against the multiscale CAM discriminator, each frame
    made as inference makes it from the frame's true landmarks through the (fixed) motion predictor.
    """

    name: str
    corpus: str
    variant: str = "optical"  # "optical" (flow) or "keypoint" (heatmaps)
    resolution: int = 128
    seed: int = 0
    steps: int = 1000
    batch_size: int = 8
    num_workers: int = 1
    learning_rate: float = 2e-4
    discriminator_learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = None  # clip each optimiser's gradient norm (None: no clipping)
    # Learning-rate schedule of both optimisers (diffusers.optimization.get_scheduler: "constant",
    # "constant_with_warmup", "linear", "cosine", ...), counted in optimisation steps.
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    # Exponential moving average of the generator (diffusers' EMAModel, whose decay ramps up as
    # (1 + n) / (10 + n) to this value); when set, the export holds the averaged generator.
    ema_decay: float | None = None
    # "no", "bf16" or "fp16" (autocast); None: what `accelerate launch --mixed_precision` says.
    mixed_precision: str | None = None
    architecture: Architecture = field(default_factory=Architecture)
    # The discriminator judges, instead of whole frames, a square of this many pixels around each
    # frame's inner lips, resampled to the frame's size (None: whole frames). Where the frame is
    # the photo's own warped pixels but for the mouth's inside, that inside is all it can judge.
    mouth_window: int | None = None
    # Move every target frame (and its landmarks) into the source's head pose, so the model
    # learns what audio predicts and keeps the photo's pose (see batches.py).
    align_to_source: bool = False
    # Draw the source among the frames with closed lips, as in most photos (see batches.py).
    closed_source: bool = False
    # The run's motion predictor comes from the folder init_from names (a folder with a
    # motion_predictor/: train_motion.py's <output_dir>/<variant>, or a pipeline), and/or the run
    # starts from an exported pipeline folder (its generator, and its predictor unless init_from
    # is given too; the discriminator always starts fresh). The predictor is exported unchanged.
    init_from: str | None = None
    init_pipeline: str | None = None
    # Everything a run writes goes under run_dir = output_dir/name; the export (a save_pretrained
    # pipeline folder) to run_dir/export unless export_to says otherwise. Never into the shipped
    # checkpoints/: that is train/promote.py's job.
    output_dir: str = "runs"
    export_to: str | None = None
    save_every: int = 500
    checkpoints_total_limit: int | None = None  # keep only the newest N step-N folders
    validation_batches: int = 2  # batches of the val split scored at every checkpoint (0: none)
    log_every: int = 10
    sample_every: int = 250
    loss: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        if self.variant not in ("optical", "keypoint"):
            raise ValueError(f"variant must be 'optical' or 'keypoint', got {self.variant!r}")
        if self.gradient_accumulation_steps < 1:
            raise ValueError("gradient_accumulation_steps must be at least 1")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError("checkpoints_total_limit must be at least 1 (or null: keep all)")
        if self.mouth_window is not None and not 8 <= self.mouth_window <= self.resolution:
            raise ValueError(f"mouth_window must be 8 to resolution ({self.resolution}) pixels or null, "
                             f"got {self.mouth_window}")
        if self.mixed_precision not in (None, "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.export_to and _inside(Path(self.export_to), SHIPPED):
            raise ValueError(f"export_to {self.export_to} is inside {SHIPPED}/: runs export into their own "
                             f"folder; promote one with train/promote.py RUN_DIR --to {SHIPPED}/NAME")
        if isinstance(self.loss, dict):
            self.loss = build(LossWeights, self.loss, "loss")
        if isinstance(self.architecture, dict):
            self.architecture = build(Architecture, self.architecture, "architecture")
        self.betas = tuple(self.betas)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    @property
    def export_dir(self) -> Path:
        return Path(self.export_to) if self.export_to else self.run_dir / "export"

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"  # the checkout's shipped models


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def load_config(path: str | Path, sets: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """The recipe at ``path`` (with its bases) and ``--set`` overrides ``sets`` as a
    :class:`TrainConfig`; unknown keys are an error, not ignored."""
    return load_recipe(TrainConfig, path, sets)
