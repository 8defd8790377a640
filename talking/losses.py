"""The paper's training losses (section 5, 7.1.4), as pure functions of network outputs.

Discriminator outputs are :class:`~talking.models.discriminator.DiscriminatorOutput`: per scale,
``features`` (list of (B, C_l, h_l, w_l)), ``logits`` (B, 1, h, w) patch logits and ``cam_logits``
(B, 2) class-activation-map logits. Adversarial terms use the least-squares GAN objective of
Pix2PixHD, applied to the patch logits (Eq. 10) and to the CAM logits (Eq. 9, 14) at every scale.

Perceptual loss: the paper uses VGG19 and VGGFace features; no such pretrained weights can be had
here, so the discriminator's own multi-scale features stand in for them through feature matching
(Eq. 12), as in Pix2PixHD when no VGG is available.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from talking import ibug
from talking.models.discriminator import DiscriminatorOutput


def lsgan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss of logits against the label 1 (real) or 0 (fake)."""
    return ((logits - (1.0 if real else 0.0)) ** 2).mean()


def discriminator_loss(
    real: DiscriminatorOutput, fake: DiscriminatorOutput
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial and CAM-adversarial loss of the discriminator, summed over scales."""
    adversarial = sum(lsgan_loss(r, True) + lsgan_loss(f, False)
                      for r, f in zip(real.logits, fake.logits, strict=True))
    cam = sum(lsgan_loss(r, True) + lsgan_loss(f, False)
              for r, f in zip(real.cam_logits, fake.cam_logits, strict=True))
    return adversarial, cam


def generator_adversarial_loss(fake: DiscriminatorOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial and CAM-adversarial loss of the generator (wants 'real'), summed over scales."""
    return (sum(lsgan_loss(f, True) for f in fake.logits),
            sum(lsgan_loss(f, True) for f in fake.cam_logits))


def feature_matching_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> torch.Tensor:
    """Eq. 12: L1 between discriminator features of real and generated frames, averaged over
    layers and summed over scales. The real features are treated as constants."""
    total = 0.0
    for real_layers, fake_layers in zip(real.features, fake.features, strict=True):
        pairs = list(zip(real_layers, fake_layers, strict=True))
        total = total + sum(F.l1_loss(f, r.detach()) for r, f in pairs) / len(pairs)
    return total


def lower_half_l1(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 11: L1 on the lower half of the frame (the mouth region of an aligned face).

    generated, target: (B, 3, H, W) in [-1, 1].
    """
    half = generated.shape[-2] // 2
    return F.l1_loss(generated[..., half:, :], target[..., half:, :])


def lip_box(landmarks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 1, H, W) mask of each frame's lip box (:func:`talking.ibug.lip_box_bounds`).
    landmarks: (B, 68, 2) in pixels.

    Our addition to Eq. 11: the lower half of a 128 x 128 face crop is 8192 pixels, of which the
    lips cover about 300, so a mouth that does not move costs little there; losses inside this
    box measure the lips alone."""
    lips = landmarks[:, ibug.LIPS]  # (B, 20, 2)
    low, high = ibug.lip_box_bounds(lips.amin(dim=1), lips.amax(dim=1))  # (B, 2) each
    ys = torch.arange(height, device=landmarks.device, dtype=landmarks.dtype)
    xs = torch.arange(width, device=landmarks.device, dtype=landmarks.dtype)
    inside_x = (xs[None] >= low[:, :1]) & (xs[None] <= high[:, :1])  # (B, W)
    inside_y = (ys[None] >= low[:, 1:]) & (ys[None] <= high[:, 1:])  # (B, H)
    return (inside_y[:, None, :, None] & inside_x[:, None, None, :]).float()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (B, C, H, W) over the pixels where ``mask`` (B, 1, H, W) is 1."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / (mask.sum() * values.shape[1]).clamp_min(1)
