"""What leaves a training run: its export, from the live models or from a checkpoint, and the
promotion of an export into the shipped ``checkpoints/``.

A run's export (``config.export_dir``, by default ``<run>/export``) is a save_pretrained
:class:`TalkingFacePipeline` folder, the trained generator with the motion predictor the run was
given (``init_from`` / ``init_pipeline``), and ``training.yaml``, the run's resolved config.
Networks are loaded by the class their ``config.json`` names (any network of
:mod:`talking.models`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import yaml

from talking.errors import TalkingError
from talking.training.checkpoints import (
    EMA_FOLDER,
    GENERATOR_FOLDER,
    PREDICTOR_FOLDER,
    latest_checkpoint,
    load_model,
)
from talking.training.config import TrainConfig, load_config

CARD_INPUTS = ("final.json", "validation.jsonl")  # what a model card is written from, with training.yaml


def export_models(config: TrainConfig, generator, predictor) -> Path:
    """Write the run's export to ``config.export_dir`` and return it."""
    from talking.pipeline import TalkingFacePipeline

    folder = config.export_dir
    TalkingFacePipeline(generator=generator, motion_predictor=predictor).save_pretrained(folder)
    (folder / "training.yaml").write_text(config.to_yaml())
    return folder


def export_checkpoint(run_dir: str | Path, checkpoint: str | Path | None = None,
                      out: str | Path | None = None) -> Path:
    """Export a run's checkpoint (default: its newest) to ``out`` (default: the run's export
    folder); a run that kept a moving average exports the averaged generator."""
    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    checkpoint = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if checkpoint is None:
        raise TalkingError(f"{run_dir} has no complete checkpoint")
    ema = checkpoint / EMA_FOLDER
    generator = load_model(ema if ema.is_dir() else checkpoint / GENERATOR_FOLDER).eval()
    predictor = load_model(checkpoint / PREDICTOR_FOLDER).eval()
    step = json.loads((checkpoint / "step.json").read_text())["step"]
    config = dataclasses.replace(config, export_to=str(out) if out else config.export_to, steps=step)
    return export_models(config, generator, predictor)


def promote(run_dir: str | Path, to: str | Path, force: bool = False) -> Path:
    """Copy a finished run's export (MAN or landmark estimator) and its model-card inputs
    (:data:`CARD_INPUTS`) to ``to``.

    An existing ``to`` is replaced only with ``force``; its ``README.md`` (the model card, written
    by hand from those inputs) is kept.
    """
    run_dir, to = Path(run_dir), Path(to)
    recipe = run_dir / "config.yaml"  # every run writes its resolved config
    if not recipe.is_file():
        raise TalkingError(f"{run_dir} is not a run folder (it has no config.yaml)")
    export = Path(yaml.safe_load(recipe.read_text()).get("export_to") or run_dir / "export")
    if not export.is_dir():
        raise TalkingError(f"{run_dir} has no export at {export}: finish the run, or export a "
                           "checkpoint with train/export.py")
    if to.exists() and not force:
        raise TalkingError(f"{to} exists; add --force to replace it (its README.md is kept)")
    staging = to.with_name(f".promoting-{to.name}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(export, staging)
    for name in CARD_INPUTS:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, staging / name)
    if (to / "README.md").is_file():
        shutil.copy2(to / "README.md", staging / "README.md")
    shutil.rmtree(to, ignore_errors=True)
    staging.rename(to)
    return to
