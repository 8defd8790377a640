"""TalkingFacePipeline: one folder on disk, and frames generated autoregressively from audio windows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from talking.audio import LOG_MEL_FLOOR, AudioWindows
from talking.models import FlowPredictor, KeypointPredictor, MANGenerator
from talking.pipeline import TalkingFacePipeline

RESOLUTION, N_MELS, WINDOW = 32, 20, 8


def tiny_pipeline(variant: str, seed: int = 0) -> TalkingFacePipeline:
    torch.manual_seed(seed)
    audio = {"resolution": RESOLUTION, "n_mels": N_MELS, "audio_window": WINDOW}
    if variant == "optical":
        predictor = FlowPredictor(**audio, channels=[4, 8], latent_channels=4, audio_channels=8)
        motion = {"motion_type": "flow", "motion_channels": 2}
    else:
        predictor = KeypointPredictor(**audio, channels=[4, 8], audio_channels=8)
        motion = {"motion_type": "heatmaps", "motion_channels": 15}
    generator = MANGenerator(**audio, **motion, encoder_channels=[4, 8], decoder_channels=[4],
                             num_blocks=1, condition_channels=8, audio_channels=8)
    return TalkingFacePipeline(generator=generator.eval(), motion_predictor=predictor.eval())


def windows(frames: int, seed: int = 0) -> AudioWindows:
    rng = np.random.default_rng(seed)
    return AudioWindows(
        mel=(LOG_MEL_FLOOR + 12 * rng.random((frames, WINDOW, N_MELS))).astype(np.float32),
        pitch=rng.integers(0, 256, (frames, WINDOW)),
        energy=(4 * rng.random((frames, WINDOW))).astype(np.float32),
    )


def source_image() -> torch.Tensor:
    return torch.rand(3, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(5)) * 2 - 1


def generate(pipe: TalkingFacePipeline, frames: int = 7, **kwargs) -> torch.Tensor:
    return torch.stack(list(pipe.generate_frames(source_image(), windows(frames), **kwargs)))


@pytest.mark.parametrize(
    ("variant", "predictor"),
    [("optical", ["talking.models.flow", "FlowPredictor"]),
     ("keypoint", ["talking.models.keypoints", "KeypointPredictor"])],
)
def test_pipeline_saves_as_one_folder_and_reloads_to_the_same_frames(variant, predictor, tmp_path):
    pipe = tiny_pipeline(variant)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "TalkingFacePipeline"
    assert index["generator"] == ["talking.models.generator", "MANGenerator"]
    assert index["motion_predictor"] == predictor
    assert {p.name for p in tmp_path.iterdir()} == {"model_index.json", "generator", "motion_predictor"}

    loaded = TalkingFacePipeline.from_pretrained(tmp_path)
    assert loaded.variant == variant
    torch.testing.assert_close(generate(loaded), generate(pipe), rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant", ["optical", "keypoint"])
def test_generate_frames_yields_one_frame_per_window_deterministically(variant):
    pipe = tiny_pipeline(variant)
    stream = pipe.generate_frames(source_image(), windows(7), batch_size=3)
    assert isinstance(stream, Iterator)
    first = next(stream)  # streamed: available before the rest are made
    frames = torch.stack([first, *stream])
    assert frames.shape == (7, 3, RESOLUTION, RESOLUTION)
    assert frames.min() >= -1 and frames.max() <= 1
    assert torch.equal(frames, generate(pipe, batch_size=3))
    assert not torch.equal(frames[0], frames[-1])  # the audio changes the frames


def test_audio_batch_size_does_not_change_the_frames():
    pipe = tiny_pipeline("optical")
    torch.testing.assert_close(generate(pipe, batch_size=2), generate(pipe, batch_size=64), rtol=0, atol=1e-5)


def test_seeded_generator_samples_the_flow_reproducibly():
    pipe = tiny_pipeline("optical")
    seeded = [generate(pipe, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(seeded[0], seeded[1])
    assert not torch.equal(seeded[0], seeded[2])


@pytest.mark.parametrize("variant", ["optical", "keypoint"])
def test_history_starts_as_the_source_and_then_holds_the_generated_frames(variant, monkeypatch):
    pipe = tiny_pipeline(variant)
    seen = []
    predict = pipe.motion_predictor.predict

    def recording_predict(source, history, *args):
        seen.append(history.clone())
        return predict(source, history, *args)

    monkeypatch.setattr(pipe.motion_predictor, "predict", recording_predict)
    frames = generate(pipe, frames=7)
    source = source_image()
    assert all(torch.equal(h, source) for h in seen[0][0])  # 5 copies of the photo
    assert torch.equal(seen[2][0, -2:], frames[:2])  # frame 2 sees frames 0 and 1 last
    assert torch.equal(seen[6][0], frames[1:6])  # frame 6 sees frames 1..5


def test_mismatched_generator_and_predictor_are_refused():
    optical, keypoint = tiny_pipeline("optical"), tiny_pipeline("keypoint")
    pipe = TalkingFacePipeline(generator=optical.generator, motion_predictor=keypoint.motion_predictor)
    with pytest.raises(ValueError, match="keypoint variant needs a generator with motion_type='heatmaps'"):
        next(pipe.generate_frames(source_image(), windows(2)))


def test_a_batched_source_is_refused():
    with pytest.raises(ValueError, match=r"one image \(3, H, W\)"):
        next(tiny_pipeline("optical").generate_frames(source_image()[None], windows(2)))
