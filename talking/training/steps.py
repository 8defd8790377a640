"""One optimisation step of each stage, as functions of the models and a batch.

A batch (see :class:`talking.training.batches.TrainingFrames`) holds, for B frames ``t``:
``frame`` (B, 3, H, W) and ``source`` (B, 3, H, W) in [-1, 1]; ``history`` (B, 5, 3, H, W), the
frames t-5..t-1; ``mel`` (B, W, n_mels), ``pitch`` (B, W) int64, ``energy`` (B, W) for frame t and
``history_mel`` / ``history_pitch`` / ``history_energy`` (B, 5, W, ...) for the history frames;
``flow`` (B, 2, H, W), the Farneback flow with ``frame ~ warp(source, flow)``; ``landmarks``
and ``source_landmarks`` (B, 68, 2) where the corpus has them.

Losses are returned as a dict of unweighted scalars plus the weighted ``total``, so logs show what
each term does.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from talking import losses
from talking.composite import opening_weight, rendering_weight
from talking.models import MANGenerator, MultiscaleDiscriminator, landmarks_to_heatmaps, warp
from talking.models.flow import FlowPredictor, FlowPredictorOutput, kl_divergence
from talking.models.keypoints import LIP_CONTOURS
from talking.models.motion import MotionPredictor
from talking.training.config import LossWeights


def true_motion(predictor, batch: dict) -> torch.Tensor:
    """The ground truth of the predictor's output: the Farneback flow (B, 2, H, W), or the
    contour heatmaps (B, K, H, W) drawn from the frame's landmarks."""
    if isinstance(getattr(predictor, "module", predictor), FlowPredictor):  # DDP wraps in .module
        return batch["flow"]
    return landmarks_to_heatmaps(batch["landmarks"], batch["frame"].shape[-1])


def lip_box(batch: dict) -> torch.Tensor | None:
    """(B, 1, H, W) lip box of each target frame, or None where the corpus has no landmarks."""
    return losses.lip_box(batch["landmarks"], *batch["frame"].shape[-2:]) if "landmarks" in batch else None


def predict_motion(predictor, batch: dict, history: torch.Tensor | None = None,
                   box: torch.Tensor | None = None):
    """The predictor's motion for frame t and its truth, (B, C_m, H, W) each, and the predictor's
    own losses (unweighted); the lip terms need ``box`` (:func:`lip_box`)."""
    history = batch["history"] if history is None else history
    output = predictor(batch["source"], history, batch["mel"])
    truth = true_motion(predictor, batch)
    if isinstance(output, FlowPredictorOutput):  # the predictor may be wrapped (DDP)
        warped = warp(batch["source"], output.flow)
        terms = {
            "flow": losses.flow_loss(output.flow, truth),
            "kl": kl_divergence(output.mu, output.logvar),
            "warp": F.l1_loss(warped, batch["frame"]),
        }
        if box is not None:
            terms["lip_flow"] = losses.masked_mean((output.flow - truth).square(), box)
            terms["lip_warp"] = losses.masked_mean((warped - batch["frame"]).abs(), box)
            terms["lip_landmarks"] = losses.lip_landmark_flow_loss(
                output.flow, batch["landmarks"], batch["source_landmarks"])
        return output.flow, truth, terms
    lips = list(LIP_CONTOURS)
    terms = {"heatmap": losses.heatmap_loss(output.heatmaps, truth),
             "lip_heatmap": losses.heatmap_loss(output.heatmaps[:, lips], truth[:, lips])}
    if box is not None:
        terms["lip_landmarks"] = losses.centroid_loss(output.heatmaps[:, lips], truth[:, lips], box)
    return output.heatmaps, truth, terms


def weighted(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Sum of ``terms`` times their weights in ``weights`` (a term without a weight counts 0)."""
    return sum(getattr(weights, name, 0.0) * value for name, value in terms.items())


def motion_step(predictor, batch: dict, weights: LossWeights,
                history: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Stage 1: the predictor alone, against the ground-truth flow or heatmaps."""
    _, _, terms = predict_motion(predictor, batch, history, lip_box(batch))
    return weighted(terms, weights), terms


@torch.no_grad()
def self_fed_history(generator: MANGenerator, predictor, batch: dict) -> torch.Tensor:
    """The model's own renderings of the 5 history frames: (B, 5, 3, H, W).

    Each history frame is rendered from the source and its audio, with a history of the source
    repeated, exactly as the first frames of a clip are rendered at inference.
    """
    b, t = batch["history"].shape[:2]
    source = batch["source"].repeat_interleave(t, dim=0)  # (B*5, 3, H, W)
    mel = batch["history_mel"].flatten(0, 1)  # (B*5, W, n_mels)
    motion = predictor(source, source[:, None].expand(-1, t, -1, -1, -1), mel).to_tuple()[0]
    frames = generator(source, motion, mel, batch["history_pitch"].flatten(0, 1),
                       batch["history_energy"].flatten(0, 1)).frame
    return frames.unflatten(0, (b, t))


def _unwrapped(model):
    return getattr(model, "module", model)  # DDP wraps in .module


def geometry_frame(generator: MANGenerator, predictor: MotionPredictor, batch: dict):
    """Frame t made as at inference from its true landmarks: (generator output, frame (B, 3, H, W),
    the rendering's weight (B, H, W), the mouth opening (B, H, W)).

    The photo moves by the thin-plate flow through the landmarks; the generator's rendering
    enters inside the landmarks' mouth opening (see :mod:`talking.composite`)."""
    source_points, points = batch["source_landmarks"], batch["landmarks"]
    size = batch["frame"].shape[-1]
    flow = predictor.flow(source_points, points, size)
    motion = flow if predictor.motion_type == "flow" else predictor.condition(source_points, points)
    output = generator(batch["source"], motion, batch["mel"], batch["pitch"], batch["energy"])
    opening = torch.from_numpy(
        np.stack([opening_weight(p, size) for p in points.detach().cpu().numpy()])).to(flow)
    mask = output.mask[:, 0] if output.mask is not None else torch.zeros_like(opening)
    weight = rendering_weight(mask, opening)
    moved = warp(batch["source"], flow)
    return output, moved + weight[:, None] * (output.synthesised - moved), weight, opening


def generator_step(
    generator: MANGenerator,
    predictor,
    discriminator: MultiscaleDiscriminator,
    batch: dict,
    weights: LossWeights,
    history: torch.Tensor | None = None,
    given_true_motion: bool = False,
) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """Stage 2, generator side: (weighted total, unweighted terms, generated frames (B, 3, H, W)).

    With a pixel-based predictor (``FlowPredictor``, ``KeypointPredictor``) the predictor trains
    jointly: its own losses are added to the generator's, and with ``given_true_motion`` the
    generator renders from the ground-truth motion instead of the predictor's (teacher forcing).
    With a :class:`MotionPredictor` (trained apart, on the speech alone) the frame is made from
    the true landmarks exactly as inference makes it (:func:`geometry_frame`), and the rendering
    is also held to the real frame inside the mouth opening (``opening_l1``).
    """
    box = lip_box(batch)
    if isinstance(_unwrapped(predictor), MotionPredictor):
        output, fake, _, opening = geometry_frame(generator, _unwrapped(predictor), batch)
        terms = {"opening_l1": losses.masked_mean((output.synthesised - batch["frame"]).abs(),
                                                  opening[:, None])}
    else:
        motion, truth, terms = predict_motion(predictor, batch, history, box)
        output = generator(batch["source"], truth if given_true_motion else motion, batch["mel"],
                           batch["pitch"], batch["energy"])
        fake = output.frame
    if weights.uses_discriminator:
        judged = discriminator(fake, batch["source"])
        with torch.no_grad():
            real = discriminator(batch["frame"], batch["source"])
        terms["adversarial"], terms["cam"] = losses.generator_adversarial_loss(judged)
        terms["feature_matching"] = losses.feature_matching_loss(real, judged)
    terms["mouth_l1"] = losses.lower_half_l1(fake, batch["frame"])
    terms["l1"] = F.l1_loss(fake, batch["frame"])
    if box is not None:
        terms["lip_box_l1"] = losses.masked_mean((fake - batch["frame"]).abs(), box)
        if output.mask_logits is not None:
            # -log(1 - mask): its gradient does not vanish where the mask saturates at 1
            terms["lip_mask"] = losses.masked_mean(F.softplus(output.mask_logits), box)
            # -log(mask) elsewhere: outside the lips the frame is the (warped) photo
            terms["photo_mask"] = losses.masked_mean(F.softplus(-output.mask_logits), 1 - box)
    return weighted(terms, weights), terms, fake


def discriminator_step(
    discriminator: MultiscaleDiscriminator, batch: dict, fake: torch.Tensor, weights: LossWeights
) -> tuple[torch.Tensor, dict]:
    """Stage 2, discriminator side: real and generated frames judged in one batch."""
    source = batch["source"]
    both = discriminator(torch.cat([batch["frame"], fake.detach()]), torch.cat([source, source]))
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
