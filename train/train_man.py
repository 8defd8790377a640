"""Stage 2: train the MAN generator jointly with its motion predictor against the multiscale CAM
discriminator, then export a save_pretrained pipeline folder.

    accelerate launch train/train_man.py --config train/configs/optical_man.yaml [--resume]
    torchrun --nproc_per_node 2 train/train_man.py --config ...      # CPU, gloo
"""

from talking.training.loop import main

if __name__ == "__main__":
    main("man")
