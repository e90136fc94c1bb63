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

Restarting with the same --model_dir resumes. The logic lives in keras_gn.train.video.
"""

from absl import app, flags

from experiments import common
from keras_gn.train.video import VideoConfig

DEFAULT = VideoConfig()
FLAGS = flags.FLAGS
common.define_flags(DEFAULT)
flags.DEFINE_integer("frames", DEFAULT.frames, "Frames per clip (the paper: 32 or 64).")
flags.DEFINE_integer("sample_rate", DEFAULT.sample_rate, "Stride between the sampled frames.")
flags.DEFINE_integer("clips_per_replica", DEFAULT.clips_per_replica, "Clips per GPU (the paper: 8 or 4).")
flags.DEFINE_integer("eval_clips", DEFAULT.eval_clips, "Clips per video at test time (10-clip testing).")
flags.DEFINE_string("init_checkpoint", "", "A 2-D model.keras from experiments/imagenet_resnet.py to inflate.")


def main(argv):
    del argv
    from keras_gn.train import train
    from keras_gn.train.video import VideoTask

    strategy, precision = common.start()
    config = VideoConfig(
        **common.common_config(),
        mixed_precision=precision,
        frames=FLAGS.frames,
        sample_rate=FLAGS.sample_rate,
        clips_per_replica=FLAGS.clips_per_replica,
        eval_clips=FLAGS.eval_clips,
        init_checkpoint=FLAGS.init_checkpoint,
    )
    train(config, strategy, task=VideoTask())


if __name__ == "__main__":
    app.run(main)
