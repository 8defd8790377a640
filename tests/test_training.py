"""Training of stage "man": runs on a tiny corpus, losses stay finite, runs resume exactly."""

import functools
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from talking.errors import TalkingError
from talking.pipeline import TalkingFacePipeline
from talking.training.checkpoints import complete_checkpoints, latest_checkpoint
from talking.training.config import Architecture, LossWeights, TrainConfig, load_config
from talking.training.export import export_checkpoint, promote
from talking.training.loop import build, train

REPO = Path(__file__).resolve().parents[1]
NETWORKS = ("generator", "motion_predictor", "discriminator")


def tiny(corpus: Path, tmp_path: Path, **values) -> TrainConfig:
    base = dict(name="run", corpus=str(corpus), resolution=64, steps=3, batch_size=2,
                num_workers=0, save_every=2, log_every=1, sample_every=2, validation_batches=0,
                output_dir=str(tmp_path / "runs"))
    return TrainConfig(**{**base, **values})


def logged_scalars(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "logs" / "train"))  # accelerate: logging_dir/project
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "diffusion_pytorch_model.safetensors")


def trained_motion(tmp_path: Path, variant: str) -> Path:
    """What train_motion.py writes for ``variant`` (``<output_dir>/<variant>``), here a fresh
    predictor with a random mouth basis, so that it differs from ``build_models``' own."""
    from talking.models import build_models

    predictor = build_models(variant, 64)[1]
    with torch.no_grad():
        predictor.basis.normal_(generator=torch.Generator().manual_seed(1))
    predictor.save_pretrained(tmp_path / "motion" / variant / "motion_predictor")
    return tmp_path / "motion" / variant


@pytest.mark.parametrize("variant", ["optical", "keypoint"])
def test_a_run_trains_the_generator_with_finite_losses_and_exports_a_pipeline(corpus, tmp_path, variant):
    motion = trained_motion(tmp_path, variant)
    man = tiny(corpus, tmp_path, name="man", variant=variant, init_from=str(motion),
               export_to=str(tmp_path / "export"), align_to_source=True, max_grad_norm=1.0,
               checkpoints_total_limit=1, validation_batches=1, loss=LossWeights(opening_l1=1.0),
               mouth_window=32)
    train(man)

    scalars = logged_scalars(man.run_dir)
    expected = {"train/total", "train/d_total", "train/mouth_l1", "train/opening_l1", "train/adversarial",
                "train/cam", "train/feature_matching", "train/d_cam", "train/lr", "val/total", "val/mouth_l1"}
    assert expected <= set(scalars), set(scalars)
    assert all(math.isfinite(v) for values in scalars.values() for v in values)
    assert len(scalars["val/total"]) == 2  # at both checkpoints (steps 2 and 3)
    assert [p.name for p in complete_checkpoints(man.run_dir)] == ["step-3"]  # the limit of 1

    pipeline = TalkingFacePipeline.from_pretrained(tmp_path / "export")
    final = latest_checkpoint(man.run_dir)
    for network in ("generator", "motion_predictor"):  # the export is the run's last weights
        saved = weights(final / network)
        for name, value in getattr(pipeline, network).state_dict().items():
            torch.testing.assert_close(value, saved[name], rtol=0, atol=0)
    # the motion predictor is init_from's, untrained; the generator has moved
    given = weights(motion / "motion_predictor")
    exported = pipeline.motion_predictor.state_dict()
    assert all(torch.equal(value, given[name]) for name, value in exported.items())
    fresh = build(man)[0].state_dict()
    assert not all(torch.equal(value, fresh[name]) for name, value in pipeline.generator.state_dict().items())

    # Exporting the final checkpoint afterwards gives the same pipeline.
    again = TalkingFacePipeline.from_pretrained(export_checkpoint(man.run_dir, out=tmp_path / "again"))
    for network in ("generator", "motion_predictor"):
        for name, value in getattr(pipeline, network).state_dict().items():
            torch.testing.assert_close(getattr(again, network).state_dict()[name], value, rtol=0, atol=0)


def test_a_run_from_a_pipeline_grows_its_decoder_and_exports_its_own_architecture(corpus, tmp_path):
    """Stage 4 grows MAN blocks into the decoder of an exported pipeline; a later run from that
    pipeline, whose YAML does not say so, still exports the grown architecture."""
    first = tiny(corpus, tmp_path, name="first", steps=1, export_to=str(tmp_path / "plain"))
    train(first)
    weights = LossWeights(adversarial=0.0, cam=0.0, feature_matching=0.0, opening_l1=1.0)
    grow = tiny(corpus, tmp_path, name="grow", steps=2, init_pipeline=str(tmp_path / "plain"),
                architecture=Architecture(decoder_blocks=1), export_to=str(tmp_path / "grown"),
                align_to_source=True, loss=weights)
    train(grow)
    scalars = logged_scalars(grow.run_dir)
    assert "train/opening_l1" in scalars and "train/adversarial" not in scalars
    assert all(math.isfinite(v) for v in scalars["train/opening_l1"])
    assert TalkingFacePipeline.from_pretrained(tmp_path / "grown").generator.config.decoder_blocks == 1

    after = tiny(corpus, tmp_path, name="after", steps=1, init_pipeline=str(tmp_path / "grown"))
    train(after)
    again = TalkingFacePipeline.from_pretrained(export_checkpoint(after.run_dir, out=tmp_path / "again"))
    assert again.generator.config.decoder_blocks == 1


def test_resumed_run_matches_an_uninterrupted_one(corpus, tmp_path):
    """With a learning-rate warm-up and an EMA of the generator, whose states resume too."""
    # the warm-up spans the interruption at step 2: the resumed run must go on where it was
    schedule = dict(lr_scheduler="constant_with_warmup", lr_warmup_steps=3, ema_decay=0.9, save_every=2)
    whole = tiny(corpus, tmp_path, name="whole", steps=4, **schedule)
    train(whole)
    # The "killed" run stopped after its step-2 checkpoint; resuming continues to step 4.
    cut = tiny(corpus, tmp_path, name="cut", steps=2, **schedule)
    train(cut)
    first = latest_checkpoint(cut.run_dir)
    assert first.name == "step-2"
    optimizer_before = torch.load(first / "optimizer.bin", weights_only=True)
    resumed = tiny(corpus, tmp_path, name="cut", steps=4, **schedule)
    train(resumed, resume=True)

    assert latest_checkpoint(resumed.run_dir).name == "step-4"
    assert optimizer_before["state"], "the optimiser state was saved"
    for network in (*NETWORKS, "generator_ema"):
        a = weights(latest_checkpoint(whole.run_dir) / network)
        b = weights(latest_checkpoint(resumed.run_dir) / network)
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=f"{network}: {name}")
    # the export holds the averaged generator, not the last one
    exported = weights(whole.export_dir / "generator")
    averaged = weights(latest_checkpoint(whole.run_dir) / "generator_ema")
    last = weights(latest_checkpoint(whole.run_dir) / "generator")
    assert all(torch.equal(exported[k], averaged[k]) for k in exported)
    assert not all(torch.equal(exported[k], last[k]) for k in exported)


def test_half_written_checkpoint_is_never_picked_up(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-2").mkdir(parents=True)
    (run / "checkpoints" / "step-2" / "step.json").write_text('{"step": 2}')
    (run / "checkpoints" / ".partial-step-4").mkdir()
    (run / "checkpoints" / "step-6").mkdir()  # no step.json: never completed
    assert latest_checkpoint(run).name == "step-2"


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "corpus": "c", "stpes": 10}))
    with pytest.raises(ValueError, match="stpes"):
        load_config(path)


MOTION_RECIPES = ("motion.yaml", "motion_natural.yaml", "motion_noisy.yaml")  # train_motion.py's, in order
# a base, and other scripts' recipes
NOT_MAN = ("base.yaml", "landmarks.yaml", "refiner.yaml", *MOTION_RECIPES)
RECIPES = sorted(p for p in (REPO / "train" / "configs").rglob("*.yaml")
                 if p.name not in NOT_MAN or p.parent.name == "ablation")


@functools.cache
def shipped_exports() -> dict[str, TrainConfig]:
    return {str(c.export_dir): c for c in map(load_config, RECIPES)}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO / "train" / "configs")))
def test_every_shipped_recipe_resolves_and_starts_from_an_earlier_runs_output(path):
    """Each recipe resolves (with its bases) to a valid config, writes under runs/, and starts
    from what an earlier recipe writes: init_from is train_motion.py's predictor of the same
    variant (a motion recipe's ``<output_dir>/<variant>``, each continuing the one before),
    init_pipeline the export of another shipped recipe of the same variant. Running them in order
    reproduces the chain."""
    from talking.training.motion import MotionTrainConfig
    from talking.training.recipe import load_recipe

    config = load_config(path)
    motion = [load_recipe(MotionTrainConfig, REPO / "train" / "configs" / name) for name in MOTION_RECIPES]
    for before, after in zip(motion, motion[1:], strict=False):
        assert Path(after.init_from) == Path(before.output_dir) / "optical" / "motion_predictor"
    exports = shipped_exports()
    assert config.run_dir == Path("runs") / config.name and Path(config.export_dir).parts[0] == "runs"
    assert config.init_from or config.init_pipeline
    if config.init_from is not None:
        assert Path(config.init_from) in {Path(m.output_dir) / config.variant for m in motion}
    if config.init_pipeline is not None:
        assert config.init_pipeline in exports, f"{path.name}: {config.init_pipeline} is no recipe's export"
        assert exports[config.init_pipeline].variant == config.variant


def test_a_recipe_overrides_its_base_key_by_key_and_set_overrides_last(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(
        {"name": "b", "corpus": "c", "steps": 7, "loss": {"l1": 3.0, "cam": 2.0}}))
    recipe = {"base": "base.yaml", "name": "r", "loss": {"l1": 5.0}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(recipe))
    config = load_config(tmp_path / "run.yaml", ["steps=2", "loss.cam=0.5", "init_from=null",
                                                  "architecture.modalities=[image, mel]"])
    assert (config.name, config.steps, config.loss.l1, config.loss.cam) == ("r", 2, 5.0, 0.5)
    assert config.architecture.modalities == ["image", "mel"]
    assert config.loss.mouth_l1 == LossWeights().mouth_l1  # not named anywhere: the default
    with pytest.raises(ValueError, match="stpes"):
        load_config(tmp_path / "run.yaml", ["stpes=2"])
    with pytest.raises(ValueError, match="l2"):
        load_config(tmp_path / "run.yaml", ["loss.l2=1"])
    with pytest.raises(TalkingError, match="KEY=VALUE"):
        load_config(tmp_path / "run.yaml", ["steps"])


def test_a_run_may_not_export_into_the_shipped_checkpoints():
    with pytest.raises(ValueError, match="promote"):
        TrainConfig(name="x", corpus="c", export_to=str(REPO / "checkpoints" / "man-optical"))


@pytest.fixture(scope="module")
def recipe_run(corpus, tmp_path_factory) -> Path:
    """The output folder of train/train_man.py's command line on the shipped stage-2 recipe,
    cut down by --set overrides to one step at 64 px."""
    from talking.training.loop import main

    out = tmp_path_factory.mktemp("out")
    sets = [f"corpus={corpus}", "steps=1", "resolution=64", "batch_size=2", "num_workers=0",
            "init_from=null", "validation_batches=1", "loss.l1=2", f"output_dir={out}"]
    main(["--config", str(REPO / "train" / "configs" / "optical_man.yaml"),
                 *(arg for item in sets for arg in ("--set", item))])
    return out


def test_the_train_script_takes_set_overrides_and_saves_the_resolved_config(recipe_run):
    saved = load_config(recipe_run / "optical_man" / "config.yaml")
    assert (saved.steps, saved.loss.l1, saved.loss.lip_box_l1) == (1, 2.0, 20.0)  # set, set, recipe
    assert (recipe_run / "optical_man" / "export" / "model_index.json").is_file()
    assert sorted(p.name for p in recipe_run.iterdir()) == ["optical_man"]  # nothing outside output_dir


def test_promotion_copies_the_export_and_refuses_to_overwrite_without_force(recipe_run, tmp_path):
    run = recipe_run / "optical_man"
    shipped = tmp_path / "checkpoints" / "man-optical"
    promote(run, shipped)
    assert isinstance(TalkingFacePipeline.from_pretrained(shipped), TalkingFacePipeline)
    assert json.loads((shipped / "final.json").read_text())["step"] == 1
    assert (shipped / "validation.jsonl").is_file() and (shipped / "training.yaml").is_file()
    (shipped / "README.md").write_text("model card")
    with pytest.raises(TalkingError, match="--force"):
        promote(run, shipped)
    promote(run, shipped, force=True)
    assert (shipped / "README.md").read_text() == "model card"


def step_gradient(checkpoint: Path, optimizer: str) -> torch.Tensor:
    """The gradient that the first step of an Adam optimiser applied, read off its state:
    after one step, exp_avg = (1 - beta1) * gradient."""
    state = torch.load(checkpoint / optimizer, weights_only=True)["state"]
    return torch.cat([state[i]["exp_avg"].flatten() for i in sorted(state)])


def test_accumulated_micro_batches_step_both_networks_on_the_full_batch_gradient(corpus, tmp_path):
    """Two micro-batches of 2 with accumulation 2 step the generator and the discriminator on the
    gradient of one batch of the same 4 frames; one micro-batch alone (what the discriminator once
    stepped on) gives another."""
    same = dict(steps=1, save_every=1)
    runs = {"batch 4": tiny(corpus, tmp_path, name="four", batch_size=4, **same),
            "2 x 2": tiny(corpus, tmp_path, name="two", batch_size=2, gradient_accumulation_steps=2, **same),
            "one of 2": tiny(corpus, tmp_path, name="half", batch_size=2, **same)}
    gradients = {}
    for label, config in runs.items():
        train(config)
        for network, file in (("generator", "optimizer.bin"), ("discriminator", "optimizer_1.bin")):
            gradients[label, network] = step_gradient(config.run_dir / "checkpoints" / "step-1", file)
    for network in ("generator", "discriminator"):
        full = gradients["batch 4", network]
        accumulated = (gradients["2 x 2", network] - full).norm() / full.norm()
        alone = (gradients["one of 2", network] - full).norm() / full.norm()
        # measured: 0.0004 (generator) and 0.013 (the discriminator's spectral norms take one
        # power iteration per forward) against 0.28 and 0.18 for one micro-batch alone
        assert accumulated < 0.04, (network, accumulated)
        assert alone > 0.1, (network, alone)


@pytest.mark.slow
def test_two_process_cpu_run_ends_with_the_same_weights_on_both_ranks(corpus, tmp_path):
    config = tiny(corpus, tmp_path, name="ddp", steps=2, save_every=2)
    path = tmp_path / "ddp.yaml"
    path.write_text(config.to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: a free local port for the rendezvous, not the fixed 29500 another run may hold
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(REPO / "train" / "train_man.py"), "--config", str(path)],
                   check=True, env=env, cwd=REPO, timeout=600)
    checksums = json.loads((config.run_dir / "final.json").read_text())["replica_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]


@pytest.mark.parametrize("variant", ["optical", "keypoint"])
def test_the_generator_renders_from_the_motion_of_the_true_landmarks(corpus, variant):
    """The generator's motion input is the predictor's drawing of the frame's true landmarks
    (thin-plate flow or contour heatmaps), and outside the true mouth opening the frame is the
    photo moved by that flow, exactly as inference composes it."""
    from talking.composite import opening_weight
    from talking.models import build_models, landmarks_to_heatmaps, warp
    from talking.training.batches import TrainingFrames
    from talking.training.config import LossWeights
    from talking.training.steps import generator_step

    torch.manual_seed(0)
    generator, predictor, discriminator = build_models(variant, 64)
    dataset = TrainingFrames(corpus, "train", align_to_source=True)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(3)])
    motions = []
    generator.eval().register_forward_pre_hook(lambda module, args: motions.append(args[1]))
    _, terms, fake = generator_step(generator, predictor, discriminator, batch, LossWeights(opening_l1=1.0))

    flow = predictor.flow(batch["source_landmarks"], batch["landmarks"], 64)  # the thin-plate field
    expected = flow if variant == "optical" else landmarks_to_heatmaps(batch["landmarks"], 64)
    torch.testing.assert_close(motions[0], expected)
    assert flow.abs().amax() > 0.5  # the frames' mouths differ from the sources'
    outside = torch.stack([torch.from_numpy(opening_weight(p, 64)) == 0 for p in batch["landmarks"].numpy()])
    moved = warp(batch["source"], flow)
    torch.testing.assert_close(fake.detach().movedim(1, -1)[outside], moved.movedim(1, -1)[outside])
    assert all(torch.isfinite(v) for v in terms.values()) and terms["opening_l1"] > 0


def test_lip_mask_term_still_pulls_a_saturated_mask_down(corpus):
    """With the blend mask at 1 the frame is the warped photo and the L1 terms no longer reach
    the generator; the lip_mask term's gradient on the mask logit stays near its weight."""
    from talking.models import build_models
    from talking.training.batches import TrainingFrames
    from talking.training.config import LossWeights
    from talking.training.steps import generator_step

    generator, predictor, discriminator = build_models("optical", 64)
    with torch.no_grad():
        generator.to_output.weight[3].zero_()
        generator.to_output.bias[3] = 20.0  # mask = sigmoid(20) = 1 - 2e-9
    dataset = TrainingFrames(corpus, "train", align_to_source=True)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(2)])
    only = {name: 0.0 for name in LossWeights.__dataclass_fields__}
    total, terms, _ = generator_step(generator, predictor, discriminator, batch,
                                     LossWeights(**{**only, "lip_mask": 1.0}))
    total.backward()
    assert terms["lip_mask"].item() == pytest.approx(20.0, abs=1e-3)
    assert generator.to_output.bias.grad[3].item() == pytest.approx(1.0, abs=1e-3)


def test_photo_mask_term_pulls_the_mask_up_outside_the_lips_only(corpus):
    """photo_mask is -log(mask) outside the lip box: at a mask of 1/2 everywhere it is log 2,
    and its gradient raises the mask logit outside the box and leaves the lips alone."""
    from talking.models import build_models
    from talking.training.batches import TrainingFrames
    from talking.training.config import LossWeights
    from talking.training.steps import generator_step, lip_box

    generator, predictor, discriminator = build_models("optical", 64)
    with torch.no_grad():
        generator.to_output.weight[3].zero_()
        generator.to_output.bias[3] = 0.0  # mask = 1/2
    logits = []
    generator.to_output.register_forward_hook(lambda module, args, out: logits.append(out))
    dataset = TrainingFrames(corpus, "train", align_to_source=True)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(2)])
    only = {name: 0.0 for name in LossWeights.__dataclass_fields__}
    total, terms, _ = generator_step(generator, predictor, discriminator, batch,
                                     LossWeights(**{**only, "photo_mask": 1.0}))
    logits[0].retain_grad()
    total.backward()
    assert terms["photo_mask"].item() == pytest.approx(math.log(2), abs=1e-5)
    grad = logits[0].grad[:, 3:]  # (B, 1, H, W) on the mask logit
    box = lip_box(batch).bool()
    assert (grad[~box] < 0).all()  # descending the loss raises the mask outside the lips
    assert (grad[box] == 0).all()


def test_without_gan_weights_the_discriminator_is_not_run(corpus):
    """Stage 3 trains by L1 alone: with the adversarial, CAM and feature-matching weights at 0 no
    term reads the discriminator, so it is not run; the other terms are those of a full step."""
    from talking.models import build_models
    from talking.training.batches import TrainingFrames
    from talking.training.config import LossWeights
    from talking.training.steps import generator_step

    generator, predictor, discriminator = build_models("optical", 64)
    calls = []
    discriminator.register_forward_hook(lambda module, args, out: calls.append(1))
    dataset = TrainingFrames(corpus, "train", align_to_source=True)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(2)])
    l1_only = LossWeights(adversarial=0.0, cam=0.0, feature_matching=0.0)
    assert not l1_only.uses_discriminator and LossWeights().uses_discriminator
    torch.manual_seed(0)
    _, terms, _ = generator_step(generator, predictor, discriminator, batch, l1_only)
    assert not calls
    torch.manual_seed(0)
    _, full, _ = generator_step(generator, predictor, discriminator, batch, LossWeights())
    assert calls
    assert set(full) - set(terms) == {"adversarial", "cam", "feature_matching"}
    for name, value in terms.items():
        torch.testing.assert_close(value, full[name])


def test_the_mouth_window_is_centred_on_the_inner_lips_at_the_frames_size():
    from talking.training.steps import mouth_windows

    images = -torch.ones(2, 3, 64, 64)
    landmarks = torch.zeros(2, 68, 2)
    landmarks[0, 60:68] = torch.tensor([20.0, 40.0])  # inner lips centred at x 20, y 40
    landmarks[1, 60:68] = torch.tensor([44.0, 30.0])
    images[0, :, 38:43, 18:23] = 1  # a 5-pixel square on each mouth
    images[1, :, 28:33, 42:47] = 1
    windows = mouth_windows(images, landmarks, 16)
    assert windows.shape == images.shape
    for window in windows:  # 16 pixels to 64: the square spans the middle 20, nothing else is lit
        lit = (window[0] > 0).nonzero()
        assert lit.min(0).values.tolist() == [22, 22] and lit.max(0).values.tolist() == [41, 41]
    assert mouth_windows(images, landmarks, None) is images


def test_with_a_mouth_window_the_discriminator_judges_only_the_mouth(corpus):
    """Pixels far from the lips change what a whole-frame discriminator says, not what it says
    of the mouth's window."""
    from talking.models import build_models
    from talking.training.batches import TrainingFrames
    from talking.training.config import LossWeights
    from talking.training.steps import discriminator_step

    discriminator = build_models("optical", 64)[2].eval()
    dataset = TrainingFrames(corpus, "train", align_to_source=True)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(2)])
    fake = batch["frame"].flip(-1)
    elsewhere = fake.clone()
    elsewhere[..., :8, :] = 1.0  # the top rows: hair, far above the mouth
    for window, same in ((24, True), (None, False)):
        totals = [discriminator_step(discriminator, batch, f, LossWeights(), window)[0]
                  for f in (fake, elsewhere)]
        assert torch.equal(*totals) is same


def test_modalities_and_warp_blend_overrides_reach_the_generator(corpus, tmp_path):
    config = tiny(corpus, tmp_path, architecture=Architecture(modalities=["image", "motion", "mel"],
                                                              warp_blend=False))
    generator, _, _ = build(config)
    assert list(generator.config.modalities) == ["image", "motion", "mel"]
    assert generator.config.warp_blend is False
    assert set(generator.audio_encoders) == {"mel"}


def load_profile_gpu():
    spec = importlib.util.spec_from_file_location("profile_gpu", REPO / "benchmarks" / "profile_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("precisions", [["no"], pytest.param(["no", "bf16"], marks=pytest.mark.slow)])
def test_the_gpu_profile_times_each_batch_size_and_precision_and_reads_the_peak_memory(corpus, precisions):
    """benchmarks/profile_gpu.py with tiny settings on the CPU: a row per precision and batch
    size in increasing order, every figure measured (bf16 on the CPU is slow: a slow test)."""
    recipe = REPO / "train" / "configs" / "optical_man.yaml"
    config = load_config(recipe, [f"corpus={corpus}", "resolution=64"])
    rows = load_profile_gpu().profile(config, [2, 1], precisions, steps=1, device=torch.device("cpu"))
    assert [(r["precision"], r["batch_size"]) for r in rows] == [(p, b) for p in precisions for b in (1, 2)]
    assert all(r["samples_per_second"] > 0 and r["peak_memory_mb"] > 100 for r in rows)
