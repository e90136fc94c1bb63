r"""ResNet on ImageNet with BN, SyncBN, Batch Renorm, GN, LN or IN (the paper's Tables 1-3).

The paper's setting, 8 GPUs x 32 images, GN:

    python -m experiments.imagenet_resnet --norm=gn --images_per_replica=32 \
        --strategy=mirrored --num_gpus=8 --data_dir=gs://BUCKET/tfds --model_dir=/tmp/r50_gn_32

A smoke run on a laptop CPU (synthetic data, tiny ResNet, two logical devices):

    python -m experiments.imagenet_resnet --dataset=synthetic --depth=8 --width=8 --groups=4 \
        --stem=small --image_size=32 --synthetic_classes=10 --synthetic_examples=256 \
        --images_per_replica=8 --epochs=2 --strategy=mirrored --num_gpus=2 --cpu_devices=2 \
        --nojit_compile --model_dir=/tmp/gn_smoke

Restarting a run with the same --model_dir resumes it from its last finished
epoch. The flags are TrainConfig's fields (keras_gn.train.cli); all logic
lives in keras_gn.train.
"""

from absl import app

from keras_gn.train import cli
from keras_gn.train.classification import TrainConfig

cli.define_flags(TrainConfig)
cli.define_runtime_flags()


def main(argv):
    del argv
    from keras_gn.train import train

    config = TrainConfig(**cli.values(TrainConfig))
    train(config, cli.strategy_from_flags())


if __name__ == "__main__":
    app.run(main)
