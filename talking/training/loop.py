"""The training loop of both stages, on Hugging Face Accelerate.

One loop serves a laptop CPU, ``torchrun --nproc_per_node 2`` on CPU (gloo) and
``accelerate launch`` on many GPUs with mixed precision: Accelerate places the models, wraps them
in DDP, shards the data and reduces nothing we do not ask it to.

Checkpoints: every ``save_every`` steps ``accelerator.save_state`` writes the models (safetensors),
optimisers, RNG states and the step into ``run/checkpoints/step-N``. It is written into a
temporary folder that is renamed when complete, so a run killed mid-save never leaves a folder
that :func:`latest_checkpoint` would pick up. ``resume=True`` continues from the newest one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from talking.models import build_models
from talking.training.batches import TrainingFrames
from talking.training.config import TrainConfig
from talking.training.steps import discriminator_step, generator_step, motion_step, self_fed_history

PREDICTOR_FOLDER = "motion_predictor"
GENERATOR_FOLDER = "generator"  # a stage "man" run's generator config.json


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete ``step-N`` checkpoint of a run, or None."""
    steps = sorted(
        (int(p.name.split("-")[1]), p)
        for p in (run_dir / "checkpoints").glob("step-*")
        if p.name.split("-")[1].isdigit() and (p / "step.json").is_file()
    )
    return steps[-1][1] if steps else None


def _save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int) -> None:
    final = run_dir / "checkpoints" / f"step-{step}"
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
    accelerator.wait_for_everyone()


def build(config: TrainConfig):
    """Models of the run (generator, predictor, discriminator), seeded by ``config.seed``.

    ``init_from`` loads the predictor of a stage "motion" run (to start stage "man", or to go on
    pretraining); ``init_pipeline`` an exported pipeline (see :class:`TrainConfig`).
    """
    set_seed(config.seed)  # before building the models, so the seed decides their init
    overrides = {name: value for name, value in (("modalities", config.modalities),
                                                 ("warp_blend", config.warp_blend),
                                                 ("decoder_blocks", config.decoder_blocks))
                 if value is not None}
    generator, predictor, discriminator = build_models(config.variant, config.resolution, **overrides)
    if config.init_pipeline:
        folder = Path(config.init_pipeline) / "generator"
        generator = (type(generator).from_pretrained(folder) if config.decoder_blocks is None
                     else type(generator).grown_from(folder, decoder_blocks=config.decoder_blocks))
        predictor = type(predictor).from_pretrained(Path(config.init_pipeline) / "motion_predictor")
    if config.init_from:
        folder = Path(config.init_from) / PREDICTOR_FOLDER
        predictor = type(predictor).from_pretrained(folder)
    return generator, predictor, discriminator


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run ``config`` to ``config.steps``; return the run folder."""
    run_dir = config.run_dir
    # Accelerate only sets up multi-process CPU training (gloo) when told it runs on the CPU.
    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(
        cpu=multi_cpu,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config.to_yaml())
        accelerator.init_trackers("train", config={"stage": config.stage, "variant": config.variant,
                                                   "seed": config.seed, "steps": config.steps})

    # 1. models and optimisers; the generator's architecture is recorded for export_checkpoint
    # (with init_pipeline it is the pipeline's, which the YAML does not say)
    generator, predictor, discriminator = build(config)
    if accelerator.is_main_process and config.stage == "man":
        generator.save_config(run_dir / GENERATOR_FOLDER)
    betas = tuple(config.betas)
    if config.stage == "motion":
        models = [predictor]
        optimizers = [torch.optim.Adam(predictor.parameters(), config.learning_rate, betas=betas)]
    else:
        g_params = list(generator.parameters()) + list(predictor.parameters())
        models = [generator, predictor, discriminator]
        optimizers = [torch.optim.Adam(g_params, config.learning_rate, betas=betas),
                      torch.optim.Adam(discriminator.parameters(), config.discriminator_learning_rate,
                                       betas=betas)]

    # 2. data
    dataset = TrainingFrames(config.corpus, "train", with_flow=config.variant == "optical",
                             seed=config.seed, align_to_source=config.align_to_source,
                             closed_source=config.closed_source)
    sampler_generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        num_workers=config.num_workers,
                        generator=sampler_generator, persistent_workers=config.num_workers > 0)

    prepared = accelerator.prepare(*models, *optimizers, loader)
    models, optimizers, loader = (list(prepared[: len(models)]),
                                  list(prepared[len(models): -1]), prepared[-1])

    # 3. resume
    start = 0
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        start = json.loads((checkpoint / "step.json").read_text())["step"]
        accelerator.print(f"resumed from {checkpoint} at step {start}")

    # 4. loop
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"the corpus at {config.corpus} has fewer training frames than one batch")
    progress = tqdm(range(start, config.steps), initial=start, total=config.steps,
                    disable=not accelerator.is_local_main_process, desc=f"{config.name}")
    batches = _batches(accelerator, loader, start, steps_per_epoch, sampler_generator, config.seed)
    started, done_at_start = time.perf_counter(), start
    for step in progress:
        batch = next(batches)
        with accelerator.accumulate(*models):
            logs = _step(config, models, optimizers, batch, accelerator, step)
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            rate = (step + 1 - done_at_start) * config.batch_size * accelerator.num_processes / (
                time.perf_counter() - started)
            logs["samples_per_second"] = rate
            accelerator.log({f"train/{k}": v for k, v in logs.items()}, step=step + 1)
            progress.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k in _SHOWN})
        if config.stage == "man" and (step + 1) % config.sample_every == 0:
            _log_samples(accelerator, batch, models, step + 1)
        if (step + 1) % config.save_every == 0 or step + 1 == config.steps:
            _save_checkpoint(accelerator, run_dir, step + 1)

    # 5. export, with a check that every process ends with the same weights
    fingerprint = torch.stack([_checksum(accelerator.unwrap_model(m)) for m in models])
    checksums = accelerator.gather(fingerprint[None])  # (processes, models)
    if accelerator.is_main_process:
        (run_dir / "final.json").write_text(json.dumps(
            {"step": config.steps, "replica_checksums": checksums.tolist()}, indent=1))
        if not torch.equal(checksums, checksums[:1].expand_as(checksums)):
            raise RuntimeError(f"the processes' weights diverged: {checksums.tolist()}")
        _export(config, [accelerator.unwrap_model(m) for m in models])
    # Leave together: a rank that tears gloo down while the gather's work is still being freed
    # on gloo's thread deadlocks (both wait for the GIL); the barrier lets that work finish.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run_dir


_SHOWN = ("total", "d_total", "mouth_l1", "lip_box_l1", "flow", "heatmap", "samples_per_second")


def _batches(accelerator, loader, start: int, steps_per_epoch: int, sampler_generator, seed: int):
    """Endless batches; epoch e shuffles with seed + e, and a resumed run skips what it has seen."""
    epoch, skip = divmod(start, steps_per_epoch)
    while True:
        sampler_generator.manual_seed(seed + epoch)
        epoch_loader = accelerator.skip_first_batches(loader, skip) if skip else loader
        yield from epoch_loader
        epoch, skip = epoch + 1, 0


def _history(config: TrainConfig, models, batch, step: int) -> tuple[torch.Tensor | None, str]:
    """The step's history (None: the ground truth) and which kind it is, by one coin per step.

    The coin is seeded by the step alone, so a resumed run makes the same choices as an
    uninterrupted one.
    """
    coin = torch.rand((), generator=torch.Generator().manual_seed(config.seed * 100_003 + step)).item()
    self_feed = config.self_feed_probability(step) if config.stage == "man" else 0.0
    if coin < self_feed:
        generator, predictor = models[:2]
        return self_fed_history(generator, predictor, batch), "self_fed"
    if coin < self_feed + config.history_dropout:
        return batch["source"][:, None].expand_as(batch["history"]), "source"
    return None, "truth"


def _step(config: TrainConfig, models, optimizers, batch, accelerator, step: int) -> dict:
    history, kind = _history(config, models, batch, step)
    if config.stage == "motion":
        (predictor,), (optimizer,) = models, optimizers
        total, terms = motion_step(predictor, batch, config.loss, history)
        accelerator.backward(total)
        _clip(config, accelerator, predictor)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {"total": total.item(), **{k: v.item() for k, v in terms.items()}}

    generator, predictor, discriminator = models
    g_optimizer, d_optimizer = optimizers
    coin = torch.rand((), generator=torch.Generator().manual_seed(config.seed * 100_019 + step + 1))
    given_true_motion = coin.item() < config.true_motion
    total, terms, fake = generator_step(generator, predictor, discriminator, batch, config.loss, history,
                                        given_true_motion)
    accelerator.backward(total)
    _clip(config, accelerator, generator, predictor)
    g_optimizer.step()
    g_optimizer.zero_grad(set_to_none=True)
    logs = {"total": total.item(), "self_fed": float(kind == "self_fed"),
            "true_motion": float(given_true_motion), **{k: v.item() for k, v in terms.items()}}
    if config.loss.uses_discriminator:  # with every GAN weight at 0 nothing would train it
        d_optimizer.zero_grad(set_to_none=True)  # drop what the generator's loss left on D
        d_total, d_terms = discriminator_step(discriminator, batch, fake, config.loss)
        accelerator.backward(d_total)
        _clip(config, accelerator, discriminator)
        d_optimizer.step()
        d_optimizer.zero_grad(set_to_none=True)
        logs.update({"d_total": d_total.item(), **{k: v.item() for k, v in d_terms.items()}})
    return logs


def _clip(config: TrainConfig, accelerator, *models) -> None:
    """Clip the gradient norm of ``models``' parameters to ``config.max_grad_norm`` (if set)."""
    if config.max_grad_norm is not None and accelerator.sync_gradients:
        accelerator.clip_grad_norm_([p for m in models for p in m.parameters()], config.max_grad_norm)


def _checksum(model: torch.nn.Module) -> torch.Tensor:
    """A float64 fingerprint of a model's parameters (equal weights give equal fingerprints)."""
    return sum(p.detach().double().sum() * (i + 1) for i, p in enumerate(model.parameters()))


def _log_samples(accelerator, batch, models, step: int) -> None:
    """A grid of source / ground truth / generated frames (up to 4) in TensorBoard."""
    if not accelerator.is_main_process:
        return
    generator, predictor, _ = (accelerator.unwrap_model(m) for m in models)
    n = min(4, len(batch["frame"]))
    small = {k: v[:n] for k, v in batch.items()}
    with torch.no_grad():
        motion = predictor(small["source"], small["history"], small["mel"]).to_tuple()[0]
        fake = generator(small["source"], motion, small["mel"], small["pitch"], small["energy"]).frame
    rows = torch.cat([small["source"], small["frame"], fake], dim=3)  # (n, 3, H, 3W)
    grid = torch.cat(list(rows), dim=1).add(1).div(2).clamp(0, 1)  # (3, nH, 3W)
    tracker = accelerator.get_tracker("tensorboard", unwrap=True)
    tracker.add_image("samples/source|truth|generated", grid, step)


def _export(config: TrainConfig, models) -> None:
    """Stage 1 saves the predictor in the run folder; stage 2 saves the pipeline to export_to."""
    if config.stage == "motion":
        models[0].save_pretrained(config.run_dir / PREDICTOR_FOLDER)
        return
    from talking.pipeline import TalkingFacePipeline

    generator, predictor, _ = models
    folder = Path(config.export_to) if config.export_to else config.run_dir / "pipeline"
    TalkingFacePipeline(generator=generator, motion_predictor=predictor).save_pretrained(folder)
    (folder / "training.yaml").write_text(config.to_yaml())



def export_checkpoint(run_dir: str | Path, checkpoint: str | Path | None = None,
                      out: str | Path | None = None) -> Path:
    """Export a stage-"man" run's checkpoint (default: its newest) as a pipeline folder.

    Models are read from the checkpoint's safetensors in the order the loop prepared them
    (generator, predictor, discriminator); ``out`` defaults to the config's ``export_to``.
    """
    from safetensors.torch import load_file

    from talking.training.config import load_config

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    if config.stage != "man":
        raise ValueError(f"{run_dir} is a stage '{config.stage}' run; only 'man' runs make a pipeline")
    checkpoint = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ValueError(f"{run_dir} has no complete checkpoint")
    fresh = dataclasses.replace(config, init_from=None, init_pipeline=None)  # weights come below
    generator, predictor, discriminator = build(fresh)
    if (run_dir / GENERATOR_FOLDER / "config.json").is_file():  # older runs: the defaults
        generator = type(generator).from_config(type(generator).load_config(run_dir / GENERATOR_FOLDER))
    for i, model in enumerate((generator, predictor, discriminator)):
        name = "model.safetensors" if i == 0 else f"model_{i}.safetensors"  # accelerate's naming
        model.load_state_dict(load_file(checkpoint / name))
    step = json.loads((checkpoint / "step.json").read_text())["step"]
    config = dataclasses.replace(config, export_to=str(out) if out else config.export_to, steps=step)
    _export(config, [generator.eval(), predictor.eval(), discriminator])
    return Path(config.export_to) if config.export_to else config.run_dir / "pipeline"


def main(stage: str, argv: list[str] | None = None) -> None:
    """Command line of the train/ scripts: ``--config RUN.yaml [--resume]``.

    Hyper-parameters come from the YAML only; devices, processes and mixed precision from
    ``accelerate launch`` (or ``torchrun``).
    """
    import argparse

    from talking.training.config import load_config

    parser = argparse.ArgumentParser(description=f"Train stage '{stage}' of MAN.")
    parser.add_argument("--config", required=True, help="the run's YAML (see train/configs/)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if config.stage != stage:
        parser.error(f"{args.config} is a stage '{config.stage}' config; this script trains '{stage}'")
    train(config, resume=args.resume)
