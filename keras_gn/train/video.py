"""Video classification with ResNet I3D (the paper's Kinetics study, Table 8).

`train(VideoConfig(...), strategy, task=VideoTask())` runs the same loop as
ImageNet (`keras_gn.train.train`: checkpoints, resume, TensorBoard,
results.json); this module supplies the clips, the I3D model (optionally
inflated from an ImageNet checkpoint) and 10-clip testing. `VideoConfig` is
the fields every run has (`RunConfig`) and the clips' own; it has none of
the images' (stem, images per replica, virtual replicas, layout).
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from keras_gn.config_flags import inherit, option
from keras_gn.data.video import video_dataset
from keras_gn.models import i3d_resnet, inflate
from keras_gn.models.resnet import BASIC_DEPTHS, STAGE_SIZES
from keras_gn.train.config import RunConfig
from keras_gn.train.task import ImageTask, check_mode

__all__ = ["VideoConfig", "VideoTask"]


@dataclasses.dataclass
class VideoConfig(RunConfig):
    """Defaults: the non-local networks recipe the GN paper's Kinetics runs
    followed, as we read it: 8 GPUs x 8 clips, SGD momentum 0.9, lr 0.01 per
    64 clips, 400k iterations with lr / 10 at 150k and 300k, weight decay
    1e-4, written here in epochs of Kinetics-400's ~240k training videos."""

    frames: int = option(32, "Frames per clip (the paper: 32 or 64).", minimum=1)
    sample_rate: int = option(2, "Stride between the sampled frames.", minimum=1)
    clips_per_replica: int = option(8, "Clips per GPU (the paper: 8 or 4).", minimum=1)
    eval_clips: int = option(10, "Clips per video at test time (10-clip testing).", minimum=1)
    init_checkpoint: str = option("", "A 2-D model.keras from keras-gn-imagenet to inflate.")
    # Fields of every run with the video recipe's defaults (same flags and help).
    dataset: str = inherit(RunConfig, "dataset", "kinetics400")
    epochs: int = inherit(RunConfig, "epochs", 106)
    decay_epochs: tuple = inherit(RunConfig, "decay_epochs", (40, 80))
    base_learning_rate: float = inherit(RunConfig, "base_learning_rate", 0.01)
    base_batch: int = inherit(RunConfig, "base_batch", 64)
    synthetic_classes: int = inherit(RunConfig, "synthetic_classes", 400)
    synthetic_examples: int = inherit(RunConfig, "synthetic_examples", 64)
    model_dir: str = inherit(RunConfig, "model_dir", "/tmp/keras_gn_kinetics")


class VideoTask(ImageTask):
    """`ImageTask`'s checks and steps for clips and the I3D ResNet."""

    def per_replica_batch(self, config):
        return config.clips_per_replica

    def virtual_replicas(self, config):
        return 1  # BN's statistics are each device's clips

    def check(self, config):
        super().check(config)
        if config.depth in BASIC_DEPTHS:
            depths = ", ".join(str(d) for d in sorted(STAGE_SIZES) if d not in BASIC_DEPTHS)
            raise ValueError(f"--depth={config.depth}: I3D inflates bottleneck blocks; choose from {depths}.")
        path = config.init_checkpoint
        if path and "://" not in path and not os.path.isfile(path):
            raise ValueError(
                f"--init_checkpoint={path} not found; give a model.keras written by keras-gn-imagenet, "
                "or --init_checkpoint= to train from scratch."
            )

    def dataset(self, config, *, info, mode, batch_size, input_context=None, drop_remainder=False):
        # Training and the per-epoch validation use one (the center) clip;
        # the final evaluation uses `eval_clips` clips per video.
        training, repeat = check_mode(mode)
        clips = config.eval_clips if mode == "evaluate" else 1
        ds = video_dataset(
            config.dataset,
            info.train_split if training else info.eval_split,
            batch_size,
            training,
            frames=config.frames,
            sample_rate=config.sample_rate,
            crop_size=config.image_size,
            eval_clips=clips,
            data_dir=config.data_dir,
            input_context=input_context,
            num_classes=info.num_classes,
            num_examples=info.train_examples if training else info.eval_examples,
            drop_remainder=drop_remainder,
            repeat=repeat,
            seed=config.seed,
        )
        if not training and clips == 1:
            ds = ds.map(lambda c, y: (c[:, 0], y))
        return ds

    def model(self, config, *, info):
        model = i3d_resnet(
            depth=config.depth,
            norm=config.norm,
            num_classes=info.num_classes,
            input_shape=(config.frames, config.image_size, config.image_size, 3),
            width=config.width,
            weight_decay=config.weight_decay,
            groups=config.groups,
            weight_standardization=config.weight_standardization,
            padding=config.padding,
        )
        if config.init_checkpoint:
            copied = inflate(config.init_checkpoint, model, skip_top=True)
            print(f"Inflated {len(copied)} layers from {config.init_checkpoint}.", flush=True)
        return model

    def evaluate(self, model, config, *, info, strategy, dataset_fn):
        """10-clip testing: softmax averaged over `eval_clips` clips per video.
        One pipeline over the whole global batch (the clips of a video stay
        together); `model.predict` spreads it over the replicas."""
        del info, strategy  # in dataset_fn; predict distributes
        ds = dataset_fn(mode="evaluate")(tf.distribute.InputContext())
        if config.eval_steps:
            ds = ds.take(config.eval_steps)
        labels = np.concatenate([y.numpy() for _, y in ds])
        flat = ds.map(lambda c, y: tf.reshape(c, [-1] + c.shape[2:].as_list()))
        logits = model.predict(flat, verbose=0)
        probs = (
            keras.ops.convert_to_numpy(keras.ops.softmax(logits)).reshape(len(labels), config.eval_clips, -1).mean(1)
        )
        return {
            "top1_accuracy": float(np.mean(probs.argmax(-1) == labels)),
            "top5_accuracy": float(np.mean([y in np.argsort(p)[-5:] for p, y in zip(probs, labels)])),
            "eval_loss": float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-12))),
            "eval_clips": config.eval_clips,
        }
