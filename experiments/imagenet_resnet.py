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
epoch. All logic lives in keras_gn.train; this file only parses flags.
"""

from absl import app, flags

from experiments import common
from keras_gn.train.classification import TrainConfig

DEFAULT = TrainConfig()
FLAGS = flags.FLAGS
common.define_flags(DEFAULT)
flags.DEFINE_enum("stem", DEFAULT.stem, ["imagenet", "small"], "7x7/2 + max pool, or one 3x3/1 conv for small images.")
flags.DEFINE_integer("images_per_replica", DEFAULT.images_per_replica, "Images per GPU/TPU core: the paper's 'batch per GPU' (32, 16, 8, 4, 2).")
flags.DEFINE_enum("data_format", DEFAULT.data_format, ["channels_last", "channels_first"], "Image layout.")


def main(argv):
    del argv
    from keras_gn.train import train

    strategy, precision = common.start()
    config = TrainConfig(
        **common.common_config(),
        mixed_precision=precision,
        stem=FLAGS.stem,
        images_per_replica=FLAGS.images_per_replica,
        data_format=FLAGS.data_format,
    )
    train(config, strategy)


if __name__ == "__main__":
    app.run(main)
