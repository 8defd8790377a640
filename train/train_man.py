"""Stage "man": train the MAN generator against the multiscale CAM discriminator, each frame made
as inference makes it from the motion of its true landmarks (the motion predictor, from
train/train_motion.py through the recipe's init_from, is not trained here), then export a
save_pretrained pipeline folder.

    accelerate launch train/train_man.py --config train/configs/optical_man.yaml [--resume]
    torchrun --nproc_per_node 2 train/train_man.py --config ...      # CPU, gloo
"""

from talking.training.loop import main

if __name__ == "__main__":
    main()
