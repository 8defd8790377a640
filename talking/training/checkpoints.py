"""A run's checkpoints: ``<run>/checkpoints/step-N`` folders, written whole or not at all.

``accelerator.save_state`` writes into ``.partial-step-N``, which is renamed once complete (with
its ``step.json``), so a run killed mid-save never leaves a folder that :func:`latest_checkpoint`
would pick up. With a retention limit, the oldest complete folders go once a new one is whole.

Inside, each network is a save_pretrained folder (:func:`register_folder_hooks`:
``generator/``, ``motion_predictor/``, ``discriminator/``, ``generator_ema/``) beside Accelerate's
optimiser, schedule and RNG states, so a checkpoint's networks load without the training code.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from talking.errors import TalkingError

GENERATOR_FOLDER = "generator"
PREDICTOR_FOLDER = "motion_predictor"
DISCRIMINATOR_FOLDER = "discriminator"
EMA_FOLDER = "generator_ema"  # the generator's moving average, when the run keeps one


def model_class(folder: str | Path) -> type:
    """The :mod:`talking.models` class that the save_pretrained ``folder``'s config.json names."""
    import talking.models

    path = Path(folder) / "config.json"
    try:
        name = json.loads(path.read_text())["_class_name"]
    except (OSError, ValueError, KeyError) as error:
        raise TalkingError(f"{folder} is not a save_pretrained network folder ({error})") from error
    cls = getattr(talking.models, name, None)
    if not isinstance(cls, type):
        raise TalkingError(f"{path} names {name!r}, which talking.models does not have")
    return cls


def load_model(folder: str | Path):
    """The network saved in ``folder``, of the class its config.json names."""
    return model_class(folder).from_pretrained(folder)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete ``step-N`` folders, oldest first."""
    steps = sorted(
        (int(p.name.split("-")[1]), p)
        for p in (Path(run_dir) / "checkpoints").glob("step-*")
        if p.name.split("-")[1].isdigit() and (p / "step.json").is_file()
    )
    return [path for _, path in steps]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete ``step-N`` checkpoint of a run, or None."""
    complete = complete_checkpoints(run_dir)
    return complete[-1] if complete else None


def save_checkpoint(accelerator, run_dir: Path, step: int, keep: int | None = None) -> Path:
    """``accelerator.save_state`` as ``<run>/checkpoints/step-{step}``; then, with ``keep``, only
    the newest ``keep`` complete checkpoints remain."""
    final = Path(run_dir) / "checkpoints" / f"step-{step}"
    partial = final.with_name(f".partial-step-{step}")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)  # before the others write their RNG states into it
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / "step.json").write_text(json.dumps({"step": step}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        if keep is not None:
            for old in complete_checkpoints(run_dir)[:-keep]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def register_folder_hooks(accelerator, names: list[str], ema=None, fixed: dict | None = None) -> None:
    """Make ``save_state`` / ``load_state`` write and read one save_pretrained folder per network
    (``names``, in the order the models were prepared) and the EMA, not Accelerate's files.

    ``fixed`` (folder name -> network) are networks the run does not train: written into every
    checkpoint, so that it exports alone, and never read back (the run rebuilds them as they were)."""

    def save(models, weights, output_dir) -> None:
        if accelerator.is_main_process:
            for name, model in [*zip(names, models, strict=True), *(fixed or {}).items()]:
                accelerator.unwrap_model(model).save_pretrained(Path(output_dir) / name)
            if ema is not None:
                ema.save_pretrained(Path(output_dir) / EMA_FOLDER)
        weights.clear()  # so Accelerate does not save them again under its own names

    def load(models, input_dir) -> None:
        for name, model in zip(names, models, strict=True):
            saved = load_model(Path(input_dir) / name)
            accelerator.unwrap_model(model).load_state_dict(saved.state_dict())
        if ema is not None:
            from diffusers.training_utils import EMAModel

            averaged = EMAModel.from_pretrained(Path(input_dir) / EMA_FOLDER, model_cls=ema.model_cls)
            ema.load_state_dict(averaged.state_dict())
            ema.to(accelerator.device)
        models.clear()

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)
