"""A photo whose mouth is open, closed once per clip at its own resolution.

Every frame is the photo moved by a smooth flow (:mod:`talking.composite`). A smooth flow cannot
close an open mouth: where the lips must meet, the pixels between them (teeth, the dark inside)
can only be squeezed into a thin band, never hidden, and the lips of an open smile stopped half
way (a corpus face opened to ``jaw_open`` 0.6 and told to close still read 0.04-0.07 of lip gap
to MediaPipe, its closed self 0.02). So the mouth is closed once, before any frame is made:

1. the photo's landmarks are moved to its closed mouth (the motion predictor's basis, with the
   opening read off the photo subtracted) and each facing pair of inner-lip points is put at
   their middle: the line where the lips meet;
2. two thin-plate fields are solved: the *upper* one takes the upper inner lip onto that line
   (and knows nothing of the lower inner lip), the *lower* one the lower inner lip;
3. at the photo's resolution, above the contact line the upper field moves the pixels, below it
   the lower one; the step between them is sharp along the lips (the fold that hides the teeth)
   and widens into a smooth blend beyond the mouth's corners, where both fields nearly agree.

The closed photo, its crop and its closed landmarks then stand in for the photo: in silence and
on /p b m/ its lips meet, and the generator renders the inside of the mouth only where the
predicted motion opens it (as for a photo taken with the mouth closed).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from talking.composite import Compositor
from talking.face import AlignedFace, warp_to_crop
from talking.models.motion import INNER_LIP_LOWER, INNER_LIP_UPPER, MotionPredictor
from talking.models.thin_plate import thin_plate_flow

MOUTH_CORNERS = (60, 64)  # iBUG-68 inner-lip corners, where the contact line ends
CONTACT_SHARPNESS = 0.1  # crop pixels: the width of the step between the fields along the lips
CORNER_SPREAD = 0.5  # beyond a corner the step widens by this many crop pixels per pixel
PRESS = 1.0  # crop pixels: each lip's inner edge goes this far past the contact line
# A photo whose opening reads below this much jaw_open is left as it is: MediaPipe reads closed
# corpus lips as up to 0.17 (and their mouths as open 0.24-0.74 at a true jaw_open of 0.6)
OPEN_ABOVE = 0.2


def close_mouth(photo: np.ndarray, face: AlignedFace,
                predictor: MotionPredictor) -> tuple[np.ndarray, AlignedFace]:
    """(photo (H, W, 3) uint8, its aligned face) with the mouth closed; both unchanged when the
    photo's mouth is closed already (its opening reads below :data:`OPEN_ABOVE`)."""
    resolution = face.crop.shape[0]
    source = torch.from_numpy(face.landmarks).float()[None]  # (1, 68, 2) crop pixels
    with torch.no_grad():
        state = predictor.source_parameters(source)  # (1, P)
        if float(state[0, 0]) < OPEN_ABOVE:
            return photo, face
        target = predictor.landmarks(torch.zeros_like(state), source, state)  # (1, 68, 2)
    contact = (target[:, INNER_LIP_UPPER] + target[:, INNER_LIP_LOWER]) / 2  # (1, 3, 2)
    target[:, INNER_LIP_UPPER] = contact
    target[:, INNER_LIP_LOWER] = contact
    # 2. one field per lip, each without the other lip's inner points; each lip's edge is taken
    #    PRESS past the line, so that what meets there is lip, not the rim of the teeth
    fields = []
    for lip, other, side in ((INNER_LIP_UPPER, INNER_LIP_LOWER, 1.0),
                             (INNER_LIP_LOWER, INNER_LIP_UPPER, -1.0)):
        keep = [k for k in range(source.shape[1]) if k not in other]
        pressed = target.clone()
        pressed[:, lip, 1] += side * PRESS
        fields.append(thin_plate_flow(source[:, keep], pressed[:, keep], resolution, stride=1)[0].numpy())
    # 3. at the photo's resolution: the upper field above the contact line, the lower below
    compositor = Compositor(photo, face.matrix, resolution)
    below = _below_contact(compositor, face.matrix, target[0].numpy())  # (h, w) in [0, 1]
    (upper_x, upper_y), (lower_x, lower_y) = (compositor.photo_flow(field) for field in fields)
    closed = compositor.paste(compositor.warp(upper_x + below * (lower_x - upper_x),
                                              upper_y + below * (lower_y - upper_y)))
    landmarks = target[0].numpy().astype(np.float32)
    return closed, dataclasses.replace(face, crop=warp_to_crop(closed, face.matrix, resolution),
                                       landmarks=landmarks)


def _below_contact(compositor: Compositor, matrix: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(h, w) float32 over the compositor's box: 1 below the lips' contact line (through the
    inner-lip corners and the met inner-lip points of ``landmarks`` (68, 2), crop pixels), 0
    above; a sharp step between the corners, widening beyond them."""
    x, y = compositor.grid  # photo pixels of the box
    crop_x = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    crop_y = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    line = landmarks[[MOUTH_CORNERS[0], *INNER_LIP_UPPER, MOUTH_CORNERS[1]]]
    line = line[np.argsort(line[:, 0])]
    line_y = np.interp(crop_x, line[:, 0], line[:, 1])  # flat beyond the corners
    beyond = np.maximum(np.maximum(line[0, 0] - crop_x, crop_x - line[-1, 0]), 0)
    width = CONTACT_SHARPNESS + CORNER_SPREAD * beyond
    return (1 / (1 + np.exp(-(crop_y - line_y) / width))).astype(np.float32)
