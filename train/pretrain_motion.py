"""Stage 1: pretrain the optical-flow or keypoint-heatmap predictor (paper 4.3.1-4.3.2).

    accelerate launch train/pretrain_motion.py --config train/configs/optical_motion.yaml [--resume]
"""

from talking.training.loop import main

if __name__ == "__main__":
    main("motion")
