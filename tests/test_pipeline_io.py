"""TalkingFacePipeline: one folder on disk; frames made in batches from the predicted motion."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from talking.audio import LOG_MEL_FLOOR, AudioWindows
from talking.config import MOUTH_PARAMETERS
from talking.models import MOTION_CLASSES, MANGenerator
from talking.models.motion import mouth_opening
from talking.pipeline import TalkingFacePipeline

RESOLUTION, N_MELS, WINDOW = 32, 20, 8


def tiny_pipeline(variant: str, seed: int = 0) -> TalkingFacePipeline:
    torch.manual_seed(seed)
    audio = {"resolution": RESOLUTION, "n_mels": N_MELS, "audio_window": WINDOW}
    predictor = MOTION_CLASSES[variant](**audio, channels=8, hidden=8)
    predictor.basis[0, [61, 62, 63], 1] = -0.02  # jaw_open parts the inner lips by 0.1 R
    predictor.basis[0, [65, 66, 67], 1] = 0.08
    generator = MANGenerator(**audio, motion_type=predictor.motion_type,
                             motion_channels=predictor.motion_channels, encoder_channels=[4, 8],
                             decoder_channels=[4], num_blocks=1, condition_channels=8, audio_channels=8)
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


def face_landmarks() -> torch.Tensor:
    """(68, 2) a face in the crop: a ring of points, the lips closed around (16, 24)."""
    angles = torch.linspace(0, 6.28, 68)
    points = torch.stack([16 + 12 * torch.cos(angles), 14 + 10 * torch.sin(angles)], dim=1)
    inner_lips = [(10, 24), (13, 24), (16, 24), (19, 24), (22, 24), (19, 24), (16, 24), (13, 24)]
    points[60:68] = torch.tensor(inner_lips, dtype=torch.float32)
    return points


def generate(pipe: TalkingFacePipeline, frames: int = 7, parameters=None, **kwargs):
    if parameters is None:
        parameters = pipe.motion_predictor.predict_parameters(windows(frames))
    return list(pipe.generate_frames(source_image(), face_landmarks(), parameters, windows(frames), **kwargs))


@pytest.mark.parametrize(("variant", "predictor"),
                         [("optical", "FlowMotion"), ("keypoint", "KeypointMotion")])
def test_pipeline_saves_as_one_folder_and_reloads_to_the_same_frames(variant, predictor, tmp_path):
    pipe = tiny_pipeline(variant)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "TalkingFacePipeline"
    assert index["generator"] == ["talking.models.generator", "MANGenerator"]
    assert index["motion_predictor"] == ["talking.models.motion", predictor]
    assert {p.name for p in tmp_path.iterdir()} == {"model_index.json", "generator", "motion_predictor"}

    loaded = TalkingFacePipeline.from_pretrained(tmp_path)
    assert loaded.variant == variant
    assert torch.equal(loaded.motion_predictor.basis, pipe.motion_predictor.basis)  # the basis travels
    for a, b in zip(generate(loaded), generate(pipe), strict=True):
        torch.testing.assert_close(a.crop, b.crop, rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant", ["optical", "keypoint"])
def test_generate_frames_yields_one_frame_per_window_as_a_stream(variant):
    pipe = tiny_pipeline(variant)
    parameters = pipe.motion_predictor.predict_parameters(windows(7))
    stream = pipe.generate_frames(source_image(), face_landmarks(), parameters, windows(7), batch_size=3)
    assert isinstance(stream, Iterator)
    first = next(stream)  # streamed: available before the rest are made
    parts = [first, *stream]
    assert len(parts) == 7
    assert parts[0].crop.shape == (3, RESOLUTION, RESOLUTION)
    assert parts[0].flow.shape == (2, RESOLUTION, RESOLUTION)
    assert all(p.crop.min() >= -1 and p.crop.max() <= 1 for p in parts)


def test_batch_size_does_not_change_the_frames():
    pipe = tiny_pipeline("optical")
    for a, b in zip(generate(pipe, batch_size=2), generate(pipe, batch_size=64), strict=True):
        torch.testing.assert_close(a.crop, b.crop, rtol=0, atol=1e-5)


def test_only_open_mouths_are_rendered_and_the_frames_are_those_of_rendering_every_frame_whole():
    """generate_frames skips the generator on closed mouths and decodes only around the
    openings; the frames are the ones a full render of every frame composes to."""
    from talking.composite import compose_crop, mouth_openings

    pipe = tiny_pipeline("optical")
    parameters = torch.zeros(6, len(MOUTH_PARAMETERS))
    parameters[[1, 2, 4], 0] = torch.tensor([1.0, 0.6, 0.8])  # frames 0, 3, 5 closed
    audio = windows(6)
    rendered = []
    original = pipe.generator.render
    pipe.generator.render = lambda *args, **kwargs: rendered.append(len(args[1])) or original(*args, **kwargs)
    parts = generate(pipe, frames=6, parameters=parameters)
    assert rendered == [3]  # one batch, only its three open mouths

    predictor, generator = pipe.motion_predictor, pipe.generator
    source, points = source_image()[None].expand(6, -1, -1, -1), face_landmarks()[None]
    targets = predictor.landmarks(parameters, points, predictor.source_parameters(points))
    flow, motion = predictor.drive(points.expand(6, -1, -1), targets)
    with torch.no_grad():
        output = generator(source, motion, torch.from_numpy(audio.mel), torch.from_numpy(audio.pitch),
                           torch.from_numpy(audio.energy))
        crops, weight = compose_crop(source, flow, output.synthesised, output.mask,
                                     mouth_openings(targets, RESOLUTION))
    assert weight[[1, 2, 4]].amax() > 0.1
    openings = mouth_openings(targets, RESOLUTION) > 0
    for i, part in enumerate(parts):
        torch.testing.assert_close(part.crop, crops[i], rtol=0, atol=1e-5)
        # the compositor's share of the rendering: the generator's wherever the mouth is open
        share = 1 - output.mask[i, 0] if i in (1, 2, 4) else torch.zeros_like(output.mask[i, 0])
        torch.testing.assert_close(part.blend[openings[i]], share[openings[i]], rtol=0, atol=1e-5)
        assert i in (1, 2, 4) or part.blend.max() == 0


def test_a_closed_mouth_keeps_the_photo_and_an_open_one_moves_it_and_shows_the_rendering():
    pipe = tiny_pipeline("optical")
    with torch.no_grad():
        pipe.generator.to_output.bias[3] = -20.0  # the generator's mask asks to render everywhere
    closed = torch.zeros(2, len(MOUTH_PARAMETERS))
    opened = closed.clone()
    opened[:, 0] = 1.0
    still = generate(pipe, frames=2, parameters=closed)[0]
    assert still.flow.abs().max() < 1e-4 and still.blend.max() == 0  # not rendered
    torch.testing.assert_close(still.crop, source_image(), rtol=0, atol=1e-3)
    moving = generate(pipe, frames=2, parameters=opened)[0]
    assert moving.flow[1, 26, 16] < -1  # below the lips, pixels come from higher up: the jaw drops
    assert moving.blend[24, 16] > 0.5  # inside the opening, the generator's rendering
    moved = pipe.motion_predictor.landmarks(opened[:1], face_landmarks()[None], torch.zeros(1, 7))
    assert mouth_opening(moved).item() == pytest.approx(3.2, abs=0.01)


def test_mismatched_generator_and_predictor_are_refused():
    optical, keypoint = tiny_pipeline("optical"), tiny_pipeline("keypoint")
    pipe = TalkingFacePipeline(generator=optical.generator, motion_predictor=keypoint.motion_predictor)
    with pytest.raises(ValueError, match="keypoint variant needs a generator with motion_type='heatmaps'"):
        generate(pipe, frames=2)


def test_a_batched_source_is_refused():
    pipe = tiny_pipeline("optical")
    with pytest.raises(ValueError, match=r"one image \(3, H, W\)"):
        next(pipe.generate_frames(source_image()[None], face_landmarks(), torch.zeros(2, 7), windows(2)))


def test_frames_read_ahead_come_in_order_with_the_makers_errors_where_they_happened():
    import threading
    import time

    from talking.errors import TalkingError
    from talking.pipeline import ahead

    def made(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise TalkingError(f"frame {i} failed")
            yield i

    assert list(ahead(made(100), size=4)) == list(range(100))
    seen = []
    with pytest.raises(TalkingError, match="frame 7 failed"):
        for i in ahead(made(20, fail_at=7), size=4):
            seen.append(i)
    assert seen == list(range(7))  # every frame before the failure, none after

    # A reader that stops early stops the maker: it makes at most the queue's size more.
    made_count = []

    def slow():
        for i in range(1000):
            made_count.append(i)
            time.sleep(0.001)
            yield i

    before = threading.active_count()
    reader = ahead(slow(), size=4)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()
    time.sleep(0.05)
    assert threading.active_count() == before and len(made_count) <= 3 + 4 + 2


def test_a_refiner_travels_with_the_pipeline_and_refines_only_the_rendered_frames(tmp_path):
    from talking.models.refiner import MouthRefiner

    pipe = tiny_pipeline("optical")
    plain = generate(pipe, frames=4, parameters=torch.tensor([[0.0] * 7, [1.0] + [0.0] * 6] * 2))
    assert all(p.detail is None for p in plain)  # no refiner: the rendering is upsampled
    torch.manual_seed(1)
    pipe.register_modules(refiner=MouthRefiner(scale=2, channels=4, dilations=(1, 2)).eval())
    pipe.save_pretrained(tmp_path)
    loaded = TalkingFacePipeline.from_pretrained(tmp_path)
    assert isinstance(loaded.refiner, MouthRefiner) and loaded.refiner.config.scale == 2
    parts = generate(loaded, frames=4, parameters=torch.tensor([[0.0] * 7, [1.0] + [0.0] * 6] * 2))
    for part, before in zip(parts, plain, strict=True):
        torch.testing.assert_close(part.crop, before.crop)  # the crops are the generator's alone
        if before.blend.max() == 0:
            assert part.detail is None
        else:  # the inside at twice the crop's resolution, around the opening
            top, left, scale = part.detail.top, part.detail.left, part.detail.scale
            height, width = (s // scale for s in part.detail.image.shape[:2])
            opening = part.blend > 0
            rows, cols = torch.nonzero(opening, as_tuple=True)
            assert scale == 2 and part.detail.image.dtype == np.uint8
            assert top <= rows.min() and rows.max() < top + height
            assert left <= cols.min() and cols.max() < left + width
    assert sum(p.detail is not None for p in parts) == 2
    unrefined = generate(loaded, frames=4, parameters=torch.tensor([[0.0] * 7, [1.0] + [0.0] * 6] * 2),
                         refine=False)  # crops alone (crop_only) need no refined insides
    assert all(p.detail is None for p in unrefined)


def test_a_refiner_that_takes_the_mouth_parameters_is_given_each_frames_own():
    from talking.models.refiner import MouthRefiner

    pipe = tiny_pipeline("optical")
    torch.manual_seed(1)
    refiner = MouthRefiner(scale=2, channels=4, dilations=(1, 2), mouth_parameters=7)
    pipe.register_modules(refiner=refiner.eval())
    parameters = torch.tensor([[1.0, 0.3, 0.0, 0.2, 0.0, 0.0, 0.0]] * 2)
    shown = parameters.clone()
    shown[1, 5:] = 1.0  # the second frame's teeth and tongue show
    plain, teeth = generate(pipe, frames=2, parameters=parameters), generate(pipe, frames=2, parameters=shown)
    assert np.array_equal(plain[0].detail.image, teeth[0].detail.image)  # its own parameters alone
    assert not np.array_equal(plain[1].detail.image, teeth[1].detail.image)
