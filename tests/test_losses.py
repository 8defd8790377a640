"""Losses with a known answer: the lip box and the means taken inside it, the GAN terms, and
the discriminator's step."""

import pytest
import torch

from talking import losses
from talking.models import MultiscaleDiscriminator
from talking.models.discriminator import DiscriminatorOutput
from talking.training.config import LossWeights
from talking.training.steps import discriminator_step


def test_lip_box_is_the_lips_bounding_box_grown_by_a_quarter_of_its_size():
    landmarks = torch.zeros(1, 68, 2)
    landmarks[0, 48:68] = torch.tensor([[20.0, 40.0], [36.0, 48.0]]).repeat(10, 1)  # x 20-36, y 40-48
    box = losses.lip_box(landmarks, 64, 64)  # grown by 4 px in x, 2 px in y
    ys, xs = torch.nonzero(box[0, 0], as_tuple=True)
    assert (xs.min().item(), xs.max().item(), ys.min().item(), ys.max().item()) == (16, 40, 38, 50)
    assert box.shape == (1, 1, 64, 64)


def test_masked_mean_averages_only_inside_the_mask():
    values = torch.zeros(2, 3, 8, 8)
    values[:, :, :4] = 2.0
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :2] = 1.0
    assert losses.masked_mean(values, mask).item() == 2.0
    mask[:, :, 6:] = 1.0  # half the masked pixels now read 0
    assert losses.masked_mean(values, mask).item() == 1.0
    assert losses.masked_mean(values, torch.zeros_like(mask)).item() == 0.0


def _mouth(opening: float) -> torch.Tensor:
    """(1, 68, 2) landmarks: lips around (32, 40), the lower lip ``opening`` px below the upper."""
    landmarks = torch.full((1, 68, 2), 20.0)
    x = torch.linspace(24.0, 40.0, 10)
    landmarks[0, 48:58] = torch.stack([x, torch.full_like(x, 38.0)], -1)  # outer lips, upper
    landmarks[0, 58:68] = torch.stack([x, torch.full_like(x, 38.0 + opening)], -1)  # lower
    return landmarks


def test_lip_landmark_flow_is_zero_for_the_flow_that_moves_the_source_lips_onto_the_frames():
    from talking.models import warp

    frame_marks = _mouth(2.0).round()
    source_marks = frame_marks + torch.tensor([3.0, -2.0])
    flow = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 64, 64).contiguous()
    assert losses.lip_landmark_flow_loss(flow, frame_marks, source_marks).item() < 1e-5
    # ... the flow that warps a dot at a source lip point onto the same point of the frame
    source = torch.zeros(1, 1, 64, 64)
    sx, sy = source_marks[0, 50].long().tolist()
    source[0, 0, sy, sx] = 1.0
    fx, fy = frame_marks[0, 50].long().tolist()
    assert warp(source, flow)[0, 0, fy, fx].item() == 1.0
    off = losses.lip_landmark_flow_loss(flow + 1.0, frame_marks, source_marks).item()
    assert abs(off - 1.0) < 1e-4  # 1 px off on both axes


def test_centroid_loss_measures_where_the_lip_contours_are_drawn():
    from talking.models import landmarks_to_heatmaps
    from talking.models.keypoints import LIP_CONTOURS

    lips = list(LIP_CONTOURS)
    closed, open_ = (landmarks_to_heatmaps(_mouth(d), 64)[:, lips] for d in (0.0, 4.0))
    box = losses.lip_box(_mouth(4.0), 64, 64)
    assert losses.centroid_loss(open_, open_, box).item() < 1e-4
    # the contours of the lower lip sit 4 px lower; x is unchanged
    assert losses.centroid_loss(closed, open_, box).item() > 0.5
    # a smeared band halfway between closed and open is half as far off as the closed mouth
    band = (closed + open_) / 2
    far, half = losses.centroid_loss(closed, open_, box), losses.centroid_loss(band, open_, box)
    assert abs(half.item() - far.item() / 2) < 0.1 * far.item()
    band.requires_grad_(True)
    losses.centroid_loss(band, open_, box).backward()
    assert band.grad.abs().sum() > 0


def _judged(patch: list[float], cam: list[float], features: list[list[float]]) -> DiscriminatorOutput:
    """A discriminator output of one frame: per scale, constant patch logits, CAM logits (1, 2)
    and feature maps of constant values."""
    return DiscriminatorOutput(
        features=[[torch.full((1, 2, 4, 4), value) for value in scale] for scale in features],
        logits=[torch.full((1, 1, 4, 4), value) for value in patch],
        cam_logits=[torch.full((1, 2), value) for value in cam])


def test_lsgan_loss_is_the_squared_distance_to_the_label():
    logits = torch.tensor([0.0, 1.0, 3.0])
    assert losses.lsgan_loss(logits, real=True).item() == pytest.approx((1 + 0 + 4) / 3)
    assert losses.lsgan_loss(logits, real=False).item() == pytest.approx((0 + 1 + 9) / 3)


def test_discriminator_loss_sums_real_and_fake_terms_over_scales():
    """Real frames judged 1 and generated ones 0 cost nothing; each miss costs its square at
    every scale, patch and CAM logits apart."""
    flat = [[0.0]] * 2
    perfect = losses.discriminator_loss(_judged([1, 1], [1, 1], flat), _judged([0, 0], [0, 0], flat))
    assert [t.item() for t in perfect] == [0.0, 0.0]
    real, fake = _judged([0.5, 1.0], [1.0, 0.0], flat), _judged([0.0, 2.0], [0.5, 0.0], flat)
    adversarial, cam = losses.discriminator_loss(real, fake)
    assert adversarial.item() == pytest.approx(0.25 + 4.0)
    assert cam.item() == pytest.approx(0.25 + 1.0)


def test_generator_adversarial_loss_wants_its_frames_judged_real():
    adversarial, cam = losses.generator_adversarial_loss(_judged([1.0, 0.0, 3.0], [0.0, 1.0, 1.0], [[0]] * 3))
    assert adversarial.item() == pytest.approx(0 + 1 + 4)
    assert cam.item() == pytest.approx(1 + 0 + 0)


def test_feature_matching_averages_layers_sums_scales_and_pulls_only_the_generated_features():
    real = _judged([0, 0], [0, 0], [[1.0, 1.0], [0.0, 0.0]])
    fake = _judged([0, 0], [0, 0], [[1.0, 3.0], [0.5, 0.5]])
    for scale in real.features + fake.features:
        for f in scale:
            f.requires_grad_(True)
    loss = losses.feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx((0 + 2) / 2 + (0.5 + 0.5) / 2)
    loss.backward()
    assert all(f.grad is None for scale in real.features for f in scale)
    assert fake.features[0][1].grad.sum().item() == pytest.approx(1 / 2)  # d|3 - 1| / 2 layers
    assert losses.feature_matching_loss(real, real).item() == 0.0


def test_discriminator_step_judges_real_and_generated_frames_as_two_separate_passes_would():
    """One pass over the doubled batch gives the loss of separate passes over real and
    generated frames, and no gradient reaches the generator through the generated frames."""
    torch.manual_seed(0)
    discriminator = MultiscaleDiscriminator(resolution=32, num_scales=2, channels=(8, 16),
                                            spectral_norm=False)
    batch = {"frame": torch.rand(2, 3, 32, 32) * 2 - 1, "source": torch.rand(2, 3, 32, 32) * 2 - 1}
    fake = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    weights = LossWeights(adversarial=1.0, cam=0.5)
    total, terms = discriminator_step(discriminator, batch, fake, weights)
    with torch.no_grad():
        expected = losses.discriminator_loss(discriminator(batch["frame"], batch["source"]),
                                             discriminator(fake, batch["source"]))
    torch.testing.assert_close(terms["d_adversarial"], expected[0])
    torch.testing.assert_close(terms["d_cam"], expected[1])
    torch.testing.assert_close(total, expected[0] + 0.5 * expected[1])
    total.backward()
    assert fake.grad is None
    assert all(p.grad is not None for p in discriminator.parameters())
