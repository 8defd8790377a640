"""Training: both stages run on a tiny corpus, losses stay finite, runs resume exactly."""

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

from talking.pipeline import TalkingFacePipeline
from talking.training.config import LossWeights, TrainConfig, load_config
from talking.training.loop import export_checkpoint, latest_checkpoint, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    from talking.corpus.build import CorpusConfig, build_corpus

    build_corpus(CorpusConfig(out=str(out), clips=6, resolution=64, seed=3))
    return out


def tiny(corpus: Path, tmp_path: Path, **values) -> TrainConfig:
    base = dict(name="run", stage="man", corpus=str(corpus), resolution=64, steps=3, batch_size=2,
                num_workers=0, save_every=2, log_every=1, sample_every=2,
                output_dir=str(tmp_path / "runs"), self_feed_start=0.0, self_feed=1.0)
    return TrainConfig(**{**base, **values})


def logged_scalars(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "logs" / "train"))  # accelerate: logging_dir/project
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize("variant", ["optical", "keypoint"])
def test_both_stages_train_with_finite_losses_and_export_a_pipeline(corpus, tmp_path, variant):
    motion = tiny(corpus, tmp_path, name="motion", stage="motion", variant=variant,
                  align_to_source=True, history_dropout=1.0)
    train(motion)
    man = tiny(corpus, tmp_path, name="man", variant=variant, init_from=str(motion.run_dir),
               export_to=str(tmp_path / "export"), align_to_source=True, max_grad_norm=1.0)
    train(man)

    scalars = logged_scalars(man.run_dir)
    expected = {"train/total", "train/d_total", "train/mouth_l1", "train/adversarial", "train/cam",
                "train/feature_matching", "train/d_cam"}
    expected |= {"train/flow", "train/kl", "train/warp"} if variant == "optical" else {"train/heatmap"}
    assert expected <= set(scalars), set(scalars)
    assert all(math.isfinite(v) for values in scalars.values() for v in values)

    pipeline = TalkingFacePipeline.from_pretrained(tmp_path / "export")
    assert pipeline.variant == variant
    assert (tmp_path / "export" / "model_index.json").is_file()

    # Exporting the final checkpoint afterwards gives the same pipeline.
    again = TalkingFacePipeline.from_pretrained(export_checkpoint(man.run_dir, out=tmp_path / "again"))
    for name, value in pipeline.generator.state_dict().items():
        torch.testing.assert_close(again.generator.state_dict()[name], value, rtol=0, atol=0)


def test_a_run_from_a_pipeline_grows_its_decoder_and_exports_its_own_architecture(corpus, tmp_path):
    """Stage 4 grows MAN blocks into the decoder of an exported pipeline; a later run from that
    pipeline, whose YAML does not say so, still exports the grown architecture."""
    first = tiny(corpus, tmp_path, name="first", steps=1, export_to=str(tmp_path / "plain"))
    train(first)
    weights = LossWeights(adversarial=0.0, cam=0.0, feature_matching=0.0, lip_landmarks=1.0)
    grow = tiny(corpus, tmp_path, name="grow", steps=2, init_pipeline=str(tmp_path / "plain"),
                decoder_blocks=1, export_to=str(tmp_path / "grown"), align_to_source=True, loss=weights)
    train(grow)
    scalars = logged_scalars(grow.run_dir)
    assert "train/lip_landmarks" in scalars and "train/adversarial" not in scalars
    assert all(math.isfinite(v) for v in scalars["train/lip_landmarks"])
    assert TalkingFacePipeline.from_pretrained(tmp_path / "grown").generator.config.decoder_blocks == 1

    after = tiny(corpus, tmp_path, name="after", steps=1, init_pipeline=str(tmp_path / "grown"))
    train(after)
    again = TalkingFacePipeline.from_pretrained(export_checkpoint(after.run_dir, out=tmp_path / "again"))
    assert again.generator.config.decoder_blocks == 1


def test_stage_two_starts_from_the_pretrained_predictor(corpus, tmp_path):
    motion = tiny(corpus, tmp_path, name="motion", stage="motion", steps=2)
    train(motion)
    man = tiny(corpus, tmp_path, name="man", init_from=str(motion.run_dir), steps=1)
    from talking.training.loop import build

    _, predictor, _ = build(man)
    saved = load_file(motion.run_dir / "motion_predictor" / "diffusion_pytorch_model.safetensors")
    for name, value in predictor.state_dict().items():
        torch.testing.assert_close(value, saved[name])


def test_resumed_run_matches_an_uninterrupted_one(corpus, tmp_path):
    whole = tiny(corpus, tmp_path, name="whole", steps=4, save_every=2)
    train(whole)
    # The "killed" run stopped after its step-2 checkpoint; resuming continues to step 4.
    cut = tiny(corpus, tmp_path, name="cut", steps=2, save_every=2)
    train(cut)
    first = latest_checkpoint(cut.run_dir)
    assert first.name == "step-2"
    optimizer_before = torch.load(first / "optimizer.bin", weights_only=True)
    resumed = tiny(corpus, tmp_path, name="cut", steps=4, save_every=2)
    train(resumed, resume=True)

    assert latest_checkpoint(resumed.run_dir).name == "step-4"
    assert optimizer_before["state"], "the optimiser state was saved"
    for model in ("model.safetensors", "model_1.safetensors", "model_2.safetensors"):
        a = load_file(latest_checkpoint(whole.run_dir) / model)
        b = load_file(latest_checkpoint(resumed.run_dir) / model)
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=f"{model}: {name}")


def test_self_feed_schedule_ramps_or_stays_constant():
    ramp = TrainConfig(name="r", stage="man", corpus="c", steps=100, self_feed=0.8,
                       self_feed_start=0.2, self_feed_end=0.6)
    assert [ramp.self_feed_probability(s) for s in (0, 20, 40, 60, 99)] == pytest.approx(
        [0.0, 0.0, 0.4, 0.8, 0.8])
    constant = TrainConfig(name="c", stage="man", corpus="c", steps=100, self_feed=0.5,
                           self_feed_start=0.0, self_feed_end=0.0)
    assert {constant.self_feed_probability(s) for s in range(100)} == {0.5}
    with pytest.raises(ValueError, match="exceed 1"):
        TrainConfig(name="x", stage="man", corpus="c", self_feed=0.6, history_dropout=0.5)
    with pytest.raises(ValueError, match="before"):
        TrainConfig(name="x", stage="man", corpus="c", self_feed_start=0.5, self_feed_end=0.2)


def test_history_kinds_follow_their_probabilities(corpus, tmp_path):
    from talking.training.loop import _history

    batch = {"source": torch.randn(2, 3, 64, 64), "history": torch.randn(2, 5, 3, 64, 64)}
    dropout = tiny(corpus, tmp_path, stage="motion", history_dropout=1.0)
    history, kind = _history(dropout, [], batch, step=0)
    assert kind == "source"
    torch.testing.assert_close(history, batch["source"][:, None].expand(-1, 5, -1, -1, -1))
    truth = tiny(corpus, tmp_path, stage="motion")
    assert _history(truth, [], batch, step=0) == (None, "truth")
    mixed = tiny(corpus, tmp_path, stage="motion", history_dropout=0.5, steps=400)
    kinds = [_history(mixed, [], batch, step)[1] for step in range(400)]
    assert 150 < kinds.count("source") < 250


def test_half_written_checkpoint_is_never_picked_up(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-2").mkdir(parents=True)
    (run / "checkpoints" / "step-2" / "step.json").write_text('{"step": 2}')
    (run / "checkpoints" / ".partial-step-4").mkdir()
    (run / "checkpoints" / "step-6").mkdir()  # no step.json: never completed
    assert latest_checkpoint(run).name == "step-2"


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "stage": "man", "corpus": "c", "stpes": 10}))
    with pytest.raises(ValueError, match="stpes"):
        load_config(path)


def test_shipped_man_configs_load():
    every = (REPO / "train" / "configs").rglob("*.yaml")
    configs = [p for p in every if "stage" in yaml.safe_load(p.read_text())]  # not landmarks.yaml
    assert len(configs) >= 4
    for path in configs:
        load_config(path)


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
def test_generator_renders_from_the_true_motion_when_told(corpus, variant):
    from talking.models import build_models, landmarks_to_heatmaps
    from talking.training.batches import TrainingFrames
    from talking.training.config import LossWeights
    from talking.training.steps import generator_step, true_motion

    torch.manual_seed(0)
    generator, predictor, discriminator = build_models(variant, 64)
    dataset = TrainingFrames(corpus, "train", with_flow=variant == "optical", align_to_source=True)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(3)])
    truth = true_motion(predictor, batch)
    expected = batch["flow"] if variant == "optical" else landmarks_to_heatmaps(batch["landmarks"], 64)
    torch.testing.assert_close(truth, expected)

    generator.eval()
    _, terms, fake = generator_step(generator, predictor, discriminator, batch, LossWeights(),
                                    given_true_motion=True)
    with torch.no_grad():
        rendered = generator(batch["source"], truth, batch["mel"], batch["pitch"], batch["energy"]).frame
    torch.testing.assert_close(fake.detach(), rendered)
    assert all(torch.isfinite(v) for v in terms.values())


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


def test_modalities_and_warp_blend_overrides_reach_the_generator(corpus, tmp_path):
    from talking.training.loop import build

    config = tiny(corpus, tmp_path, modalities=["image", "motion", "mel"], warp_blend=False)
    generator, _, _ = build(config)
    assert list(generator.config.modalities) == ["image", "motion", "mel"]
    assert generator.config.warp_blend is False
    assert set(generator.audio_encoders) == {"mel"}
