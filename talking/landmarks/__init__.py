"""A face-landmark estimator for judging generated frames, trained on the synthetic corpus.

The paper measures LMD and blinks with landmarks from a pretrained face-alignment network; none
can be downloaded here, so the project trains its own small one: :mod:`.estimator` (the network
and :func:`estimate`), :mod:`.frames` (its training samples) and :mod:`.training` (the loop).
"""

from talking.landmarks.estimator import FaceTrack, LandmarkEstimator, LandmarkOutput, estimate
from talking.landmarks.frames import clip_targets
from talking.landmarks.training import LandmarkTrainConfig, train_landmarks, validation_errors

__all__ = ["FaceTrack", "LandmarkEstimator", "LandmarkOutput", "LandmarkTrainConfig", "clip_targets",
           "estimate", "train_landmarks", "validation_errors"]
