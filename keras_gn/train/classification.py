"""Image classification with a ResNet, the paper's ImageNet recipe as defaults.

`train(config, strategy)` builds the data, the model and the optimizer inside
the strategy, then runs `keras.Model.fit` with Keras's own callbacks:

- `BackupAndRestore` in `model_dir/backup`: a killed run started again with
  the same `model_dir` resumes from its last finished epoch, model and
  optimizer state (momentum, step count, hence the learning rate) included.
  The backup before the last is kept, and used when the last was cut short
  by the kill; one that cannot be read is an error naming the file;
- `ModelCheckpoint`: the weights after every epoch, `model_dir/checkpoints`;
- `TensorBoard`: `model_dir/tensorboard`;

and writes `model_dir/results.json` (top-1 error, the configuration) and the
trained model `model_dir/model.keras`. Under a multi-worker strategy every
worker resumes from the backup (`model_dir` must be on storage they all
see) and the chief alone writes.
"""

import dataclasses
import json
import math
import os
import shutil
import time
import warnings

import keras
import tensorflow as tf

from keras_gn import data
from keras_gn.errors import checkpoint_error, describe
from keras_gn.models import resnet
from keras_gn.models.resnet import STAGE_SIZES, check_groups
from keras_gn.norms import NORMALIZATIONS
from keras_gn.train.cli import option
from keras_gn.train.strategy import is_chief

__all__ = [
    "TrainConfig",
    "ImageTask",
    "train",
    "learning_rate_schedule",
    "LinearWarmup",
    "step_schedule",
    "compile_classifier",
    "resolve_precision",
]


NORMS = tuple(NORMALIZATIONS)
PRECISIONS = ("auto", "none", "float16", "bfloat16")


@dataclasses.dataclass
class TrainConfig:
    """The paper's ImageNet ResNet-50 recipe (Wu & He 2018, section 4.1).
    Each field is also the training binaries' flag of the same name."""

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
    dataset: str = option("imagenet2012", "TFDS data set, or 'synthetic'.")
    data_dir: "str | None" = option(None, "TFDS data folder (prepared data; nothing is downloaded).")
    image_size: int = option(224, "Training and evaluation crop size, pixels.", minimum=1)
    data_format: str = option("channels_last", "Image layout.", choices=("channels_last", "channels_first"))
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


def learning_rate_schedule(
    base_learning_rate, base_batch, decay_epochs, global_batch, steps_per_epoch, warmup_epochs=0.0
):
    """lr = base_learning_rate * global_batch / base_batch (the linear scaling
    rule), divided by 10 at each of `decay_epochs` (may be fractional): a
    Keras `PiecewiseConstantDecay` over optimizer steps; with
    `warmup_epochs`, a `LinearWarmup` of it (Goyal et al. 2017)."""
    return step_schedule(
        base_learning_rate * global_batch / base_batch,
        [int(round(e * steps_per_epoch)) for e in decay_epochs],
        int(round(warmup_epochs * steps_per_epoch)),
    )


def step_schedule(peak, boundaries, warmup_steps=0):
    """`peak`, divided by 10 after each of the optimizer steps `boundaries`:
    a Keras `PiecewiseConstantDecay`; with `warmup_steps`, a `LinearWarmup`
    of it."""
    values = [peak / 10**i for i in range(len(boundaries) + 1)]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(list(boundaries), values)
    return LinearWarmup(schedule, warmup_steps) if warmup_steps > 0 else schedule


@keras.saving.register_keras_serializable(package="keras_gn")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule`'s rate times min(1, (step + 1) / warmup_steps): a linear
    ramp over the first `warmup_steps` optimizer steps (step 0 takes
    1 / warmup_steps of the rate, step warmup_steps - 1 all of it), then
    `schedule` itself (Goyal et al. 2017's gradual warm-up, from zero)."""

    def __init__(self, schedule, warmup_steps):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"warmup_steps must be a positive integer; got {warmup_steps!r}.")
        self.schedule = schedule
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        ramp = keras.ops.minimum(1.0, (keras.ops.cast(step, "float32") + 1.0) / self.warmup_steps)
        return self.schedule(step) * ramp

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["warmup_steps"])


class _Backup(keras.callbacks.BackupAndRestore):
    """Keras's `BackupAndRestore` made safe to kill at any moment.

    Keras writes the weights, then `training_metadata.json`, in place: a
    kill between or during the two left a pair that cannot be read (an
    empty JSON file, a truncated HDF5 file) or that disagrees (the weights
    of one epoch, the epoch count of the one before). Here both are written
    to temporary files and renamed into place, the pair before is kept, and
    the metadata records the optimizer's step count: a pair
    that cannot be read or disagrees is passed over for the one before
    (`previous.weights.h5`, `previous_training_metadata.json`), and
    when neither can be read the error names the file and what to do. With
    `write=False` (the non-chief workers) it only restores."""

    def __init__(self, backup_dir, write=True):
        super().__init__(backup_dir, delete_checkpoint=write)
        self.write = write
        # The pair before the last (Keras's ".bkp" names are not loadable: load_weights wants .weights.h5).
        self._prev_weights_path = os.path.join(backup_dir, "previous.weights.h5")
        self._prev_training_metadata_path = os.path.join(backup_dir, "previous_training_metadata.json")

    def on_train_begin(self, logs=None):
        pairs = [
            (self._weights_path, self._training_metadata_path),
            (self._prev_weights_path, self._prev_training_metadata_path),
        ]
        failures = []
        for weights, metadata in pairs:
            if not (os.path.exists(weights) and os.path.exists(metadata)):
                continue
            try:
                self._restore(weights, metadata)
            except (OSError, ValueError, KeyError) as error:
                failures.append((weights, error))
                continue
            for path, error in failures:  # a kill while backing up: say what is trained again
                epoch = self.model._initial_epoch
                print(
                    f"Passed over the last backup {path}: it cannot be read ({describe(error)}). "
                    f"Resuming from the backup before it ({weights}): training starts again at epoch {epoch + 1}.",
                    flush=True,
                )
            return
        if failures:
            model_dir = os.path.dirname(os.path.normpath(self.backup_dir))
            raise checkpoint_error(
                failures[0][0],
                failures[0][1],
                f"Delete {self.backup_dir} to train again from the first epoch (its epoch checkpoints in "
                f"{os.path.join(model_dir, 'checkpoints')} are weights only), or start afresh with --overwrite.",
            )

    def _restore(self, weights, metadata):
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        with open(metadata) as f:
            state = json.load(f)
        steps = state.get("iterations")
        if optimizer is not None and steps is not None and int(optimizer.iterations.numpy()) != steps:
            raise ValueError(f"its weights are at step {int(optimizer.iterations.numpy())}, {metadata} at {steps}")
        self.model._initial_epoch = state["epoch"]

    def _save_model(self):
        if not self.write:
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        new_weights = os.path.join(self.backup_dir, "new.weights.h5")
        new_metadata = self._training_metadata_path + ".new"
        self.model.save_weights(new_weights, overwrite=True)
        state = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        if self.model.optimizer is not None:
            state["iterations"] = int(self.model.optimizer.iterations.numpy())
        with open(new_metadata, "w") as f:
            json.dump(state, f)
        # The pair before becomes .bkp (copies: the last pair stays whole),
        # then the new pair is renamed into place.
        for path, previous in (
            (self._weights_path, self._prev_weights_path),
            (self._training_metadata_path, self._prev_training_metadata_path),
        ):
            if os.path.exists(path):
                shutil.copyfile(path, previous)
        os.replace(new_weights, self._weights_path)
        os.replace(new_metadata, self._training_metadata_path)


class _ResumeLog(keras.callbacks.Callback):
    """One line at the start of training saying where it starts from."""

    def on_train_begin(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step:
            print(f"Resumed from the last backup at optimizer step {step}.", flush=True)


MODES = ("train", "validate", "evaluate")


def _check_mode(mode):
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
        return config.images_per_replica

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
        training, repeat = _check_mode(mode)
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


def resolve_precision(choice, strategy=None):
    """The mixed precision of `choice` ("auto", "none", "", "float16",
    "bfloat16"): "auto" is bfloat16 on a TPU, float16 on a GPU and none
    ("") on a CPU. Returns "", "float16" or "bfloat16"."""
    if choice not in PRECISIONS + ("",):
        raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}; got {choice!r}.")
    if choice == "auto":
        strategy = strategy or tf.distribute.get_strategy()
        if isinstance(strategy, tf.distribute.TPUStrategy):
            return "bfloat16"
        return "float16" if tf.config.list_logical_devices("GPU") else ""
    return "" if choice == "none" else choice


def compile_classifier(model, learning_rate, momentum, jit_compile=True, steps_per_execution=1):
    """The one compile step of every classifier here: SGD with momentum on
    `learning_rate` (a schedule), cross-entropy on logits, top-1 accuracy."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def train(config, strategy=None, task=None):
    """Trains and evaluates the model `config` describes; returns the results
    dict (also written to `model_dir/results.json`). `task` defaults to
    image classification (`ImageTask`). The global dtype policy is set for
    `config.mixed_precision` while it runs and restored after."""
    strategy = strategy or tf.distribute.get_strategy()
    task = task or ImageTask()
    precision = resolve_precision(config.mixed_precision, strategy)
    policy = keras.config.dtype_policy()
    if precision:
        keras.mixed_precision.set_global_policy(f"mixed_{precision}")
    try:
        return _train(config, strategy, task)
    finally:
        keras.config.set_dtype_policy(policy)


def _train(config, strategy, task):
    keras.utils.set_random_seed(config.seed)
    chief = is_chief(strategy)  # the one process that writes (several workers: the chief)
    plan = _plan(config, strategy, task)
    train_ds = strategy.distribute_datasets_from_function(plan.dataset_fn(mode="train"))
    # Keras keeps one iterator over a distributed validation set across
    # epochs: it must repeat. The final top-1 is one exact pass (task.evaluate).
    val_ds = strategy.distribute_datasets_from_function(plan.dataset_fn(mode="validate"))
    with strategy.scope():
        model = task.model(config, info=plan.info)
        schedule = learning_rate_schedule(
            config.base_learning_rate,
            config.base_batch,
            config.decay_epochs,
            plan.global_batch,
            plan.steps_per_epoch,
            config.warmup_epochs,
        )
        compile_classifier(model, schedule, config.momentum, config.jit_compile, config.steps_per_execution)
    each = f"{plan.per_replica}"
    if config.virtual_replicas > 1:
        each = f"{config.virtual_replicas} virtual replicas x {plan.per_replica // config.virtual_replicas}"
    print(
        f"Training {model.name}: {plan.replicas} replica(s) x {each} = "
        f"{plan.global_batch} per step, {plan.steps_per_epoch} steps per epoch, {config.epochs} epochs, "
        f"peak learning rate {config.base_learning_rate * plan.global_batch / config.base_batch:g}.",
        flush=True,
    )
    start = time.time()
    history = model.fit(
        train_ds,
        epochs=config.epochs,
        steps_per_epoch=plan.steps_per_epoch,
        validation_data=val_ds,
        validation_steps=plan.eval_steps,
        callbacks=_callbacks(config.model_dir, chief=chief),
        verbose=config.verbose,
        shuffle=False,  # the tf.data pipeline shuffles
    )
    evaluation = task.evaluate(model, config, info=plan.info, strategy=strategy, dataset_fn=plan.dataset_fn)
    results = {
        "top1_error": 1.0 - evaluation["top1_accuracy"],
        **evaluation,
        "replicas": plan.replicas,
        "global_batch": plan.global_batch,
        "steps_per_epoch": plan.steps_per_epoch,
        "epochs_run_in_this_process": len(history.history.get("loss", [])),
        "train_seconds_in_this_process": round(time.time() - start, 1),
        "config": dataclasses.asdict(config),
    }
    if chief:
        # results.json last: its presence marks a finished run (keras_gn.train.runs).
        model.save(os.path.join(config.model_dir, "model.keras"))
        with open(os.path.join(config.model_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
    where = f"results in {config.model_dir}/results.json" if chief else "the chief writes the results"
    print(f"top-1 error {results['top1_error']:.4f}; {where}", flush=True)
    return results


@dataclasses.dataclass
class _Plan:
    """Batch and step counts of a training run, and its datasets' maker."""

    info: object
    replicas: int
    per_replica: int
    global_batch: int
    steps_per_epoch: int
    eval_steps: "int | None"
    dataset_fn: object


def _plan(config, strategy, task):
    replicas = strategy.num_replicas_in_sync
    # Each device's batch: its virtual replicas' images.
    per_replica = task.per_replica_batch(config) * config.virtual_replicas
    global_batch = per_replica * replicas
    info = task.info(config)
    steps_per_epoch = config.steps_per_epoch or (info.train_examples and info.train_examples // global_batch)
    if not steps_per_epoch:
        raise ValueError(
            f"The size of {config.dataset!r}'s train split is unknown; give --steps_per_epoch (and --eval_steps)."
        )
    eval_steps = config.eval_steps or (info.eval_examples and math.ceil(info.eval_examples / global_batch))
    # The last partial batch is dropped on a TPU, whose shapes must be
    # static, and in training with virtual replicas, whose statistics need
    # every replica's images (evaluation uses the moving statistics).
    tpu = isinstance(strategy, tf.distribute.TPUStrategy)

    def dataset_fn(mode):
        def fn(input_context):
            batch = input_context.get_per_replica_batch_size(global_batch)
            return task.dataset(
                config,
                info=info,
                mode=mode,
                batch_size=batch,
                input_context=input_context,
                drop_remainder=tpu or (mode == "train" and config.virtual_replicas > 1),
            )

        return fn

    return _Plan(info, replicas, per_replica, global_batch, steps_per_epoch, eval_steps, dataset_fn)


def _callbacks(model_dir, chief=True):
    """Backups for resuming on every worker; epoch checkpoints and
    TensorBoard written by the chief alone."""
    backup = [_Backup(os.path.join(model_dir, "backup"), write=chief), _ResumeLog()]
    if not chief:
        return backup
    os.makedirs(os.path.join(model_dir, "checkpoints"), exist_ok=True)
    return backup + [
        keras.callbacks.ModelCheckpoint(
            os.path.join(model_dir, "checkpoints", "epoch_{epoch:03d}.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "tensorboard")),
    ]
