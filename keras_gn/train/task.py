"""What a trainer trains: `ImageTask` gives `keras_gn.train.train` the data
(TFDS images or synthetic ones), the ResNet and the final evaluation of an
image-classification run; `keras_gn.train.video.VideoTask` does the same for
clips."""

import warnings

from keras_gn import data
from keras_gn.models import resnet
from keras_gn.models.resnet import STAGE_SIZES, check_groups

__all__ = ["ImageTask", "MODES", "check_mode"]


MODES = ("train", "validate", "evaluate")


def check_mode(mode):
    """(training, repeat) of a dataset `mode`; a ValueError naming the modes
    for any other."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}.")
    return mode == "train", mode != "evaluate"  # (training, repeat)


class ImageTask:
    """How `train` gets data, a model and its final evaluation for images;
    `keras_gn.train.video.VideoTask` does the same for clips. Every argument
    after the config is a keyword; `mode` is "train" (shuffled, augmented,
    repeated), "validate" (the evaluation split, repeated: Keras's
    per-epoch validation) or "evaluate" (one exact pass)."""

    def per_replica_batch(self, config):
        """Examples per replica (each virtual replica's)."""
        return config.images_per_replica

    def virtual_replicas(self, config):
        """Replicas within each device (`TrainConfig.virtual_replicas`)."""
        return config.virtual_replicas

    def check(self, config):
        """A ValueError naming the flag, before anything is built or
        written: a depth there is no ResNet of, GN groups that do not divide
        every normalized layer's channels, data that is not there."""
        if config.depth not in STAGE_SIZES:
            raise ValueError(f"--depth={config.depth}: choose from {', '.join(map(str, sorted(STAGE_SIZES)))}.")
        if config.norm == "gn":
            check_groups((config.groups,), config.depth, config.width, "--groups")
        data.check_prepared(config.dataset, config.data_dir)

    def info(self, config):
        return data.dataset_info(config.dataset, config.data_dir, config.synthetic_examples, config.synthetic_classes)

    def dataset(self, config, *, info, mode, batch_size, input_context=None, drop_remainder=False):
        training, repeat = check_mode(mode)
        return data.image_dataset(
            config.dataset,
            info.train_split if training else info.eval_split,
            batch_size,
            training=training,
            image_size=config.image_size,
            data_dir=config.data_dir,
            input_context=input_context,
            channels=info.channels,
            num_classes=info.num_classes,
            num_examples=info.train_examples if training else info.eval_examples,
            drop_remainder=drop_remainder,
            seed=config.seed,
            data_format=config.data_format,
            repeat=repeat,
        )

    def model(self, config, *, info):
        input_shape = (config.image_size, config.image_size, info.channels)
        if config.data_format == "channels_first":
            input_shape = (info.channels, config.image_size, config.image_size)
        return resnet(
            depth=config.depth,
            norm=config.norm,
            num_classes=info.num_classes,
            input_shape=input_shape,
            data_format=config.data_format,
            width=config.width,
            stem=config.stem,
            weight_decay=config.weight_decay,
            groups=config.groups,
            weight_standardization=config.weight_standardization,
            padding=config.padding,
            virtual_replicas=config.virtual_replicas,
        )

    def evaluate(self, model, config, *, info, strategy, dataset_fn):
        """Top-1 accuracy over one exact pass of the evaluation split."""
        del info  # in dataset_fn
        eval_ds = strategy.distribute_datasets_from_function(dataset_fn(mode="evaluate"))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            evaluation = model.evaluate(eval_ds, steps=config.eval_steps, return_dict=True, verbose=0)
        return {"top1_accuracy": float(evaluation["accuracy"]), "eval_loss": float(evaluation["loss"])}
