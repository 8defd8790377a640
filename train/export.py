"""Export a run's checkpoint as a save_pretrained pipeline folder.

    python train/export.py --run runs/optical_man [--checkpoint runs/optical_man/checkpoints/step-1000]
                           [--out DIR]

The default output is the run's own export folder; to ship it, use train/promote.py.
"""

import argparse

from talking.training.export import export_checkpoint

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the run folder (runs/<name>)")
    parser.add_argument("--checkpoint", help="a step-N folder of the run (default: the newest)")
    parser.add_argument("--out", help="folder to write (default: the run's export folder)")
    args = parser.parse_args()
    print(export_checkpoint(args.run, args.checkpoint, args.out))
