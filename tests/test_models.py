"""The MAN networks: shapes, gradients, save/load, the MAN layer's contract, the encoders, the warp,
the contour heatmaps, build_models' wiring of each variant, and (slow) learning a clip.

Each network has a tiny ``get_init_dict(resolution)`` and ``get_dummy_inputs(resolution)`` as in
diffusers' model tests; the shared checks run on all of them.
"""

from __future__ import annotations

import json
import time
from itertools import pairwise

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from talking.audio import LOG_MEL_FLOOR
from talking.models import (
    CONTOURS,
    PRESETS,
    FlowMotion,
    KeypointMotion,
    MANGenerator,
    MultiscaleDiscriminator,
    build_models,
    landmarks_to_heatmaps,
    warp,
)
from talking.models.cam import CAMHead
from talking.models.encoders import PartialConv2d
from talking.models.normalization import MultimodalAdaptiveNorm

BATCH = 2
N_MELS, WINDOW = 20, 8


def audio_inputs(batch: int = BATCH, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "mel": LOG_MEL_FLOOR + 12 * torch.rand(batch, WINDOW, N_MELS, generator=g),
        "pitch": torch.randint(0, 256, (batch, WINDOW), generator=g),
        "energy": 4 * torch.rand(batch, WINDOW, generator=g),
    }


def image(resolution: int, batch: int = BATCH, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, resolution, resolution, generator=g) * 2 - 1


def tensors(output) -> list[torch.Tensor]:
    """Every tensor in a (possibly nested) model output."""
    if isinstance(output, torch.Tensor):
        return [output]
    values = output.values() if isinstance(output, dict) else output
    return [t for value in values if value is not None for t in tensors(value)]


# ---------------------------------------------------------------------------------------------
# Per-network specs
# ---------------------------------------------------------------------------------------------


class GeneratorSpec:
    model_class = MANGenerator

    @staticmethod
    def get_init_dict(resolution: int) -> dict:
        return {"resolution": resolution, "n_mels": N_MELS, "audio_window": WINDOW,
                "encoder_channels": [4, 8, 8], "decoder_channels": [8, 4], "num_blocks": 1,
                "condition_channels": 8, "audio_channels": 8}

    @staticmethod
    def get_dummy_inputs(resolution: int) -> dict:
        flow = 2 * torch.randn(BATCH, 2, resolution, resolution, generator=torch.Generator().manual_seed(1))
        return {"source": image(resolution), "motion": flow, **audio_inputs()}

    @staticmethod
    def expected_shapes(resolution: int) -> dict:
        r = resolution
        return {"frame": (BATCH, 3, r, r), "mask": (BATCH, 1, r, r), "cam_logits": (BATCH, 2),
                "attention": (BATCH, 1, r // 4, r // 4)}


class DiscriminatorSpec:
    model_class = MultiscaleDiscriminator

    @staticmethod
    def get_init_dict(resolution: int) -> dict:
        return {"resolution": resolution, "channels": [4, 8, 8, 8]}

    @staticmethod
    def get_dummy_inputs(resolution: int) -> dict:
        return {"frame": image(resolution), "source": image(resolution, seed=1)}

    @staticmethod
    def expected_shapes(resolution: int) -> dict:
        scales = [resolution // 8, resolution // 16, resolution // 32]  # 3 stride-2 layers per scale
        return {"logits": [(BATCH, 1, s, s) for s in scales], "cam_logits": [(BATCH, 2)] * 3,
                "features": [[(BATCH, 4, 4 * s, 4 * s), (BATCH, 8, 2 * s, 2 * s), (BATCH, 8, s, s),
                              (BATCH, 8, s, s), (BATCH, 8, s, s)] for s in scales]}


SPECS = [GeneratorSpec, DiscriminatorSpec]


def plain(config) -> dict:
    """A config's hyper-parameters as JSON would hold them (tuples become lists)."""
    return json.loads(json.dumps({k: v for k, v in config.items() if not k.startswith("_")}))


def shapes(value):
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return [shapes(v) for v in value]


@pytest.mark.parametrize("resolution", [64, 128])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.model_class.__name__)
def test_forward_shapes(spec, resolution):
    model = spec.model_class(**spec.get_init_dict(resolution))
    output = model(**spec.get_dummy_inputs(resolution))
    got = {name: shapes(output[name]) for name in spec.expected_shapes(resolution)}
    assert got == spec.expected_shapes(resolution)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.model_class.__name__)
def test_return_dict_false_gives_the_same_tensors_as_a_tuple(spec):
    model = spec.model_class(**spec.get_init_dict(64)).eval()
    inputs = spec.get_dummy_inputs(64)
    as_dict, as_tuple = model(**inputs), model(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple)
    for a, b in zip(tensors(as_dict), tensors(as_tuple), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.model_class.__name__)
def test_gradients_reach_every_parameter(spec):
    model = spec.model_class(**spec.get_init_dict(64))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    # Two passes: residual branches that start at zero (the generator's decoder blocks) pass no
    # gradient back through their zero conv until one step has moved it.
    for step in range(2):
        optimizer.zero_grad()
        loss = sum(t.float().square().mean() for t in tensors(model(**spec.get_dummy_inputs(64))))
        loss.backward()
        if step == 0:
            optimizer.step()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.isfinite().all()]
    assert missing == []
    # Not only reached: every parameter tensor gets a non-zero gradient.
    assert [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0] == []


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.model_class.__name__)
def test_save_pretrained_round_trip_gives_the_same_outputs(spec, tmp_path):
    model = spec.model_class(**spec.get_init_dict(64)).eval()
    model.save_pretrained(tmp_path)
    loaded = spec.model_class.from_pretrained(tmp_path)
    assert plain(loaded.config) == plain(model.config) and not loaded.training
    inputs = spec.get_dummy_inputs(64)
    with torch.no_grad():
        for a, b in zip(tensors(model(**inputs)), tensors(loaded(**inputs)), strict=True):
            # Equal up to float rounding: loaded tensors may be aligned differently in memory,
            # which changes the SIMD summation order by ~1e-8.
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# MAN layer and generator
# ---------------------------------------------------------------------------------------------


def test_man_without_conditioning_is_instance_norm():
    x = 3 + 2 * torch.randn(2, 4, 8, 8)
    out = MultimodalAdaptiveNorm(4, {}, {})(x, {}, {})
    torch.testing.assert_close(out.mean(dim=(2, 3)), torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(2, 3), unbiased=False), torch.ones(2, 4), atol=1e-3, rtol=0)


def test_man_modulation_is_the_rho_weighted_sum_of_the_modalities():
    norm = MultimodalAdaptiveNorm(3, {"image": 2}, {"mel": 5})
    x = torch.randn(1, 3, 4, 4)
    spatial, vector = {"image": torch.randn(1, 2, 4, 4)}, {"mel": torch.randn(1, 5)}
    with torch.no_grad():
        norm.rho_logit.copy_(torch.tensor([[0.3, -1.0], [2.0, 0.5]]))
        g_img, b_img = norm.spatial["image"](spatial["image"]).chunk(2, dim=1)
        g_mel, b_mel = norm.vector["mel"](vector["mel"])[:, :, None, None].chunk(2, dim=1)
        rho = torch.sigmoid(norm.rho_logit)
        gamma, beta = rho[0, 0] * g_img + rho[0, 1] * g_mel, rho[1, 0] * b_img + rho[1, 1] * b_mel
        expected = torch.nn.functional.instance_norm(x) * (1 + gamma) + beta
        torch.testing.assert_close(norm(x, spatial, vector), expected)


def test_a_modality_given_once_as_fixed_modulation_gives_the_same_layer_output():
    """The image's part of gamma and beta, computed once per clip, is the part computed per frame."""
    norm = MultimodalAdaptiveNorm(3, {"image": 2, "motion": 2}, {"mel": 5})
    with torch.no_grad():
        norm.rho_logit.copy_(torch.tensor([[0.3, -1.0, 0.7], [2.0, 0.5, -0.4]]))
    x = torch.randn(4, 3, 8, 8)
    image, motion, mel = torch.randn(1, 2, 8, 8), torch.randn(4, 2, 8, 8), {"mel": torch.randn(4, 5)}
    fixed = norm.modulation({"image": image}, {}, x.shape[-2:])  # (1, 6, 8, 8): one clip
    whole = norm(x, {"image": image.expand(4, -1, -1, -1), "motion": motion}, mel)
    torch.testing.assert_close(norm(x, {"motion": motion}, mel, fixed), whole)
    assert not torch.allclose(norm(x, {"motion": motion}, mel), whole)


@pytest.mark.parametrize("direction", [+1, -1])
def test_rho_stays_in_unit_interval_after_a_step_that_pushes_it_out(direction):
    norm = MultimodalAdaptiveNorm(3, {"image": 2}, {"mel": 5, "pitch": 5})
    optimizer = torch.optim.SGD(norm.parameters(), lr=1e4)
    (-direction * norm.rho.sum()).backward()  # gradient ascent/descent on rho itself
    optimizer.step()
    assert norm.rho.shape == (2, 3)
    assert ((norm.rho >= 0) & (norm.rho <= 1)).all()
    assert (norm.rho > 0.99).all() if direction > 0 else (norm.rho < 0.01).all()


# modality (also the name of the input it reads) -> a config in which nothing else reads that input
SWITCHES = {"motion": {"warp_blend": False}, "mel": {}, "pitch": {}, "energy": {}}


@pytest.mark.parametrize("modality", list(SWITCHES))
def test_switching_a_modality_off_removes_its_parameters_and_its_influence(modality):
    config = {**GeneratorSpec.get_init_dict(64), **SWITCHES[modality]}
    on = MANGenerator(**config).eval()
    off = MANGenerator(**config, modalities=[m for m in on.modalities if m != modality]).eval()
    assert off.num_parameters() < on.num_parameters()
    assert not any(modality in n.split(".") for n, _ in off.named_parameters())
    inputs = GeneratorSpec.get_dummy_inputs(64)
    changed = {**inputs, modality: inputs[modality].flip(0)}
    with torch.no_grad():
        assert torch.equal(off(**inputs).frame, off(**changed).frame)
        assert torch.equal(off(**inputs).frame, off(**{**inputs, modality: None}).frame)
        assert not torch.allclose(on(**inputs).frame, on(**changed).frame)  # the control


def test_image_modality_off_removes_the_image_encoder_heads_and_weights():
    on = MANGenerator(**GeneratorSpec.get_init_dict(64))
    off = MANGenerator(**GeneratorSpec.get_init_dict(64), modalities=["motion", "mel", "pitch", "energy"])
    assert "image" in on.spatial_encoders and "image" not in off.spatial_encoders
    image_parameters = sum(p.numel() for n, p in on.named_parameters() if "image" in n.split("."))
    man_layers = sum(isinstance(m, MultimodalAdaptiveNorm) for m in on.modules())
    rho_columns = 2 * man_layers  # a (gamma, beta) column of rho per MAN layer
    assert on.num_parameters() - off.num_parameters() == image_parameters + rho_columns


def test_paper_ablation_configs_each_add_parameters_and_base_reads_only_the_image():
    table_7 = [["image"], ["image", "motion", "mel"], ["image", "motion", "mel", "pitch"],
               ["image", "motion", "mel", "pitch", "energy"]]
    config = {**GeneratorSpec.get_init_dict(64), "warp_blend": False}
    models = [MANGenerator(**config, modalities=modalities) for modalities in table_7]
    sizes = [model.num_parameters() for model in models]
    assert sizes == sorted(set(sizes))
    source = GeneratorSpec.get_dummy_inputs(64)["source"]
    assert models[0](source, None, None, None, None).frame.shape == source.shape


@pytest.mark.parametrize("kinds", [("conv", "conv"), ("partial", "lstm"), ("eca", "conv")])
def test_every_encoder_option_builds_and_runs(kinds):
    spatial_encoder, audio_encoder = kinds
    model = MANGenerator(**GeneratorSpec.get_init_dict(64), spatial_encoder=spatial_encoder,
                         audio_encoder=audio_encoder)
    assert model(**GeneratorSpec.get_dummy_inputs(64)).frame.shape == (BATCH, 3, 64, 64)


def test_mask_of_one_returns_the_source_warped_by_the_flow():
    model = MANGenerator(**GeneratorSpec.get_init_dict(64)).eval()
    with torch.no_grad():
        model.to_output.weight[3].zero_()
        model.to_output.bias[3] = 100.0  # sigmoid -> 1: all pixels from the warped photo
    inputs = GeneratorSpec.get_dummy_inputs(64)
    flow = torch.zeros(BATCH, 2, 64, 64)
    flow[:, 0] = 3.0  # every pixel reads the source 3 pixels to its right
    frame = model(**{**inputs, "motion": flow}).frame
    torch.testing.assert_close(frame[..., :-3], inputs["source"][..., 3:])


@pytest.mark.parametrize("region", [(30, 20, 45, 44), (0, 0, 9, 64), (50, 50, 64, 64)])
def test_a_region_render_is_the_whole_render_inside_it_and_keeps_the_photo_outside(region):
    model = MANGenerator(**GeneratorSpec.get_init_dict(64)).eval()
    inputs = GeneratorSpec.get_dummy_inputs(64)
    with torch.no_grad():
        source = model.encode_source(inputs["source"])
        audio = model.encode_audio(inputs["mel"], inputs["pitch"], inputs["energy"])
        whole = model.render(source, inputs["motion"], audio)
        part = model.render(source, inputs["motion"], audio, region=region)
    top, left, bottom, right = region
    inside = (..., slice(top, bottom), slice(left, right))
    torch.testing.assert_close(part.synthesised[inside], whole.synthesised[inside], atol=1e-5, rtol=0)
    torch.testing.assert_close(part.mask[inside], whole.mask[inside], atol=1e-5, rtol=0)
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[max(top - 4, 0):bottom + 4, max(left - 4, 0):right + 4] = False  # cell rounding
    assert (part.synthesised[..., outside] == 0).all() and (part.mask[..., outside] == 1).all()
    assert not torch.allclose(whole.mask[..., outside], torch.ones(()))


def test_keypoint_generator_blends_with_the_unwarped_source():
    model = MANGenerator(**GeneratorSpec.get_init_dict(64), motion_type="heatmaps", motion_channels=15).eval()
    with torch.no_grad():
        model.to_output.weight[3].zero_()
        model.to_output.bias[3] = 100.0
    inputs = {**GeneratorSpec.get_dummy_inputs(64), "motion": torch.rand(BATCH, 15, 64, 64)}
    torch.testing.assert_close(model(**inputs).frame, inputs["source"])


def test_fresh_generator_starts_close_to_the_photo():
    """The blend mask starts at sigmoid(2) = 0.88, so training starts from the (warped) photo."""
    model = MANGenerator(**GeneratorSpec.get_init_dict(64)).eval()
    inputs = {**GeneratorSpec.get_dummy_inputs(64), "motion": torch.zeros(BATCH, 2, 64, 64)}
    output = model(**inputs)
    assert output.mask.mean().item() == pytest.approx(0.88, abs=0.05)
    assert (output.frame - inputs["source"]).abs().mean() < 0.15
    # the frame is the mask's blend of the photo (zero flow: unwarped) and a rendering in [-1, 1]
    rendered_part = (output.frame - output.mask * inputs["source"]).abs()
    assert (rendered_part <= (1 - output.mask) + 1e-6).all()
    assert (rendered_part > 0).any()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modalities": ["image", "lips"]}, "modalities"),
        ({"modalities": ["mel", "mel"]}, "modalities"),
        ({"motion_type": "depth"}, "motion_type"),
        ({"motion_channels": 3}, "flow has 2 channels"),
        ({"spatial_encoder": "transformer"}, "spatial_encoder"),
        ({"audio_encoder": "gru"}, "audio_encoder"),
        ({"decoder_channels": [8]}, "decoder_channels"),
        ({"resolution": 66}, "divisible"),
        ({"num_blocks": 0}, "num_blocks"),
        ({"decoder_blocks": -1}, "decoder_blocks"),
    ],
)
def test_generator_rejects_a_bad_config(change, message):
    with pytest.raises(ValueError, match=message):
        MANGenerator(**{**GeneratorSpec.get_init_dict(64), **change})


def test_grown_generator_renders_the_same_frames_and_trains_its_new_blocks(tmp_path):
    """Stage 4: a generator saved without decoder blocks grows them; they start as the identity
    (the frames do not change) and get gradients, and every saved weight is kept."""
    torch.manual_seed(0)
    plain = MANGenerator(**GeneratorSpec.get_init_dict(64), decoder_blocks=0).eval()
    plain.save_pretrained(tmp_path)
    grown = MANGenerator.grown_from(tmp_path, decoder_blocks=1).eval()
    assert grown.config.decoder_blocks == 1 and len(grown.decoder_man) == 2  # one per stage
    inputs = GeneratorSpec.get_dummy_inputs(64)
    torch.testing.assert_close(grown(**inputs).frame, plain(**inputs).frame)
    for name, weight in plain.state_dict().items():
        torch.testing.assert_close(grown.state_dict()[name], weight)

    grown(**inputs).frame.square().mean().backward()
    new = [p.grad for name, p in grown.named_parameters() if name.startswith("decoder_man.")]
    assert any(g is not None and g.abs().sum() > 0 for g in new)


def test_grown_from_refuses_a_change_that_is_not_growth(tmp_path):
    MANGenerator(**GeneratorSpec.get_init_dict(64), decoder_blocks=0).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="does not grow"):
        MANGenerator.grown_from(tmp_path, decoder_blocks=1, num_blocks=2)


def test_generator_rejects_a_source_of_the_wrong_size():
    model = MANGenerator(**GeneratorSpec.get_init_dict(64))
    with pytest.raises(ValueError, match="source must be"):
        model(**{**GeneratorSpec.get_dummy_inputs(64), "source": image(128)})


# ---------------------------------------------------------------------------------------------
# Encoders and CAM
# ---------------------------------------------------------------------------------------------


def test_partial_convolution_keeps_a_constant_image_constant_up_to_the_border():
    conv = PartialConv2d(1, 1, 3, padding=1)
    plain = torch.nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        for layer in (conv, plain):
            layer.weight.fill_(1 / 9)
            layer.bias.zero_()
    x = torch.ones(1, 1, 6, 6)
    torch.testing.assert_close(conv(x), x)
    assert plain(x)[0, 0, 0, 0].item() == pytest.approx(4 / 9)  # zero padding darkens the corner


def test_cam_under_spectral_norm_weighs_channels_with_the_normalised_weight():
    head = CAMHead(4, spectral_norm=True).eval()
    x = torch.randn(2, 4, 5, 5)
    features, logits, attention = head(x)
    with torch.no_grad():
        head.gap_fc.parametrizations.weight.original.mul_(10)
        head.gmp_fc.parametrizations.weight.original.mul_(10)
    scaled = head(x)
    torch.testing.assert_close(scaled[0], features)  # weight_orig's scale does not leak in
    torch.testing.assert_close(scaled[1], logits)
    w = head.gap_fc.weight  # the normalised weight: unit norm for a 1 x C matrix
    assert torch.linalg.vector_norm(w).item() == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(logits[:, 0], x.mean(dim=(2, 3)) @ w[0])
    torch.testing.assert_close(attention, features.sum(dim=1, keepdim=True))


# ---------------------------------------------------------------------------------------------
# Flow, warp, predictors
# ---------------------------------------------------------------------------------------------


def test_warp_by_zero_flow_is_the_identity():
    img = image(16)
    torch.testing.assert_close(warp(img, torch.zeros(BATCH, 2, 16, 16)), img, rtol=0, atol=1e-6)


def test_warp_moves_content_by_the_flow_in_pixels_and_repeats_the_border():
    img = image(16)
    flow = torch.zeros(BATCH, 2, 16, 16)
    flow[:, 1] = -2.0  # each pixel reads 2 rows above: content moves down by 2
    out = warp(img, flow)
    torch.testing.assert_close(out[..., 2:, :], img[..., :-2, :], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[..., 0, :], img[..., 0, :], rtol=0, atol=1e-6)
    half = warp(img, torch.full((BATCH, 2, 16, 16), 0.5) * torch.tensor([1.0, 0.0])[:, None, None])
    torch.testing.assert_close(half[..., :-1], (img[..., :-1] + img[..., 1:]) / 2, rtol=0, atol=1e-6)


def test_warp_rejects_a_flow_of_another_size():
    with pytest.raises(ValueError, match="flow must be"):
        warp(image(16), torch.zeros(BATCH, 2, 8, 8))


# ---------------------------------------------------------------------------------------------
# Contour heatmaps
# ---------------------------------------------------------------------------------------------


def distance_to_polyline(points: np.ndarray, size: int) -> np.ndarray:
    """(H, W) distance of every pixel centre to the polyline through ``points`` (P, 2), by
    sampling the polyline every 0.01 px (independent of the projection the model code uses)."""
    ys, xs = np.mgrid[:size, :size]
    pixels = np.stack([xs, ys], -1).reshape(-1, 1, 2).astype(np.float32)
    distance2 = np.full(size * size, np.inf, dtype=np.float32)
    for a, b in pairwise(points):
        t = np.linspace(0, 1, max(2, int(np.linalg.norm(b - a) * 100)), dtype=np.float32)
        samples = a + t[:, None] * (b - a)  # (S, 2)
        distance2 = np.minimum(distance2, ((pixels - samples[None]) ** 2).sum(-1).min(-1))
    return np.sqrt(distance2).reshape(size, size)


def test_heatmaps_are_one_on_the_contours_with_gaussian_falloff():
    size, sigma = 32, 1.5
    landmarks = torch.randint(4, size - 4, (1, 68, 2), generator=torch.Generator().manual_seed(3)).float()
    heatmaps = landmarks_to_heatmaps(landmarks, size, sigma=sigma)
    assert heatmaps.shape == (1, 15, size, size)
    for k, indices in enumerate(CONTOURS.values()):
        points = landmarks[0, list(indices)]
        # 1 at every landmark of the contour (they sit on pixel centres), the channel's maximum
        values = heatmaps[0, k, points[:, 1].long(), points[:, 0].long()]
        torch.testing.assert_close(values, torch.ones(len(indices)))
        distance = distance_to_polyline(points.numpy(), size)
        expected = np.exp(-(distance**2) / (2 * sigma**2))
        np.testing.assert_allclose(heatmaps[0, k].numpy(), expected, atol=3e-3)


def test_heatmaps_follow_a_mouth_that_opens():
    landmarks = torch.zeros(1, 68, 2)
    landmarks[0, 60:68] = torch.tensor([[20, 30], [24, 28], [28, 28], [32, 28], [36, 30],
                                        [32, 34], [28, 34], [24, 34]]).float()
    heatmaps = landmarks_to_heatmaps(landmarks, 64)
    upper, lower = list(CONTOURS).index("lip_inner_upper"), list(CONTOURS).index("lip_inner_lower")
    column = heatmaps[0, :, :, 28]  # (K, H) along x = 28
    assert column[upper].argmax().item() == 28 and column[lower].argmax().item() == 34


# ---------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------


def face_landmarks(size: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """(batch, 68, 2) landmarks scattered over the middle of a size x size frame."""
    g = torch.Generator().manual_seed(seed)
    return size * (0.25 + 0.5 * torch.rand(batch, 68, 2, generator=g))


@pytest.mark.parametrize(("variant", "predictor_class"),
                         [("optical", FlowMotion), ("keypoint", KeypointMotion)])
def test_build_models_wires_each_variants_motion_predictor_to_the_generator(variant, predictor_class):
    generator, predictor, _ = build_models(variant, 64)
    assert type(predictor) is predictor_class and predictor.variant == variant
    assert (generator.config.motion_type, generator.config.motion_channels) == (
        predictor.motion_type, predictor.motion_channels)
    source, frame = face_landmarks(64, BATCH), face_landmarks(64, BATCH, seed=1)
    motion = predictor.condition(source, frame)
    assert motion.shape == (BATCH, predictor.motion_channels, 64, 64)
    if variant == "optical":  # the flow the photo is warped by: zero when nothing moves
        assert predictor.condition(source, source).abs().max() < 1e-3
    else:  # the frame's own contours, whatever the photo's
        torch.testing.assert_close(motion, landmarks_to_heatmaps(frame, 64))
    audio = {"mel": torch.randn(BATCH, 16, 80), "pitch": torch.zeros(BATCH, 16, dtype=torch.long),
             "energy": torch.zeros(BATCH, 16)}
    assert generator(image(64), motion, **audio).frame.shape == (BATCH, 3, 64, 64)


def test_build_models_refuses_an_unknown_variant_or_resolution():
    with pytest.raises(ValueError, match="variant"):
        build_models("dense", 64)
    with pytest.raises(ValueError, match="no preset"):
        build_models("optical", 96)


@pytest.mark.parametrize("variant", ["optical", "keypoint"])
def test_default_128_frame_costs_at_most_one_and_a_half_gflop(variant):
    """One frame at inference: the motion drawn from the landmarks, then the generator."""
    generator, predictor, _ = build_models(variant, 128)
    source = image(128, batch=1)
    mel, pitch, energy = torch.randn(1, 16, 80), torch.zeros(1, 16, dtype=torch.long), torch.zeros(1, 16)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        motion = predictor.condition(face_landmarks(128), face_landmarks(128, seed=1))
        generator(source, motion, mel, pitch, energy)
    assert counter.get_total_flops() <= 1.5e9


def test_256_preset_builds_a_matching_set():
    generator, predictor, discriminator = build_models("keypoint", 256)
    resolutions = {m.config.resolution for m in (generator, predictor, discriminator)}
    assert resolutions == {256}
    assert generator.config.motion_channels == predictor.motion_channels


@pytest.mark.parametrize("resolution", sorted(PRESETS))
def test_every_preset_builds_networks_at_its_own_resolution(resolution):
    for variant in ("optical", "keypoint"):
        assert {m.config.resolution for m in build_models(variant, resolution)} == {resolution}


# ---------------------------------------------------------------------------------------------
# Learning (slow)
# ---------------------------------------------------------------------------------------------


def synthetic_clip(frames: int = 8, size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """A drawn face whose mouth opening follows a signal, and mel windows carrying the signal.

    Returns frames (N, 3, H, W) in [-1, 1] (frame 0 has the mouth closed) and mel (N, 16, 80).
    """
    opening = torch.tensor([0.0, 0.3, 1.0, 0.6, 0.1, 0.8, 0.4, 0.9])[:frames]
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    u, v = xs / size - 0.5, ys / size - 0.5  # in [-0.5, 0.5), face centred

    def paint(canvas, region, rgb):
        return torch.where(region, torch.tensor(rgb)[:, None, None], canvas)

    face = paint(torch.full((3, size, size), 0.3), (u / 0.32) ** 2 + (v / 0.42) ** 2 < 1, [0.9, 0.7, 0.6])
    face = paint(face, ((u.abs() - 0.13) / 0.05) ** 2 + ((v + 0.1) / 0.03) ** 2 < 1, [0.1, 0.1, 0.1])
    clip = [
        paint(face, (u / 0.12) ** 2 + ((v - 0.2) / (0.01 + 0.07 * a)) ** 2 < 1, [0.5, 0.1, 0.1])
        for a in opening
    ]
    # Louder (higher log-mel) for a wider mouth; silence-like for the closed mouth.
    mel = LOG_MEL_FLOOR + (2 + 10 * opening)[:, None, None] * torch.linspace(1, 0.5, 80)
    return torch.stack(clip) * 2 - 1, mel.expand(-1, 16, -1).clone()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_generator_learns_a_clip_from_audio():
    """The mouth's pixels come from the audio: with no motion at all (a zero flow), the generator
    renders each frame's opening from its mel window. As in training (``lip_mask``), a small term
    keeps the blend mask from settling on the photo around the mouth: by L1 alone it saturates at
    the photo, the easy minimum (the frames then equal the photo's to the last digit), and no
    gradient reaches the rendering again."""
    torch.manual_seed(0)
    generator, _, _ = build_models("optical", 128)
    frames, mel = synthetic_clip()
    n = len(frames)
    source = frames[:1].expand(n, -1, -1, -1)
    still = torch.zeros(n, 2, 128, 128)
    silent = {"pitch": torch.zeros(n, 16, dtype=torch.long), "energy": torch.zeros(n, 16)}
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)

    def lower_half_l1(mel: torch.Tensor, mask_weight: float = 0.0) -> torch.Tensor:
        output = generator(source, still, mel, **silent)
        l1 = (output.frame - frames)[..., 64:, :].abs().mean()
        mouth = output.mask_logits[..., 74:118, 44:84]  # the box every opening lies in
        return l1 + mask_weight * F.softplus(mouth).mean()  # -log(1 - mask) there

    start, initial = time.monotonic(), lower_half_l1(mel).item()
    for _ in range(200):
        optimizer.zero_grad()
        loss = lower_half_l1(mel, mask_weight=0.05)
        loss.backward()
        optimizer.step()
    generator.eval()
    with torch.no_grad():
        final = lower_half_l1(mel).item()
        shuffled = lower_half_l1(mel[torch.tensor([2, 4, 0, 7, 1, 3, 5, 6])]).item()
    copy_the_photo = (source - frames)[..., 64:, :].abs().mean().item()
    assert final < 0.3 * initial, (initial, final)
    assert final < 0.7 * copy_the_photo, (copy_the_photo, final)  # the mouth moves, and right
    assert shuffled > 1.8 * final, (shuffled, final)  # ... because of the audio
    assert time.monotonic() - start < 240
