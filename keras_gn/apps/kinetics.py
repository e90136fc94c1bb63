r"""keras-gn-kinetics: ResNet-50 I3D on Kinetics-400 with BN or GN (the paper's
Table 8).

The paper's rows, 8 GPUs, Kinetics-400 prepared as a TFDS video data set
("video" and "label" features) in $DATA, ImageNet weights from
keras-gn-imagenet inflated:

    keras-gn-kinetics --norm=gn --frames=32 --clips_per_replica=8 --strategy=mirrored --num_gpus=8 \
        --data_dir=$DATA --init_checkpoint=runs/r50_gn_32/model.keras --model_dir=runs/i3d_gn_32x8

A smoke run on a CPU (synthetic clips, tiny I3D, two logical devices):

    keras-gn-kinetics --dataset=synthetic --depth=8 --width=8 --groups=4 --frames=4 --image_size=32 \
        --synthetic_classes=5 --synthetic_examples=32 --clips_per_replica=2 --eval_clips=2 --epochs=2 \
        --strategy=mirrored --num_gpus=2 --cpu_devices=2 --nojit_compile --model_dir=/tmp/i3d_smoke

A --model_dir holds one run: a killed run resumes, a finished one is kept
(--overwrite starts afresh). The flags are VideoConfig's fields
(keras_gn.train.cli); the logic lives in keras_gn.train.video.
"""

from keras_gn.apps import training
from keras_gn.train.video import VideoConfig, VideoTask

main = training.binary(VideoConfig, VideoTask(), name="keras-gn-kinetics", doc=__doc__)

if __name__ == "__main__":
    main()
