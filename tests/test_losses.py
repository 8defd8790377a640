"""Losses with a known answer: the lip box and the means taken inside it."""

import torch

from talking import losses


def test_lip_box_is_the_lips_bounding_box_grown_by_the_margin():
    landmarks = torch.zeros(1, 68, 2)
    landmarks[0, 48:68] = torch.tensor([[20.0, 40.0], [30.0, 44.0]]).repeat(10, 1)  # x 20-30, y 40-44
    box = losses.lip_box(landmarks, 64, 64, margin=0.5)  # grown by 5 px in x, 2 px in y
    ys, xs = torch.nonzero(box[0, 0], as_tuple=True)
    assert (xs.min().item(), xs.max().item(), ys.min().item(), ys.max().item()) == (15, 35, 38, 46)
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
