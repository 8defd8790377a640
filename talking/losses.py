"""The paper's training losses (section 5, 7.1.4), as pure functions of network outputs.

Discriminator outputs are :class:`~talking.models.discriminator.DiscriminatorOutput`: per scale,
``features`` (list of (B, C_l, h_l, w_l)), ``logits`` (B, 1, h, w) patch logits and ``cam_logits``
(B, 2) class-activation-map logits. Adversarial terms use the least-squares GAN objective of
Pix2PixHD, applied to the patch logits (Eq. 10) and to the CAM logits (Eq. 9, 14) at every scale.
The flow predictor's KL term is :func:`talking.models.flow.kl_divergence`.

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


def sample_at(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``maps`` (B, C, H, W) read bilinearly at ``points`` (B, P, 2), (x, y) in pixels with pixel
    centres at integer coordinates -> (B, P, C)."""
    height, width = maps.shape[-2:]
    grid = torch.stack([(2 * points[..., 0] + 1) / width - 1, (2 * points[..., 1] + 1) / height - 1], -1)
    return F.grid_sample(maps, grid[:, :, None], mode="bilinear", padding_mode="border",
                         align_corners=False)[..., 0].transpose(1, 2)


def lip_landmark_flow_loss(flow: torch.Tensor, landmarks: torch.Tensor,
                           source_landmarks: torch.Tensor) -> torch.Tensor:
    """L1, in pixels, of a backward flow (B, 2, H, W) at the frame's lip landmarks (B, 68, 2)
    against where those lip points are in the source (``source_landmarks``, (B, 68, 2)).

    The flow that makes ``frame ~ warp(source, flow)`` carries each pixel of the frame to its
    place in the source, so at a lip landmark it must be the landmark's displacement. Unlike the
    MSE to the Farneback flow (dense, but smeared where the mouth opens and teeth appear), this
    target is exact, and L1 makes the prediction commit to one opening rather than the mean."""
    lips = ibug.LIPS
    return (sample_at(flow, landmarks[:, lips]) - (source_landmarks - landmarks)[:, lips]).abs().mean()


def contour_centroids(heatmaps: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """(B, K, 2) centroid (x, y) in pixels of each heatmap (B, K, H, W), its negative part
    dropped, inside ``box`` (B, 1, H, W)."""
    height, width = heatmaps.shape[-2:]
    weights = heatmaps.clamp_min(0) * box
    mass = weights.sum((-2, -1)).clamp_min(1e-6)  # (B, K)
    ys = torch.arange(height, device=heatmaps.device, dtype=heatmaps.dtype)
    xs = torch.arange(width, device=heatmaps.device, dtype=heatmaps.dtype)
    x = (weights.sum(-2) * xs).sum(-1) / mass
    y = (weights.sum(-1) * ys).sum(-1) / mass
    return torch.stack([x, y], dim=-1)


def centroid_loss(predicted: torch.Tensor, target: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """L1, in pixels, between the centroids of predicted and true contour heatmaps (B, K, H, W)
    inside ``box`` (B, 1, H, W).

    Heatmap MSE, when the contour's place is uncertain, is lowest for a smeared band at the mean
    place: the lips then barely open. The centroid of the band is where the contour is drawn, so
    this term moves it to the true place (the median, under L1) whatever the band's width."""
    return (contour_centroids(predicted, box) - contour_centroids(target, box)).abs().mean()


def flow_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE of a predicted flow (B, 2, H, W) against the Farneback flow (paper 5.6)."""
    return F.mse_loss(predicted, target)


def heatmap_loss(predicted: torch.Tensor, target: torch.Tensor, foreground: float = 20.0) -> torch.Tensor:
    """Foreground-weighted MSE of predicted keypoint heatmaps (B, K, h, w) against the ground
    truth, resized to match.

    Contour heatmaps are thin: plain MSE is minimised early by predicting zeros everywhere (about
    0.005 at 128x128) and stays there. Weighting each pixel by ``1 + foreground * target`` makes
    missing a contour cost ``foreground`` times more than a stray response next to it.
    """
    if target.shape[-2:] != predicted.shape[-2:]:
        target = F.interpolate(target, size=predicted.shape[-2:], mode="bilinear", align_corners=False)
    return ((predicted - target).square() * (1 + foreground * target)).mean()
