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
