r"""keras-gn-imagenet: ResNet on ImageNet with BN, SyncBN, Batch Renorm, GN, LN
or IN (the paper's Tables 1-3).

The paper's setting, 8 GPUs x 32 images, GN:

    keras-gn-imagenet --norm=gn --images_per_replica=32 --strategy=mirrored --num_gpus=8 \
        --data_dir=gs://BUCKET/tfds --model_dir=runs/r50_gn_32

A smoke run on a laptop CPU (synthetic data, tiny ResNet, two logical devices):

    keras-gn-imagenet --dataset=synthetic --depth=8 --width=8 --groups=4 --stem=small \
        --image_size=32 --synthetic_classes=10 --synthetic_examples=256 --images_per_replica=8 \
        --epochs=2 --strategy=mirrored --num_gpus=2 --cpu_devices=2 --nojit_compile \
        --model_dir=/tmp/gn_smoke

Two machines (or two processes), MultiWorkerMirroredStrategy: the same
command on each with --strategy=multi_worker_mirrored, TF_CONFIG naming the
cluster and this worker, and a --model_dir both can read (the chief writes).

A --model_dir holds one run: a second run into it stops; a killed run started
again resumes from its last finished epoch; a finished one is kept
(--overwrite starts afresh). The flags are TrainConfig's fields
(keras_gn.train.cli); the logic lives in keras_gn.train.
"""

from keras_gn.apps import training
from keras_gn.train import ImageTask, TrainConfig

main = training.binary(TrainConfig, ImageTask(), name="keras-gn-imagenet", doc=__doc__)

if __name__ == "__main__":
    main()
