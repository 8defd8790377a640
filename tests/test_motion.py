"""Motion as geometry: speech -> mouth parameters -> landmarks -> the generator's motion input."""

import numpy as np
import pytest
import torch

from talking.config import MOUTH_PARAMETERS
from talking.models.flow import warp
from talking.models.motion import (
    INNER_LIP_LOWER,
    MOTION_CLASSES,
    FlowMotion,
    KeypointMotion,
    mouth_opening,
    normalise_audio,
)
from talking.models.thin_plate import thin_plate_flow
from talking.training.motion import fit_mouth_basis, motion_loss, stretch

R = 64


@pytest.fixture(scope="module")
def basis() -> np.ndarray:
    return fit_mouth_basis(styles=6, samples=15)


@pytest.fixture
def model(basis) -> FlowMotion:
    """A motion predictor with the corpus's mouth basis (its network untrained)."""
    predictor = FlowMotion(resolution=R)
    predictor.basis.copy_(torch.from_numpy(basis))
    return predictor


def jaw_open(value: float) -> torch.Tensor:
    """(1, P) mouth parameters with the jaw open by ``value``, the rest at rest."""
    parameters = torch.zeros(1, len(MOUTH_PARAMETERS))
    parameters[0, 0] = value
    return parameters


def face_points(mouth=None, resolution=R) -> torch.Tensor:
    """(1, 68, 2) landmarks of a face of the corpus renderer (mouth at rest unless given), in
    crop pixels."""
    from talking.corpus.appearance import sample_face_style
    from talking.corpus.geometry import face_frame

    style = sample_face_style(np.random.default_rng(3), feminine=True)
    mouth = np.zeros(len(MOUTH_PARAMETERS)) if mouth is None else mouth
    points = face_frame(style, mouth, 1.0, 0.0, np.zeros(2)).landmarks
    return torch.from_numpy(points * resolution - 0.5).float()[None]


def test_thin_plate_flow_takes_every_target_point_to_its_source(basis):
    source = face_points()
    target = source + torch.from_numpy(basis[0] + 0.5 * basis[1]) * R  # jaw open, lips spread
    flow = thin_plate_flow(source, target, R, stride=1)
    for k in (8, 48, 51, 57, 62, 66):
        x, y = target[0, k]
        sampled = torch.nn.functional.grid_sample(
            flow, torch.tensor([[[[(2 * x + 1) / R - 1, (2 * y + 1) / R - 1]]]]), align_corners=False)
        expected = (source - target)[0, k]
        assert torch.allclose(sampled[0, :, 0, 0], expected, atol=0.05 + 0.05 * expected.abs().max().item())


def test_thin_plate_flow_is_zero_without_motion_and_fades_towards_the_border():
    source = face_points()
    assert thin_plate_flow(source, source, R).abs().max() == 0
    target = source.clone()
    target[:, 57, 1] += 3
    flow = thin_plate_flow(source, target, R)
    assert flow[:, :, 0].abs().max() < 0.1 and flow[:, :, :, 0].abs().max() < 0.1  # border
    assert flow[:, :, 20:26, 20:26].abs().max() < 0.3  # the eyes stay put


def test_opening_the_jaw_parts_the_lips_by_the_basis(model):
    rest = face_points()
    jaw = jaw_open(1.0)
    opened = model.landmarks(jaw, rest, model.source_parameters(rest))
    drawn = face_points(jaw[0].numpy())  # the renderer's own face with the jaw open
    assert mouth_opening(opened).item() == pytest.approx(mouth_opening(drawn).item(), rel=0.15)
    assert mouth_opening(opened).item() > mouth_opening(rest).item() + 0.05 * R


def test_an_open_photo_closes_its_mouth_on_silence(model):
    rest = face_points()
    half = jaw_open(0.6)
    open_photo = model.landmarks(half, rest, torch.zeros_like(half))
    state = model.source_parameters(open_photo)
    assert state[0, 0].item() == pytest.approx(0.6, abs=0.1)
    closed = model.landmarks(torch.zeros_like(half), open_photo, state)
    assert mouth_opening(closed).item() == pytest.approx(mouth_opening(rest).item(), abs=0.1 * R * 0.085)


def test_the_variants_draw_a_flow_and_heatmaps_from_the_same_landmarks(basis):
    rest = face_points()
    target = rest.clone()
    target[:, 57, 1] += 2
    flow = MOTION_CLASSES["optical"](resolution=R).condition(rest, target)
    heatmaps = MOTION_CLASSES["keypoint"](resolution=R).condition(rest, target)
    assert flow.shape == (1, FlowMotion.motion_channels, R, R)
    assert heatmaps.shape == (1, KeypointMotion.motion_channels, R, R)
    image = torch.rand(1, 3, R, R)
    assert torch.equal(warp(image, torch.zeros_like(flow)), image)


def test_audio_normalisation_removes_level_and_microphone_colour():
    rng = np.random.default_rng(0)
    mel = torch.from_numpy(rng.normal(0, 1, (1, 30, 16, 80)).astype(np.float32))
    pitch = torch.from_numpy(rng.integers(0, 200, (1, 30, 16)))
    energy = torch.from_numpy(rng.uniform(2, 5, (1, 30, 16)).astype(np.float32))
    tilt = torch.linspace(-3, 3, 80)
    a = normalise_audio(mel, pitch, energy)
    b = normalise_audio(mel + 2.0 + tilt, pitch, energy + 2.0)  # louder, another microphone
    assert torch.allclose(a, b, atol=1e-4)


def test_predictor_gives_one_parameter_vector_per_frame_in_range():
    model = FlowMotion(resolution=R, channels=16, hidden=16)
    mel = torch.randn(2, 12, 16, 80)
    pitch = torch.randint(0, 256, (2, 12, 16))
    energy = torch.rand(2, 12, 16)
    out = model(mel, pitch, energy)
    assert out.parameters.shape == (2, 12, len(MOUTH_PARAMETERS))
    assert out.parameters.min() >= 0 and out.parameters.max() <= 1


def test_motion_loss_penalises_a_mouth_that_barely_moves():
    t = torch.linspace(0, 6.28, 50)
    truth = torch.zeros(1, 50, len(MOUTH_PARAMETERS))
    truth[0, :, 0] = 0.5 + 0.4 * torch.sin(t)
    valid = torch.ones(1, 50, dtype=torch.bool)
    timid = truth.clone()
    timid[0, :, 0] = 0.5 + 0.1 * torch.sin(t)
    _, exact = motion_loss(truth, truth, valid)
    _, small = motion_loss(timid, truth, valid)
    assert exact["spread"] < 1e-3 and small["spread"] > 0.05
    assert small["velocity"] > exact["velocity"]


def test_stretch_keeps_the_shape_of_the_targets_over_a_new_length():
    targets = np.zeros((20, 7), np.float32)
    targets[10:15, 0] = 1
    stretched = stretch(targets, 40)
    assert stretched.shape == (40, 7)
    assert stretched[20:30, 0].mean() > 0.9 and stretched[:15, 0].max() == 0


def test_silence_keeps_the_mouth_at_rest_whatever_the_network_says():
    model = FlowMotion(resolution=R, channels=16, hidden=16)
    with torch.no_grad():
        model.head.bias.fill_(3.0)  # a network that wants the mouth wide open everywhere
    mel = torch.randn(1, 20, 16, 80)
    pitch = torch.zeros(1, 20, 16, dtype=torch.long)
    noise = torch.full((1, 20, 16), 0.4)  # a noise floor, well below speech
    assert model(mel, pitch, noise).parameters.abs().max() == 0
    speech = noise.clone()
    speech[:, 8:12] = 4.5  # four frames of speech at a normal level
    parameters = model(mel, pitch, speech).parameters[0, :, 0]
    assert parameters[:5].max() == 0 and parameters[15:].max() == 0
    assert parameters[8:12].min() > 0.9


@pytest.mark.parametrize("left_open", [0.3, -1.5])  # px: nearly met, or crossed
def test_closing_an_open_mouth_does_not_fold_the_image(model, left_open):
    """Facing inner lips that meet (or cross: a photo's opening is only estimated) become one
    control point; two controls at one place pulling apart fold the spline into ripples."""
    rest = face_points()
    wide = jaw_open(0.8)
    open_photo = model.landmarks(wide, rest, torch.zeros_like(wide))
    closed = model.landmarks(torch.zeros_like(wide), open_photo, model.source_parameters(open_photo))
    closed[:, INNER_LIP_LOWER, 1] += left_open
    flow = model.flow(open_photo, closed, R)
    # the backward map y -> y + dy stays increasing down every column: no pixel row is mirrored
    assert (1 + flow[:, 1].diff(dim=1)).min() > -0.1
