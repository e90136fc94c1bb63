r"""ResNet-50 I3D on Kinetics-400 with BN or GN (the paper's Table 8).

The paper's rows, 8 GPUs, Kinetics-400 prepared as a TFDS video data set
("video" and "label" features) in $DATA, ImageNet weights from
experiments/imagenet_resnet.py inflated:

    python -m experiments.kinetics_i3d --norm=gn --frames=32 --clips_per_replica=8 \
        --strategy=mirrored --num_gpus=8 --data_dir=$DATA \
        --init_checkpoint=runs/r50_gn_32/model.keras --model_dir=runs/i3d_gn_32x8

A smoke run on a CPU (synthetic clips, tiny I3D, two logical devices):

    python -m experiments.kinetics_i3d --dataset=synthetic --depth=8 --width=8 --groups=4 \
        --frames=4 --image_size=32 --synthetic_classes=5 --synthetic_examples=32 \
        --clips_per_replica=2 --eval_clips=2 --epochs=2 --strategy=mirrored --num_gpus=2 \
        --cpu_devices=2 --nojit_compile --model_dir=/tmp/i3d_smoke

Restarting with the same --model_dir resumes. The flags are VideoConfig's
fields (keras_gn.train.cli); the logic lives in keras_gn.train.video.
"""

from absl import app

from keras_gn.train import cli
from keras_gn.train.video import VideoConfig

cli.define_flags(VideoConfig)
cli.define_runtime_flags()


def main(argv):
    del argv
    from keras_gn.train import train
    from keras_gn.train.video import VideoTask

    config = VideoConfig(**cli.values(VideoConfig))
    train(config, cli.strategy_from_flags(), task=VideoTask())


if __name__ == "__main__":
    app.run(main)
