"""What a training run is: the fields every run has (`RunConfig`: the
network, the data, the schedule, where it runs) and the image-classification
run's (`TrainConfig`: the paper's ImageNet recipe). `keras_gn.train.video`'s
`VideoConfig` adds the clips' fields to the same `RunConfig`. Each field is
also the training binaries' flag of the same name (`keras_gn.config_flags`).
"""

import dataclasses

from keras_gn.config_flags import option
from keras_gn.norms import NORMALIZATIONS

__all__ = ["RunConfig", "TrainConfig", "NORMS", "PRECISIONS"]

NORMS = tuple(NORMALIZATIONS)
PRECISIONS = ("auto", "none", "float16", "bfloat16")


@dataclasses.dataclass
class RunConfig:
    """The fields of every training run, image or video, with the paper's
    ImageNet ResNet-50 recipe (Wu & He 2018, section 4.1) as defaults."""

    norm: str = option("gn", "Normalization: bn, syncbn, frozen_bn, brn, gn, ln, in, none.", choices=NORMS)
    groups: int = option(32, "Groups G for --norm=gn (the paper's best: 32).", minimum=1)
    weight_standardization: bool = option(
        False, "Weight Standardization (Qiao et al. 2019) in every convolution: GN+WS with --norm=gn."
    )
    padding: str = option(
        "symmetric",
        "Strided layers' padding: symmetric (PyTorch's and Caffe2's) or same (TensorFlow's).",
        choices=("symmetric", "same"),
    )
    depth: int = option(50, "ResNet depth: 50, 101 (the paper), 18/34 (basic blocks), or 8/11/14/26/152.")
    width: int = option(64, "Stem and first-stage width (64 in ResNet-50).", minimum=1)
    dataset: str = option("imagenet2012", "TFDS data set, or 'synthetic'.")
    data_dir: "str | None" = option(None, "TFDS data folder (prepared data; nothing is downloaded).")
    image_size: int = option(224, "Training and evaluation crop size, pixels.", minimum=1)
    epochs: int = option(100, "Training epochs.", minimum=1)
    base_learning_rate: float = option(0.1, "Learning rate for a total batch of --base_batch, scaled linearly.")
    base_batch: int = option(256, "The total batch of --base_learning_rate.", minimum=1)
    decay_epochs: tuple = option((30, 60, 90), "Epochs at which the learning rate is divided by 10.", item=float)
    warmup_epochs: float = option(
        0.0, "Epochs of linear warm-up from zero to the peak rate (Goyal et al. 2017; the paper: none).", minimum=0
    )
    momentum: float = option(0.9, "SGD momentum.")
    weight_decay: float = option(1e-4, "Weight decay on all weights, gamma and beta included.", minimum=0)
    steps_per_epoch: "int | None" = option(None, "Default: training examples / global batch.", minimum=1)
    eval_steps: "int | None" = option(None, "Default: the whole evaluation split.", minimum=1)
    synthetic_examples: int = option(1024, "Training examples of --dataset=synthetic.", minimum=1)
    synthetic_classes: int = option(1000, "Classes of --dataset=synthetic.", minimum=2)
    model_dir: str = option(
        "/tmp/keras_gn_imagenet", "Checkpoints, TensorBoard logs, results.json; restart with the same one to resume."
    )
    mixed_precision: str = option("auto", "auto: bfloat16 on TPU, float16 on GPU, none on CPU.", choices=PRECISIONS)
    jit_compile: bool = option(True, "XLA-compile the training step.")
    steps_per_execution: int = option(1, "Training steps per tf.function call (use > 1 on TPU).", minimum=1)
    seed: int = option(0, "Random seed.")
    verbose: int = option(2, "keras.Model.fit's verbosity.", flag=False)


@dataclasses.dataclass
class TrainConfig(RunConfig):
    """An image-classification run: `RunConfig`'s fields and the images'
    own (the stem, the images per replica and their virtual replicas, the
    layout), the paper's ImageNet recipe as defaults."""

    stem: str = option(
        "imagenet",
        "imagenet: 7x7/2 conv + 3x3/2 max pool; small: one 3x3/1 conv; strided: one 3x3/2 conv (small images).",
        choices=("imagenet", "small", "strided"),
    )
    images_per_replica: int = option(
        32, "Images per GPU/TPU core: the paper's 'batch per GPU' (32, 16, 8, 4, 2).", minimum=1
    )
    virtual_replicas: int = option(
        1,
        "Replicas within each device: its batch holds this many replicas of --images_per_replica images, BN's "
        "(and brn's) statistics per replica, as on that many GPUs (8 on one GPU: the paper's 8-GPU statistics).",
        minimum=1,
    )
    data_format: str = option("channels_last", "Image layout.", choices=("channels_last", "channels_first"))
