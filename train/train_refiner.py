"""Train the mouth refiner: the generator's rendering of the mouth's inside made sharp at 4x
the crop's resolution (talking.training.refiner), and attach it to pipeline folders.

    python train/train_refiner.py --config train/configs/refiner.yaml [--set KEY=VALUE ...]
                                  [--attach checkpoints/man-optical checkpoints/man-keypoint]

Writes under the run's ``output_dir``: ``refiner`` (the best on the val pairs), ``log.jsonl``
and the resolved ``config.yaml``; ``--attach`` then saves that refiner into each pipeline folder.
"""

import argparse
import dataclasses
from pathlib import Path

import yaml

from talking.training.recipe import load_recipe
from talking.training.refiner import RefinerTrainConfig, attach_refiner, train_refiner

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="recipe YAML (train/configs/refiner.yaml)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key (repeatable)")
    parser.add_argument("--attach", nargs="*", default=[], metavar="PIPELINE",
                        help="pipeline folders to save the trained refiner into")
    args = parser.parse_args()
    config = load_recipe(RefinerTrainConfig, args.config, args.sets)
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(config.output_dir) / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config)))
    refiner = train_refiner(config)
    for folder in args.attach:
        attach_refiner(refiner, folder)
