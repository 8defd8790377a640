"""Train the landmark estimator that evaluation reads generated frames with (talking/landmarks/).

    python train/train_landmarks.py --config train/configs/landmarks.yaml [--set KEY=VALUE ...]

Writes runs/landmarks/export (a save_pretrained folder and validation.json, its errors on the
corpus's val split); ship it with train/promote.py runs/landmarks --to checkpoints/landmarks.
"""

import argparse
import json

from talking.landmarks import LandmarkTrainConfig, train_landmarks
from talking.training.recipe import load_recipe

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the run's YAML (train/configs/landmarks.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set steps=100 (repeatable)")
    args = parser.parse_args()
    print(json.dumps(train_landmarks(load_recipe(LandmarkTrainConfig, args.config, args.set)), indent=2))
