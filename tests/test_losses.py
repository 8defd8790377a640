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
