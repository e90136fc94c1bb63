"""Image classification with a ResNet, the paper's ImageNet recipe as defaults.

`train(config, strategy)` builds the data, the model and the optimizer inside
the strategy, then runs `keras.Model.fit` with Keras's own callbacks:

- `BackupAndRestore` in `model_dir/backup`: a killed run started again with
  the same `model_dir` resumes from its last finished epoch, model and
  optimizer state (momentum, step count, hence the learning rate) included;
- `ModelCheckpoint`: the weights after every epoch, `model_dir/checkpoints`;
- `TensorBoard`: `model_dir/tensorboard`;

and writes `model_dir/results.json` (top-1 error, the configuration) and the
trained model `model_dir/model.keras`.
"""

import dataclasses
import json
import math
import os
import time
import warnings

import keras
import tensorflow as tf

from keras_gn import data
from keras_gn.models import resnet

__all__ = ["TrainConfig", "ImageTask", "train", "learning_rate_schedule"]


@dataclasses.dataclass
class TrainConfig:
    """The paper's ImageNet ResNet-50 recipe (Wu & He 2018, section 4.1)."""

    norm: str = "gn"
    groups: int = 32  # for norm="gn"
    depth: int = 50
    width: int = 64
    stem: str = "imagenet"
    images_per_replica: int = 32
    dataset: str = "imagenet2012"
    data_dir: "str | None" = None
    image_size: int = 224
    data_format: str = "channels_last"
    epochs: int = 100
    base_learning_rate: float = 0.1  # for a total batch of `base_batch`
    base_batch: int = 256
    decay_epochs: tuple = (30, 60, 90)  # learning rate / 10 at each
    momentum: float = 0.9
    weight_decay: float = 1e-4  # on every weight, gamma and beta included
    steps_per_epoch: "int | None" = None  # default: training examples / global batch
    eval_steps: "int | None" = None  # default: the whole evaluation split
    synthetic_examples: int = 1024
    synthetic_classes: int = 1000
    model_dir: str = "/tmp/keras_gn_imagenet"
    mixed_precision: str = ""  # "", "float16" or "bfloat16"
    jit_compile: bool = True
    steps_per_execution: int = 1
    seed: int = 0
    verbose: int = 2


def learning_rate_schedule(base_learning_rate, base_batch, decay_epochs, global_batch, steps_per_epoch):
    """lr = base_learning_rate * global_batch / base_batch (the linear scaling
    rule), divided by 10 at each of `decay_epochs` (may be fractional): a
    Keras `PiecewiseConstantDecay` over optimizer steps."""
    peak = base_learning_rate * global_batch / base_batch
    boundaries = [int(round(e * steps_per_epoch)) for e in decay_epochs]
    values = [peak / 10**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


class _ResumeLog(keras.callbacks.Callback):
    """One line at the start of training saying where it starts from."""

    def on_train_begin(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step:
            print(f"Resumed from the last backup at optimizer step {step}.", flush=True)


class ImageTask:
    """How `train` gets data, a model and its final evaluation for images;
    `keras_gn.train.video.VideoTask` does the same for clips."""

    def per_replica_batch(self, config):
        return config.images_per_replica

    def info(self, config):
        return data.dataset_info(config.dataset, config.data_dir, config.synthetic_examples, config.synthetic_classes)

    def dataset(self, config, info, training, batch_size, input_context, drop_remainder, repeat):
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

    def model(self, config, info):
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
        )

    def evaluate(self, model, config, info, strategy, dataset_fn):
        """Top-1 accuracy over one exact pass of the evaluation split."""
        eval_ds = strategy.distribute_datasets_from_function(dataset_fn(False, repeat=False))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            evaluation = model.evaluate(eval_ds, steps=config.eval_steps, return_dict=True, verbose=0)
        return {"top1_accuracy": float(evaluation["accuracy"]), "eval_loss": float(evaluation["loss"])}


def train(config, strategy=None, task=None):
    """Trains and evaluates the model `config` describes; returns the results
    dict (also written to `model_dir/results.json`). `task` defaults to
    image classification (`ImageTask`)."""
    strategy = strategy or tf.distribute.get_strategy()
    task = task or ImageTask()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(f"mixed_{config.mixed_precision}")
    keras.utils.set_random_seed(config.seed)

    replicas = strategy.num_replicas_in_sync
    per_replica = task.per_replica_batch(config)
    global_batch = per_replica * replicas
    info = task.info(config)
    steps_per_epoch = config.steps_per_epoch or (info.train_examples and info.train_examples // global_batch)
    if not steps_per_epoch:
        raise ValueError(
            f"The size of {config.dataset!r}'s train split is unknown; give --steps_per_epoch "
            f"(and --eval_steps)."
        )
    eval_steps = config.eval_steps or (info.eval_examples and math.ceil(info.eval_examples / global_batch))
    tpu = isinstance(strategy, tf.distribute.TPUStrategy)

    def dataset_fn(training, repeat=None):
        def fn(input_context):
            batch = input_context.get_per_replica_batch_size(global_batch)
            return task.dataset(config, info, training, batch, input_context, tpu, repeat)

        return fn

    train_ds = strategy.distribute_datasets_from_function(dataset_fn(True))
    # Keras keeps one iterator over a distributed validation set across
    # epochs: it must repeat. The final top-1 is one exact pass (task.evaluate).
    val_ds = strategy.distribute_datasets_from_function(dataset_fn(False, repeat=True))

    with strategy.scope():
        model = task.model(config, info)
        optimizer = keras.optimizers.SGD(
            learning_rate=learning_rate_schedule(
                config.base_learning_rate, config.base_batch, config.decay_epochs, global_batch, steps_per_epoch
            ),
            momentum=config.momentum,
        )
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=config.jit_compile,
            steps_per_execution=config.steps_per_execution,
        )

    os.makedirs(config.model_dir, exist_ok=True)
    print(
        f"Training {model.name}: {replicas} replica(s) x {per_replica} = "
        f"{global_batch} per step, {steps_per_epoch} steps per epoch, {config.epochs} epochs, "
        f"peak learning rate {config.base_learning_rate * global_batch / config.base_batch:g}.",
        flush=True,
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(config.model_dir, "backup")),
        _ResumeLog(),
        keras.callbacks.ModelCheckpoint(
            os.path.join(config.model_dir, "checkpoints", "epoch_{epoch:03d}.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.TensorBoard(os.path.join(config.model_dir, "tensorboard")),
    ]
    os.makedirs(os.path.join(config.model_dir, "checkpoints"), exist_ok=True)
    start = time.time()
    history = model.fit(
        train_ds,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_ds,
        validation_steps=eval_steps,
        callbacks=callbacks,
        verbose=config.verbose,
        shuffle=False,  # the tf.data pipeline shuffles
    )
    evaluation = task.evaluate(model, config, info, strategy, dataset_fn)
    results = {
        "top1_error": 1.0 - evaluation["top1_accuracy"],
        **evaluation,
        "replicas": replicas,
        "global_batch": global_batch,
        "steps_per_epoch": steps_per_epoch,
        "epochs_run_in_this_process": len(history.history.get("loss", [])),
        "train_seconds_in_this_process": round(time.time() - start, 1),
        "config": dataclasses.asdict(config),
    }
    model.save(os.path.join(config.model_dir, "model.keras"))
    with open(os.path.join(config.model_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(f"top-1 error {results['top1_error']:.4f}; results in {config.model_dir}/results.json", flush=True)
    return results
