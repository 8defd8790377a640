"""Train the landmark estimator that evaluation reads generated frames with (talking/landmarks.py).

    python train/train_landmarks.py --config train/configs/landmarks.yaml

Writes a save_pretrained folder (config.json, safetensors) and validation.json, its errors on the
corpus's val split.
"""

import argparse
import json
from pathlib import Path

import yaml

from talking.landmarks import LandmarkTrainConfig, train_landmarks

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the run's YAML (train/configs/landmarks.yaml)")
    args = parser.parse_args()
    config = LandmarkTrainConfig(**(yaml.safe_load(Path(args.config).read_text()) or {}))
    print(json.dumps(train_landmarks(config), indent=2))
