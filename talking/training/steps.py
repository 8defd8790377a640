"""One optimisation step of stage "man", as functions of the models and a batch.

A batch (see :class:`talking.training.batches.TrainingFrames`) holds, for B frames ``t``:
``frame`` (B, 3, H, W) and ``source`` (B, 3, H, W) in [-1, 1]; ``mel`` (B, W, n_mels), ``pitch``
(B, W) int64 and ``energy`` (B, W), the audio windows of frame t; ``landmarks`` and
``source_landmarks`` (B, 68, 2) in pixels, the frame's and the source's.

Losses are returned as a dict of unweighted scalars plus the weighted ``total``, so logs show what
each term does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from talking import ibug, losses
from talking.composite import compose_crop, mouth_openings
from talking.models import MANGenerator, MultiscaleDiscriminator
from talking.models.motion import MotionPredictor
from talking.training.config import LossWeights


def lip_box(batch: dict) -> torch.Tensor:
    """(B, 1, H, W) lip box of each target frame."""
    return losses.lip_box(batch["landmarks"], *batch["frame"].shape[-2:])


def mouth_windows(images: torch.Tensor, landmarks: torch.Tensor, window: int | None) -> torch.Tensor:
    """What the discriminator sees of ``images`` (B, 3, H, W): the square of ``window`` pixels
    centred on each frame's inner lips (``landmarks`` (B, 68, 2) in pixels), resampled bilinearly
    to (B, 3, H, W), differentiably; the images themselves when ``window`` is None."""
    if window is None:
        return images
    b, _, h, w = images.shape
    centre = landmarks[:, ibug.INNER_LIPS].mean(dim=1).to(images.dtype)  # (B, 2) x, y in pixels
    theta = images.new_zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = window / w, window / h
    theta[:, 0, 2] = (2 * centre[:, 0] + 1) / w - 1  # pixel centres, align_corners=False
    theta[:, 1, 2] = (2 * centre[:, 1] + 1) / h - 1
    grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def weighted(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Sum of ``terms`` times their weights in ``weights`` (a term without a weight counts 0)."""
    return sum(getattr(weights, name, 0.0) * value for name, value in terms.items())


def geometry_frame(generator: MANGenerator, predictor: MotionPredictor, batch: dict):
    """Frame t made as at inference from its true landmarks: (generator output, frame (B, 3, H, W),
    the rendering's weight (B, H, W), the mouth opening (B, H, W)), by
    :func:`talking.composite.compose_crop`."""
    flow, motion = predictor.drive(batch["source_landmarks"], batch["landmarks"])
    output = generator(batch["source"], motion, batch["mel"], batch["pitch"], batch["energy"])
    opening = mouth_openings(batch["landmarks"], batch["source"].shape[-1])
    frame, weight = compose_crop(batch["source"], flow, output.synthesised, output.mask, opening)
    return output, frame, weight, opening


def generator_step(
    generator: MANGenerator,
    predictor: MotionPredictor,
    discriminator: MultiscaleDiscriminator,
    batch: dict,
    weights: LossWeights,
    window: int | None = None,
) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """Generator side: (weighted total, unweighted terms, generated frames (B, 3, H, W)).

    The frame is made from the true landmarks exactly as inference makes it (:func:`geometry_frame`);
    the motion predictor (trained apart, on the speech alone) only draws the motion, and the
    rendering is also held to the real frame inside the mouth opening (``opening_l1``). The
    discriminator judges whole frames, or with ``window`` the :func:`mouth_windows` around the
    lips.
    """
    box = lip_box(batch)
    output, fake, _, opening = geometry_frame(generator, predictor, batch)
    terms = {"opening_l1": losses.masked_mean((output.synthesised - batch["frame"]).abs(), opening[:, None])}
    if weights.uses_discriminator:
        landmarks = batch["landmarks"]
        source = mouth_windows(batch["source"], landmarks, window)
        judged = discriminator(mouth_windows(fake, landmarks, window), source)
        with torch.no_grad():
            real = discriminator(mouth_windows(batch["frame"], landmarks, window), source)
        terms["adversarial"], terms["cam"] = losses.generator_adversarial_loss(judged)
        terms["feature_matching"] = losses.feature_matching_loss(real, judged)
    terms["mouth_l1"] = losses.lower_half_l1(fake, batch["frame"])
    terms["l1"] = F.l1_loss(fake, batch["frame"])
    terms["lip_box_l1"] = losses.masked_mean((fake - batch["frame"]).abs(), box)
    if output.mask_logits is not None:
        # -log(1 - mask): its gradient does not vanish where the mask saturates at 1
        terms["lip_mask"] = losses.masked_mean(F.softplus(output.mask_logits), box)
        # -log(mask) elsewhere: outside the lips the frame is the (warped) photo
        terms["photo_mask"] = losses.masked_mean(F.softplus(-output.mask_logits), 1 - box)
    return weighted(terms, weights), terms, fake


def discriminator_step(
    discriminator: MultiscaleDiscriminator, batch: dict, fake: torch.Tensor, weights: LossWeights,
    window: int | None = None,
) -> tuple[torch.Tensor, dict]:
    """Discriminator side: real and generated frames (or their ``window``, as the generator's side
    shows them) judged in one batch."""
    source = batch["source"]
    frames, sources = torch.cat([batch["frame"], fake.detach()]), torch.cat([source, source])
    if window is not None:
        landmarks = batch["landmarks"].repeat(2, 1, 1)
        frames, sources = mouth_windows(frames, landmarks, window), mouth_windows(sources, landmarks, window)
    both = discriminator(frames, sources)
    real, generated = (_split(both, len(fake), part) for part in (0, 1))
    adversarial, cam = losses.discriminator_loss(real, generated)
    terms = {"d_adversarial": adversarial, "d_cam": cam}
    return weights.adversarial * adversarial + weights.cam * cam, terms


def _split(output, size: int, part: int):
    """The ``part``-th half of a discriminator output computed on a doubled batch."""
    pick = slice(part * size, (part + 1) * size)
    return type(output)(
        features=[[f[pick] for f in scale] for scale in output.features],
        logits=[x[pick] for x in output.logits],
        cam_logits=[x[pick] for x in output.cam_logits],
    )
