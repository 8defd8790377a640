"""Evaluation: the command on a tiny corpus writes its table, JSON and plots; the baselines; the
landmark estimator it reads frames with."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from talking.baselines import energy_frames, energy_opening, static_frames, true_mouth_frames
from talking.cli import main
from talking.config import ARTICULATION
from talking.data import load_split
from talking.errors import TalkingError
from talking.evaluate import model_methods
from talking.landmarks import LandmarkEstimator, LandmarkTrainConfig, estimate, train_landmarks
from talking.models import build_models
from talking.pipeline import TalkingFacePipeline


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Untrained 64-px pipelines of both variants and an untrained landmark estimator."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    folders = {}
    for variant in ("optical", "keypoint"):
        generator, predictor, _ = build_models(variant, 64)
        pipeline = TalkingFacePipeline(generator=generator.eval(), motion_predictor=predictor.eval())
        pipeline.save_pretrained(root / variant)
        folders[variant] = root / variant
    LandmarkEstimator(resolution=64).eval().save_pretrained(root / "landmarks")
    folders["landmarks"] = root / "landmarks"
    return folders


def test_evaluate_command_writes_table_json_and_plots(corpus, models, tmp_path):
    out = tmp_path / "evaluation"
    code = main(["evaluate", "--checkpoint", str(models["optical"]), str(models["keypoint"]),
                 "--corpus", str(corpus), "--split", "test", "--landmarks", str(models["landmarks"]),
                 "--out", str(out)])
    assert code == 0

    results = json.loads((out / "results.json").read_text())
    methods = results["methods"]
    assert list(methods) == ["real frames", "static", "energy", "true mouth",
                             "MAN-optical", "MAN-keypoint"]
    assert results["clips"] == len(load_split(corpus, "test"))
    assert results["articulation"] == ARTICULATION  # the MAN rows are what users get
    assert methods["real frames"]["ssim"] == pytest.approx(1.0)
    assert methods["real frames"]["psnr"] is None  # identical frames: infinite, not averaged
    assert methods["static"]["sync_correlation"] is None  # a still mouth has no sync
    assert methods["static"]["ssim_by_frame"][0] == pytest.approx(1.0)  # frame 0 is the real one
    assert methods["real frames"]["l1_mouth"] == 0.0
    for name in ("static", "energy", "true mouth", "MAN-optical", "MAN-keypoint"):
        assert 0.0 < methods[name]["l1_mouth"] < 1.0
        assert 0.0 < methods[name]["ssim"] < 1.0
        assert 5.0 < methods[name]["psnr"] < 60.0
        assert methods[name]["sync_offsets"] == list(range(-5, 6))
    # In the first frame's head pose the exact mouth beats the closed one; the real frames, in
    # their own wandering pose, lose the wander.
    assert methods["true mouth"]["l1_lips_registered"] < methods["static"]["l1_lips_registered"]
    assert methods["real frames"]["l1_lips_registered"] > 0.0
    assert methods["static"]["mouth_travel"] == pytest.approx(0.0, abs=1e-3)  # the mouth never moves
    assert methods["true mouth"]["mouth_travel"] > 0.0
    assert set(results["not_measured"]) == {"WER", "ACD", "FID", "LSE-C / LSE-D"}

    table = (out / "results.md").read_text()
    assert "| MAN-keypoint |" in table and "L1 mouth" in table and "WER" in table
    for plot in ("metrics.png", "sync.png", "drift.png", "frames.png"):
        image = cv2.imread(str(out / plot))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 300, plot
    strip = cv2.imread(str(out / "frames.png"))
    assert strip.shape[0] == 6 * 64  # one 64-px row per method


def test_evaluate_without_an_estimator_fails_with_one_line(corpus, tmp_path, capsys):
    code = main(["evaluate", "--corpus", str(corpus), "--landmarks", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "train_landmarks.py" in capsys.readouterr().err


def test_checkpoints_of_one_variant_keep_a_row_each(models, tmp_path):
    """Two folders of the same name (a candidate beside the shipped one) are two rows, named by
    their paths; the same folder twice is refused rather than silently evaluated once."""
    twin = tmp_path / "candidates" / "optical"
    shutil.copytree(models["optical"], twin)
    methods = model_methods([str(models["optical"]), str(twin)], "cpu", 64)
    assert list(methods) == [f"MAN-optical ({models['optical']})", f"MAN-optical ({twin})"]
    assert list(model_methods([str(models["optical"]), str(models["keypoint"])], "cpu", 64)) == [
        "MAN-optical", "MAN-keypoint"]
    with pytest.raises(TalkingError, match="twice"):
        model_methods([str(twin), str(twin)], "cpu", 64)


def test_static_baseline_repeats_the_first_frame(corpus):
    clip = load_split(corpus, "test")[0]
    frames = static_frames(clip)
    assert frames.shape == clip.frames.shape
    assert (frames == clip.frames[0]).all()


def test_energy_baseline_moves_only_the_mouth_and_follows_loudness(corpus):
    clip = load_split(corpus, "test")[0]
    frames, still = energy_frames(clip, corpus), static_frames(clip)
    upper = slice(0, int(0.4 * clip.frames.shape[1]))  # above the mouth and JPEG's chroma reach
    assert np.array_equal(frames[:, upper], still[:, upper])  # head, eyes and noise held
    assert not np.array_equal(frames, still)  # the mouth moves

    opening = energy_opening(clip)
    assert opening.min() == 0.0 and opening.max() == pytest.approx(0.6)
    speech = slice(int(clip.meta["speech_start"] * clip.fps) + 2, int(clip.meta["speech_end"] * clip.fps) - 2)
    assert opening[speech].mean() > opening[:2].mean()  # open while speaking, shut in the lead silence


def test_true_mouth_baseline_is_the_real_mouth_with_the_first_frames_head(corpus):
    clip = load_split(corpus, "test")[0]
    frames, still = true_mouth_frames(clip, corpus), static_frames(clip)
    assert np.array_equal(frames[0], clip.frames[0])  # frame 0: the real one, re-rendered
    upper = slice(0, int(0.4 * clip.frames.shape[1]))
    assert np.array_equal(frames[:, upper], still[:, upper])  # head, eyes and noise held
    lower = slice(clip.frames.shape[1] // 2, None)
    moving = np.abs(np.diff(clip.truth["mouth"], axis=0)).sum(1) > 0.05  # the mouth moved
    changed = np.abs(np.diff(frames[:, lower].astype(int), axis=0)).sum((1, 2, 3)) > 0
    assert changed[moving].all()  # the rendered mouth follows the true one


def test_estimator_starts_from_the_mean_shape_in_pixels():
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(10, 50, (20, 68, 2)).astype(np.float32)
    estimator = LandmarkEstimator(resolution=64).eval()
    estimator.start_at_mean_shape(landmarks)
    with torch.no_grad():
        estimator.head[-1].weight.zero_()  # the output is then the bias alone
    track = estimate(estimator, rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8))
    assert track.landmarks.shape == (3, 68, 2)
    np.testing.assert_allclose(track.landmarks[1], landmarks.mean(0), atol=1e-4)
    np.testing.assert_allclose(track.eye_openness, 0.5)
    np.testing.assert_allclose(track.mouth_opening, 0.5)


def test_landmark_training_saves_an_estimator_with_its_validation_errors(corpus, tmp_path):
    errors = train_landmarks(LandmarkTrainConfig(corpus=str(corpus), output_dir=str(tmp_path), steps=3,
                                                 batch_size=4))
    out = tmp_path / "export"
    assert set(errors) == {"landmarks_px", "mouth_landmarks_px", "eye_landmarks_px", "eye_openness",
                           "mouth_opening"}
    assert all(np.isfinite(v) for v in errors.values())
    assert json.loads((out / "validation.json").read_text())["errors"] == errors
    clip = load_split(corpus, "val")[0]
    track = estimate(LandmarkEstimator.from_pretrained(out).eval(), np.asarray(clip.frames))
    assert track.landmarks.shape == (clip.num_frames, 68, 2)
    assert track.eye_openness.shape == track.mouth_opening.shape == (clip.num_frames,)


def test_evaluation_opens_predicted_jaws_as_the_pipeline_does(corpus, models, monkeypatch):
    """The MAN rows measure what users get: the predicted jaw opened by the articulation (at most
    fully open), the rest of the mouth as predicted; 1 is the corpus's own scale."""
    made = []
    original = TalkingFacePipeline.generate_frames

    def spy(self, source, landmarks, parameters, *args, **kwargs):
        made.append(parameters.clone())
        return original(self, source, landmarks, parameters, *args, **kwargs)

    monkeypatch.setattr(TalkingFacePipeline, "generate_frames", spy)
    clip = load_split(corpus, "test")[0]
    for articulation in (1.0, 2.5):
        model_methods([str(models["optical"])], "cpu", 64, articulation)["MAN-optical"](clip)
    as_predicted, opened = made
    assert as_predicted[:, 0].max() > 0.05  # the untrained predictor does open the jaw somewhat
    assert torch.allclose(opened[:, 0], (as_predicted[:, 0] * 2.5).clamp(max=1.0))
    assert torch.equal(opened[:, 1:], as_predicted[:, 1:])


def test_articulation_is_checked(corpus):
    from talking.evaluate import EvaluateOptions

    assert EvaluateOptions(corpus=str(corpus)).articulation == ARTICULATION  # what users get
    for bad in (0.0, -1.0, 10.0):
        with pytest.raises(ValueError, match="articulation"):
            EvaluateOptions(corpus=str(corpus), articulation=bad)
