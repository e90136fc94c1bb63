"""The training loop of every trainer here: `train(config, strategy, task)`
builds the data, the model and the optimizer inside the strategy, then runs
`keras.Model.fit` with Keras's own callbacks (`keras_gn.train.backup`):

- `Backup` in `model_dir/backup`: a killed run started again with the same
  `model_dir` resumes from its last finished epoch, model and optimizer
  state (momentum, step count, hence the learning rate) included;
- `ModelCheckpoint`: the weights after every epoch, `model_dir/checkpoints`;
- `TensorBoard`: `model_dir/tensorboard`;

and writes `model_dir/results.json` (top-1 error, the configuration) and the
trained model `model_dir/model.keras`. The task (`ImageTask`, `VideoTask`)
supplies the data, the model and the final evaluation. Under a multi-worker
strategy every worker resumes from the backup (`model_dir` must be on
storage they all see) and the chief alone writes.
"""

import dataclasses
import json
import math
import os
import time

import keras
import tensorflow as tf

from keras_gn.train.backup import callbacks
from keras_gn.train.config import PRECISIONS
from keras_gn.train.schedule import learning_rate_schedule
from keras_gn.train.strategy import is_chief
from keras_gn.train.task import ImageTask

__all__ = ["train", "compile_classifier", "resolve_precision"]


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
    if plan.virtual_replicas > 1:
        each = f"{plan.virtual_replicas} virtual replicas x {plan.per_replica // plan.virtual_replicas}"
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
        callbacks=callbacks(config.model_dir, chief=chief),
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
        # results.json last: its presence marks a finished run (keras_gn.apps.runs).
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
    virtual_replicas: int
    per_replica: int
    global_batch: int
    steps_per_epoch: int
    eval_steps: "int | None"
    dataset_fn: object


def _plan(config, strategy, task):
    replicas = strategy.num_replicas_in_sync
    virtual_replicas = task.virtual_replicas(config)
    # Each device's batch: its virtual replicas' images.
    per_replica = task.per_replica_batch(config) * virtual_replicas
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
                drop_remainder=tpu or (mode == "train" and virtual_replicas > 1),
            )

        return fn

    return _Plan(info, replicas, virtual_replicas, per_replica, global_batch, steps_per_epoch, eval_steps, dataset_fn)
