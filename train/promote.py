"""Promote a finished run's export into the shipped checkpoints, with its model-card inputs.

    python train/promote.py runs/optical_closed --to checkpoints/man-optical [--force]

Copies the run's export (save_pretrained folder and training.yaml) and final.json (steps,
commit) and validation.jsonl; an existing destination is replaced only with --force, keeping
its README.md (the model card, which you then update from those files).
"""

import argparse
import sys

from talking.errors import TalkingError
from talking.training.export import promote

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run folder (runs/<name>)")
    parser.add_argument("--to", required=True, help="destination, e.g. checkpoints/man-optical")
    parser.add_argument("--force", action="store_true", help="replace an existing destination")
    args = parser.parse_args()
    try:
        print(promote(args.run, args.to, args.force))
    except TalkingError as error:
        sys.exit(f"error: {error}")
