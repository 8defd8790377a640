"""The training loop of the MAN generator (stage "man"), on Hugging Face Accelerate.

One loop serves a laptop CPU, ``torchrun --nproc_per_node 2`` on CPU (gloo) and
``accelerate launch`` on many GPUs with mixed precision: Accelerate places the models, wraps them
in DDP, shards the data and reduces nothing we do not ask it to.

As in diffusers' ``train_autoencoderkl.py``: a step is an optimisation step, counted when
``accelerator.sync_gradients`` says the accumulated micro-batches were applied; generator and
discriminator accumulate in their own contexts, each optimiser has its own learning-rate
schedule (``get_scheduler``), an EMA of the generator is kept for export, and Accelerate's save
and load hooks write each network as a save_pretrained folder in the checkpoint
(:mod:`talking.training.checkpoints`). ``resume=True`` continues from the newest checkpoint to the
very weights of an uninterrupted run.

The motion predictor is not trained here (train/train_motion.py trains it): it is loaded, draws
each frame's motion from the true landmarks, and is saved with every checkpoint and the export.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from talking.models import build_models
from talking.training.batches import TrainingFrames
from talking.training.checkpoints import (
    DISCRIMINATOR_FOLDER,
    GENERATOR_FOLDER,
    PREDICTOR_FOLDER,
    latest_checkpoint,
    load_model,
    model_class,
    register_folder_hooks,
    save_checkpoint,
)
from talking.training.config import TrainConfig
from talking.training.export import export_models
from talking.training.steps import discriminator_step, generator_step
from talking.training.validation import log_samples, validate, validation_loader


def build(config: TrainConfig):
    """Models of the run (generator, predictor, discriminator), seeded by ``config.seed``.

    ``init_from`` loads the motion predictor of a folder that has one (train_motion.py's
    ``<output_dir>/<variant>``, or a pipeline); ``init_pipeline`` a pipeline's generator and predictor (see
    :class:`TrainConfig`); the networks are of the classes their folders name.
    """
    set_seed(config.seed)  # before building the models, so the seed decides their init
    generator, predictor, discriminator = build_models(
        config.variant, config.resolution, **config.architecture.generator_overrides())
    if config.init_pipeline:
        folder = Path(config.init_pipeline) / GENERATOR_FOLDER
        blocks = config.architecture.decoder_blocks
        generator = (load_model(folder) if blocks is None
                     else model_class(folder).grown_from(folder, decoder_blocks=blocks))
        predictor = load_model(Path(config.init_pipeline) / PREDICTOR_FOLDER)
    if config.init_from:
        predictor = load_model(Path(config.init_from) / PREDICTOR_FOLDER)
    return generator, predictor, discriminator


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run ``config`` to ``config.steps`` optimisation steps; return the run folder."""
    run_dir = config.run_dir
    # Accelerate only sets up multi-process CPU training (gloo) when told it runs on the CPU.
    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(
        cpu=multi_cpu,
        mixed_precision=config.mixed_precision,
        # sync every N micro-batches, not also at each epoch's end: steps stay N micro-batches
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=config.gradient_accumulation_steps, sync_with_dataloader=False),
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config.to_yaml())  # the resolved recipe
        accelerator.init_trackers("train", config={"variant": config.variant, "seed": config.seed,
                                                   "steps": config.steps})

    # 1. models, optimisers and their schedules
    generator, predictor, discriminator = build(config)
    # The predictor is fixed: outside the optimisers and outside DDP (which refuses a module with
    # nothing to train); only placed on the device.
    predictor = predictor.requires_grad_(False).eval().to(accelerator.device)
    names, models = [GENERATOR_FOLDER, DISCRIMINATOR_FOLDER], [generator, discriminator]
    rates = [config.learning_rate, config.discriminator_learning_rate]
    optimizers = [torch.optim.Adam(model.parameters(), rate, betas=tuple(config.betas))
                  for model, rate in zip(models, rates, strict=True)]
    # Accelerate steps a prepared schedule once per process at each optimisation step
    schedulers = [get_scheduler(config.lr_scheduler, optimizer,
                                num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
                                num_training_steps=config.steps * accelerator.num_processes)
                  for optimizer in optimizers]
    ema = (EMAModel(generator.parameters(), decay=config.ema_decay, model_cls=type(generator),
                    model_config=generator.config)
           if config.ema_decay else None)

    # 2. data
    dataset = TrainingFrames(config.corpus, "train", seed=config.seed, align_to_source=config.align_to_source,
                             closed_source=config.closed_source)
    sampler_generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        num_workers=config.num_workers,
                        generator=sampler_generator, persistent_workers=config.num_workers > 0)

    prepared = accelerator.prepare(*models, *optimizers, *schedulers, loader)
    n, k = len(models), len(optimizers)
    models, optimizers = list(prepared[:n]), list(prepared[n:n + k])
    schedulers, loader = list(prepared[n + k:n + 2 * k]), prepared[-1]
    if ema is not None:
        ema.to(accelerator.device)
    register_folder_hooks(accelerator, names, ema, fixed={PREDICTOR_FOLDER: predictor})

    # 3. resume
    start = 0
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        start = json.loads((checkpoint / "step.json").read_text())["step"]
        accelerator.print(f"resumed from {checkpoint} at step {start}")

    # 4. loop: each optimisation step takes gradient_accumulation_steps micro-batches
    if len(loader) == 0:
        raise ValueError(f"the corpus at {config.corpus} has fewer training frames than one batch")
    validation = validation_loader(config)
    progress = tqdm(range(start, config.steps), initial=start, total=config.steps,
                    disable=not accelerator.is_local_main_process, desc=f"{config.name}")
    micro = config.gradient_accumulation_steps
    batches = _batches(accelerator, loader, start * micro, len(loader), sampler_generator, config.seed)
    started, done_at_start, step = time.perf_counter(), start, start
    while step < config.steps:
        batch = next(batches)
        logs = _step(config, models, predictor, optimizers, schedulers, batch, accelerator)
        if not accelerator.sync_gradients:
            continue
        step += 1
        progress.update(1)
        if ema is not None:
            ema.step(accelerator.unwrap_model(models[0]).parameters())
        if step % config.log_every == 0 or step == config.steps:
            rate = (step - done_at_start) * config.batch_size * micro * accelerator.num_processes / (
                time.perf_counter() - started)
            logs.update(samples_per_second=rate, lr=schedulers[0].get_last_lr()[0])
            accelerator.log({f"train/{k}": v for k, v in logs.items()}, step=step)
            progress.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k in _SHOWN})
        if step % config.sample_every == 0:
            log_samples(accelerator, batch, models[0], predictor, step)
        if step % config.save_every == 0 or step == config.steps:
            if validation is not None:
                validate(config, accelerator, models, predictor, validation, step)
            save_checkpoint(accelerator, run_dir, step, config.checkpoints_total_limit)
    progress.close()

    # 5. export, with a check that every process ends with the same weights
    fingerprint = torch.stack([_checksum(accelerator.unwrap_model(m)) for m in models])
    checksums = accelerator.gather(fingerprint[None])  # (processes, models)
    if accelerator.is_main_process:
        (run_dir / "final.json").write_text(json.dumps(
            {"step": config.steps, "replica_checksums": checksums.tolist(), **_provenance()}, indent=1))
        if not torch.equal(checksums, checksums[:1].expand_as(checksums)):
            raise RuntimeError(f"the processes' weights diverged: {checksums.tolist()}")
        generator = accelerator.unwrap_model(models[0])
        with _averaged(ema, generator):
            export_models(config, generator, predictor)
    # Leave together: a rank that tears gloo down while the gather's work is still being freed
    # on gloo's thread deadlocks (both wait for the GIL); the barrier lets that work finish.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run_dir


_SHOWN = ("total", "d_total", "mouth_l1", "lip_box_l1", "opening_l1", "samples_per_second")


@contextlib.contextmanager
def _averaged(ema: EMAModel | None, generator):
    """The generator with the EMA's weights inside the block (unchanged without an EMA)."""
    if ema is None:
        yield
        return
    ema.store(generator.parameters())
    ema.copy_to(generator.parameters())
    try:
        yield
    finally:
        ema.restore(generator.parameters())


def _provenance() -> dict:
    """The commit the run's code came from, and whether the checkout had changes."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def _batches(accelerator, loader, start: int, per_epoch: int, sampler_generator, seed: int):
    """Endless micro-batches from the ``start``-th on; epoch e shuffles with seed + e."""
    epoch, skip = divmod(start, per_epoch)
    while True:
        sampler_generator.manual_seed(seed + epoch)
        epoch_loader = accelerator.skip_first_batches(loader, skip) if skip else loader
        yield from epoch_loader
        epoch, skip = epoch + 1, 0


def _step(config: TrainConfig, models, predictor, optimizers, schedulers, batch, accelerator) -> dict:
    """One micro-batch; the optimisers step when it completes an optimisation step."""
    generator, discriminator = models
    (g_optimizer, d_optimizer), (g_schedule, d_schedule) = optimizers, schedulers
    judge = accelerator.unwrap_model(discriminator)  # outside DDP: the generator's loss never syncs D
    with accelerator.accumulate(generator), frozen(judge):  # no generator gradient on D
        total, terms, fake = generator_step(generator, predictor, judge, batch, config.loss,
                                              config.mouth_window)
        accelerator.backward(total)
        _clip(config, accelerator, generator)
        g_optimizer.step()
        g_schedule.step()
        g_optimizer.zero_grad(set_to_none=True)
    logs = {"total": total.item(), **{k: v.item() for k, v in terms.items()}}
    if config.loss.uses_discriminator:  # with every GAN weight at 0 nothing would train it
        # The discriminator's own accumulation context: a second accelerator.accumulate would
        # count this micro-batch twice, so it follows the one above (no DDP sync until its end).
        with contextlib.nullcontext() if accelerator.sync_gradients else accelerator.no_sync(discriminator):
            d_total, d_terms = discriminator_step(discriminator, batch, fake, config.loss,
                                                  config.mouth_window)
            accelerator.backward(d_total)
            _clip(config, accelerator, discriminator)
            d_optimizer.step()
            d_schedule.step()
            d_optimizer.zero_grad(set_to_none=True)
        logs.update({"d_total": d_total.item(), **{k: v.item() for k, v in d_terms.items()}})
    return logs


@contextlib.contextmanager
def frozen(model: torch.nn.Module):
    """``model``'s parameters take no gradient inside the block."""
    model.requires_grad_(False)
    try:
        yield
    finally:
        model.requires_grad_(True)


def _clip(config: TrainConfig, accelerator, *models) -> None:
    """Clip the gradient norm of ``models``' parameters to ``config.max_grad_norm`` (if set)."""
    if config.max_grad_norm is not None and accelerator.sync_gradients:
        accelerator.clip_grad_norm_([p for m in models for p in m.parameters()], config.max_grad_norm)


def _checksum(model: torch.nn.Module) -> torch.Tensor:
    """A float64 fingerprint of a model's parameters (equal weights give equal fingerprints)."""
    return sum(p.detach().double().sum() * (i + 1) for i, p in enumerate(model.parameters()))


def main(argv: list[str] | None = None) -> None:
    """Command line of the train/ scripts: ``--config RECIPE.yaml [--set KEY=VALUE ...] [--resume]``.

    Hyper-parameters come from the recipe and ``--set``; devices and processes from
    ``accelerate launch`` (or ``torchrun``).
    """
    import argparse

    from talking.errors import TalkingError
    from talking.training.config import load_config

    parser = argparse.ArgumentParser(description="Train the MAN generator (stage 'man').")
    parser.add_argument("--config", required=True, help="the run's recipe (see train/configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set steps=2 --set loss.l1=2 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.set)
    except (TalkingError, ValueError, TypeError) as error:
        parser.error(str(error))
    train(config, resume=args.resume)
