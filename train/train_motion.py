"""Train the motion predictor: speech -> mouth parameters (talking.training.motion).

    python train/train_motion.py --config train/configs/motion.yaml [--set KEY=VALUE ...]

Writes only under the run's ``output_dir``: ``optical/motion_predictor`` and
``keypoint/motion_predictor`` (the best predictor on the val split, as each variant's class; a
stage-"man" recipe's ``init_from``), ``log.jsonl`` and the resolved ``config.yaml``.
"""

import argparse
import dataclasses
from pathlib import Path

import yaml

from talking.training.motion import MotionTrainConfig, train_motion
from talking.training.recipe import load_recipe

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="recipe YAML (train/configs/motion.yaml)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key (repeatable)")
    args = parser.parse_args()
    config = load_recipe(MotionTrainConfig, args.config, args.sets)
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(config.output_dir) / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config)))
    train_motion(config)
