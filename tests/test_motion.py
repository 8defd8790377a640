"""Motion as geometry: speech -> mouth parameters -> landmarks -> the generator's motion input."""

import numpy as np
import pytest
import torch

from talking.closed_mouth import OPEN_ABOVE
from talking.config import MOUTH_PARAMETERS
from talking.models.flow import warp
from talking.models.motion import (
    INNER_LIP_LOWER,
    MOTION_CLASSES,
    FlowMotion,
    KeypointMotion,
    lip_gap,
    mouth_opening,
    normalise_audio,
)
from talking.models.thin_plate import thin_plate_flow
from talking.speech import Phoneme
from talking.training.motion import fit_mouth_basis, motion_loss, stretch, viseme_intervals

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


def test_a_jaw_opened_wide_takes_a_low_chin_down_without_folding_the_field(basis):
    """A long face's chin sits near the crop's bottom (the astronaut's at 119.9 of 128): opened
    wide, the jaw takes it onto the bottom edge, which must not pin it (a pinned edge folded the
    field there, and the neck showed through a notch in the chin)."""
    size = 128
    model = FlowMotion(resolution=size)
    model.basis.copy_(torch.from_numpy(basis))
    rest = face_points(resolution=size)
    rest[..., 1] += 119.9 - rest[0, 8, 1]
    opened = model.landmarks(jaw_open(1.0), rest, torch.zeros(1, len(MOUTH_PARAMETERS)))
    assert opened[0, 8, 1] > size - 1  # the chin reaches the bottom edge
    flow = model.flow(rest, opened, size)
    # below the lips the backward map y -> y + dy stays increasing down every column: no row
    # is mirrored (between the lips the rendering shows)
    below_lips = int(opened[0, 57, 1]) + 1
    assert (1 + flow[:, 1, below_lips:].diff(dim=1)).min() > 0.2
    assert flow[0, 1, -1, size // 2] < -1  # the bottom edge under the chin moves down with it


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
    basis = torch.from_numpy(fit_mouth_basis(styles=4, samples=20))
    _, exact = motion_loss(truth, truth, valid, basis)
    _, small = motion_loss(timid, truth, valid, basis)
    assert exact["spread"] < 1e-3 and small["spread"] > 0.05
    assert small["velocity"] > exact["velocity"]


def test_motion_loss_asks_closed_lips_to_meet_exactly():
    """Between two open vowels a /p b m/ closes the lips for two frames: a prediction that stops
    short of closing costs the closure term; one that closes costs nothing there."""
    basis = torch.from_numpy(fit_mouth_basis(styles=4, samples=20))
    truth = torch.zeros(1, 12, len(MOUTH_PARAMETERS))
    truth[0, :, 0] = 0.8
    truth[0, 5:7, 0] = 0.0  # the closure
    valid = torch.ones(1, 12, dtype=torch.bool)
    short = truth.clone()
    short[0, 5:7, 0] = 0.15
    _, closing = motion_loss(truth, truth, valid, basis)
    _, stopping = motion_loss(short, truth, valid, basis)
    assert closing["closure"] == 0 and stopping["closure"] > 0.02
    assert lip_gap(short[0, 5], basis) > 0.02 >= lip_gap(truth[0, 5], basis)


def test_validation_counts_the_bilabials_whose_lips_close():
    phonemes = [Phoneme("_", 0.0, 0.2), Phoneme("a", 0.2, 0.4), Phoneme("m", 0.4, 0.48),
                Phoneme("a", 0.48, 0.7), Phoneme("_", 0.7, 1.0)]
    bilabials, vowels = viseme_intervals(phonemes, 25)
    assert len(bilabials) == 1 and len(vowels) == 2
    assert 10 in bilabials[0] and 11 in bilabials[0]  # frames 10, 11 have their middles in /m/


def test_augmented_copies_keep_their_bilabials_at_the_copys_tempo():
    from talking.training.motion import Speech, build_sequences

    t = np.arange(22050 * 2) / 22050
    loud = (0.3 * np.sin(2 * np.pi * 140 * t)).astype(np.float32)
    quiet = (0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    phonemes = [Phoneme("a", 0.0, 1.0), Phoneme("m", 1.0, 1.2), Phoneme("a", 1.2, 2.0)]
    speech = [Speech(loud, np.zeros((50, 7), np.float32), phonemes),
              Speech(quiet, np.zeros((50, 7), np.float32), [])]
    sequences = build_sequences(speech, augmentations=3, seed=0)
    assert len(sequences) == 8
    original, *copies = sequences[:4]
    assert len(original.bilabials) == 1 and original.bilabials[0][-1] == 29  # 1.0-1.2 s: frames 25-29
    for copy in copies:
        factor = 50 / len(copy.targets)  # the copy's tempo, from its length
        (frames,) = copy.bilabials
        assert abs(frames[-1] + 1 - 30 / factor) <= 1.5 and len(copy.vowels) == 2
    assert sequences[4].bilabials == [] and len(sequences[5:]) == 3


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
def test_closing_a_slightly_open_mouth_does_not_fold_the_image(model, left_open):
    """Facing inner lips that meet (or cross: a photo's opening is only estimated) become one
    control point; two controls at one place pulling apart fold the spline into ripples. (A
    wider open photo is closed once, before the frames: talking.closed_mouth.)"""
    rest = face_points()
    wide = jaw_open(OPEN_ABOVE)
    open_photo = model.landmarks(wide, rest, torch.zeros_like(wide))
    closed = model.landmarks(torch.zeros_like(wide), open_photo, model.source_parameters(open_photo))
    closed[:, INNER_LIP_LOWER, 1] += left_open
    flow = model.flow(open_photo, closed, R)
    # the backward map y -> y + dy stays increasing down every column: no pixel row is mirrored
    assert (1 + flow[:, 1].diff(dim=1)).min() > -0.1


def test_train_motion_learns_from_the_corpus_and_natural_voices_and_reports_visemes(corpus, tmp_path):
    """Two steps on the session corpus plus a natural-voice set (one utterance in ten held out):
    the log reports the natural voices' val figures and the viseme shares; the exported predictor
    reloads as each variant."""
    import json

    from talking.corpus.natural import NaturalSpeechConfig, build_natural_speech
    from talking.models import MOTION_CLASSES
    from talking.training.motion import MotionTrainConfig, train_motion

    natural = tmp_path / "natural"
    build_natural_speech(NaturalSpeechConfig(out=str(natural), utterances=2, seed=1))
    config = MotionTrainConfig(corpus=str(corpus), output_dir=str(tmp_path / "run"), steps=2, batch_size=2,
                               augmentations=0, max_frames=40, channels=8, hidden=8, validate_every=1,
                               natural=str(natural), threads=1)
    model = train_motion(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2]
    assert {"val_l1", "val_natural_l1", "val_natural_jaw_corr", "closure"} <= set(log[-1])
    assert any(key.endswith("bilabial_closed") or key.endswith("open_vowel_open") for key in log[-1])
    assert model.config.channels == 8
    for variant, cls in MOTION_CLASSES.items():
        assert isinstance(cls.from_pretrained(tmp_path / "run" / variant / "motion_predictor"), cls)
