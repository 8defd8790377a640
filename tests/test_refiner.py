"""The mouth refiner: trained on the corpus re-rendered at 4x, attached to a pipeline folder."""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest
import torch

from talking.baselines import still_head_frames
from talking.data import load_split
from talking.models import build_models
from talking.models.refiner import MouthRefiner
from talking.pipeline import TalkingFacePipeline
from talking.training.motion import fit_mouth_basis
from talking.training.refiner import (
    Pairs,
    RefinerTrainConfig,
    attach_refiner,
    make_pairs,
    refiner_loss,
    train_refiner,
    validate,
)


def rendering_pipeline(folder) -> TalkingFacePipeline:
    """A 64-px pipeline whose predictor moves the corpus's landmarks and whose generator renders
    wherever the mouth is open, saved to ``folder``."""
    torch.manual_seed(0)
    generator, predictor, _ = build_models("optical", 64)
    with torch.no_grad():
        predictor.basis.copy_(torch.from_numpy(fit_mouth_basis(styles=6, samples=20)))
        generator.to_output.bias[3] = -20.0  # its blend mask: render, do not keep the photo
    pipeline = TalkingFacePipeline(generator=generator.eval(), motion_predictor=predictor.eval())
    pipeline.save_pretrained(folder)
    return pipeline


def test_the_corpus_re_rendered_at_4x_is_the_same_frame_with_its_detail(corpus):
    """Drawn at 256 px and brought back to 64, a clip's first frame is the clip's own, in place:
    closer to it than moved by one pixel either way (both smoothed: the camera's noise differs)."""
    clip = load_split(corpus, "train")[0]
    large = still_head_frames(clip, corpus, clip.truth["mouth"][:1], resolution=256)[0]

    def smooth(image):
        return cv2.GaussianBlur(np.asarray(image, np.float32), (0, 0), 1.5)

    small, frame = smooth(cv2.resize(large, (64, 64), interpolation=cv2.INTER_AREA)), smooth(clip.frames[0])
    aligned = np.abs(small - frame).mean()
    for axis in (0, 1):
        for shift in (-1, 1):
            assert aligned < 0.85 * np.abs(np.roll(small, shift, axis=axis) - frame).mean()
    assert aligned < 8


def test_the_refiner_learns_from_the_corpus_and_is_attached_to_a_pipeline(corpus, tmp_path):
    rendering_pipeline(tmp_path / "pipeline")
    config = RefinerTrainConfig(corpus=str(corpus), pipeline=str(tmp_path / "pipeline"),
                                output_dir=str(tmp_path / "run"), train_clips=2, val_clips=1, every=2,
                                channels=8, steps=30, batch_size=4, learning_rate=3e-3, validate_every=15)
    refiner = train_refiner(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[0]["pairs"]["train"] > 0 and log[0]["pairs"]["val"] > 0
    assert [entry["step"] for entry in log[1:]] == [15, 30]
    assert all(math.isfinite(entry["l1"]) for entry in log[1:])
    # on the held-out clip, closer to the frames drawn at 4x than the rendering upsampled
    assert min(entry["l1"] for entry in log[1:]) < log[-1]["upsampled_l1"]
    attach_refiner(refiner, tmp_path / "pipeline")
    loaded = TalkingFacePipeline.from_pretrained(tmp_path / "pipeline")
    assert isinstance(loaded.refiner, MouthRefiner) and loaded.refiner.config.channels == 8
    for name, value in refiner.state_dict().items():
        torch.testing.assert_close(loaded.refiner.state_dict()[name], value)
    # training again from that pipeline learns from its generator alone, whatever refiner it holds
    again = dataclasses.replace(config, output_dir=str(tmp_path / "again"), channels=4, steps=2,
                                validate_every=2)
    assert train_refiner(again).config.channels == 4


def test_a_refiner_learns_with_the_mouth_parameters_from_the_same_pairs(corpus, tmp_path):
    rendering_pipeline(tmp_path / "pipeline")
    config = RefinerTrainConfig(corpus=str(corpus), pipeline=str(tmp_path / "pipeline"),
                                output_dir=str(tmp_path / "run"), train_clips=2, val_clips=1, every=2,
                                channels=8, steps=30, batch_size=4, learning_rate=3e-3, validate_every=15,
                                mouth_parameters=True)
    train, val = make_pairs(config)
    # each pair carries its frame's true mouth parameters: the corpus's, in [0, 1], jaw open
    assert train.parameters.shape == (len(train), 7) and val.parameters.shape == (len(val), 7)
    assert 0 <= train.parameters.min() and train.parameters.max() <= 1 and (train.parameters[:, 0] > 0).all()
    refiner = train_refiner(config, (train, val))
    assert refiner.config.mouth_parameters == 7
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert min(entry["l1"] for entry in log[1:]) < log[-1]["upsampled_l1"]
    assert validate(refiner, val)["l1"] == pytest.approx(min(entry["l1"] for entry in log[1:]), rel=1e-5)


def test_a_refiner_given_the_mouth_parameters_draws_by_them():
    torch.manual_seed(0)
    refiner = MouthRefiner(scale=2, channels=8, mouth_parameters=7).eval()
    rendering, alpha = torch.rand(2, 3, 16, 16) * 2 - 1, torch.ones(2, 1, 16, 16)
    teeth, none = torch.full((2, 7), 0.8), torch.zeros(2, 7)
    assert not torch.allclose(refiner(rendering, alpha, teeth), refiner(rendering, alpha, none))
    with pytest.raises(ValueError, match="7 mouth parameters"):
        refiner(rendering, alpha)
    with pytest.raises(ValueError, match="7 mouth parameters"):
        refiner(rendering, alpha, torch.zeros(2, 5))
    plain = MouthRefiner(scale=2, channels=8)  # one that does not take them reads none
    torch.testing.assert_close(plain(rendering, alpha, teeth), plain(rendering, alpha))


def test_edges_measure_how_much_of_the_targets_detail_an_inside_keeps():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 24) * 2 - 1
    alpha = torch.zeros(2, 1, 16, 24)
    alpha[..., 6:10, 8:16] = 1.0
    unchanged = MouthRefiner(scale=2, channels=4)
    with torch.no_grad():  # no residual: the rendering as given
        unchanged.out.weight.zero_()
        unchanged.out.bias.zero_()
    blurred = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    pairs = Pairs(blurred.half(), alpha.half(), ((target + 1) * 127.5).round().byte(), torch.zeros(2, 7))
    figures = validate(unchanged, pairs)
    assert figures["edges"] == pytest.approx(figures["upsampled_edges"])
    assert 0 < figures["edges"] < 0.8  # the blur keeps less edge than the target has


def test_the_loss_counts_only_where_the_rendering_shows_and_rewards_edges():
    target = -torch.ones(1, 3, 8, 8)
    target[..., 4:, :] = 1.0  # an edge
    alpha = torch.zeros(1, 1, 8, 8)
    alpha[..., 2:6, :] = 1.0
    off_where_hidden = target.clone()
    off_where_hidden[..., :2, :] = 0.3
    assert refiner_loss(off_where_hidden, target, alpha, 1.0)[0] == 0
    blurred = target.clone()
    blurred[..., 3:5, :] = 0.0  # the same mean, a softer edge
    total, terms = refiner_loss(blurred, target, alpha, 1.0)
    assert terms["gradient"] > 0 and total > terms["l1"]


def test_the_shipped_recipe_resolves_and_refines_a_shipped_pipelines_renderings():
    from pathlib import Path

    from talking.training.recipe import load_recipe

    repo = Path(__file__).resolve().parents[1]
    config = load_recipe(RefinerTrainConfig, repo / "train" / "configs" / "refiner.yaml")
    assert Path(config.output_dir).parts[0] == "runs"
    assert (repo / config.pipeline / "model_index.json").is_file()
