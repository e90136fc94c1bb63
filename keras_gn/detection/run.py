"""Runs a registered Mask R-CNN experiment with the Model Garden's own trainer
(Orbit) and COCO evaluator: checkpoints, resume, TensorBoard summaries and
box/mask AP all come from there (`official.core.train_lib.run_experiment`)."""

import json
import os

import tensorflow as tf
from official.core import exp_factory, task_factory, train_lib, train_utils
from official.modeling import hyperparams

import keras_gn.detection  # noqa: F401 - registers the backbone, FPN, task and experiments
from keras_gn.train.strategy import is_chief

__all__ = ["experiment_params", "resolve_checkpoint", "run"]


def experiment_params(experiment, data_dir=None, annotation_file=None, init_checkpoint=None, params_override=""):
    """The experiment's config with the data, checkpoint and overrides applied.

    `data_dir` holds TFRecords from the Model Garden's create_coco_tf_record
    (`train*`, `val*`) and, unless `annotation_file` says otherwise, COCO's
    `instances_val2017.json`. `params_override` is YAML or "a.b=c,d.e=f"."""
    try:
        params = exp_factory.get_exp_config(experiment)
    except LookupError:  # KeyError in older Model Gardens
        from keras_gn.detection.configs import EXPERIMENTS

        raise ValueError(f"Unknown experiment {experiment!r}; ours: {', '.join(EXPERIMENTS)}.") from None
    if data_dir:
        params.task.train_data.input_path = os.path.join(data_dir, "train*")
        params.task.validation_data.input_path = os.path.join(data_dir, "val*")
        params.task.annotation_file = os.path.join(data_dir, "instances_val2017.json")
    if annotation_file:
        params.task.annotation_file = annotation_file
    if init_checkpoint is not None:
        params.task.init_checkpoint = init_checkpoint
    if params_override:
        params = hyperparams.override_params_dict(params, params_override, is_strict=True)
    params.task.init_checkpoint = resolve_checkpoint(params.task.init_checkpoint)
    params.validate()
    params.lock()
    return params


def resolve_checkpoint(prefix):
    """An experiment's `init_checkpoint` as an absolute path: the registered
    defaults (`runs/r50_gn_backbone/ckpt`, ...) are relative to the folder
    the binary starts in, so a missing one is an error that says where it
    was looked for, not a path the trainer fails on later. Remote paths
    (gs://...) and "" (train from scratch) pass as they are."""
    if not prefix or "://" in prefix:
        return prefix
    path = os.path.abspath(prefix)
    if not (os.path.exists(path + ".index") or os.path.isdir(path)):
        raise ValueError(
            f"init_checkpoint {prefix!r} not found (looked for {path}.index, relative to the working "
            f"directory {os.getcwd()}). Write it with keras-gn-convert-backbone, pass --init_checkpoint=PATH, "
            f"or --init_checkpoint= to train from scratch."
        )
    return path


def run(params, mode, model_dir, strategy):
    """Trains and/or evaluates; returns the last evaluation's metrics (box AP
    as "AP", mask AP as "mask_AP", COCO's other numbers beside them), also
    written to `model_dir/results.json` (by the chief of several workers).

    In "train_and_eval" the metrics are those of the evaluation that ends
    training (the Model Garden would evaluate a second time to return them);
    "train" and "continuous_eval" return none (see TensorBoard)."""
    chief = is_chief(strategy)
    if "train" in mode and chief:
        train_utils.serialize_config(params, model_dir)
    with strategy.scope():
        task = task_factory.get_task(params.task, logging_dir=model_dir)
    runner = train_lib.OrbitExperimentRunner(
        distribution_strategy=strategy, task=task, mode=mode, params=params, model_dir=model_dir
    )
    trainer = params.trainer
    with strategy.scope():
        if mode == "train_and_eval":
            logs = runner.controller.train_and_evaluate(
                train_steps=trainer.train_steps,
                eval_steps=trainer.validation_steps,
                eval_interval=trainer.validation_interval,
            )
        elif mode == "eval":
            logs = runner.controller.evaluate(steps=trainer.validation_steps)
        else:
            runner.run()
            logs = {}
    metrics = {
        k: float(v) for k, v in (logs or {}).items() if getattr(v, "shape", ()) == () and not isinstance(v, (dict, str))
    }
    if chief:
        with tf.io.gfile.GFile(os.path.join(model_dir, "results.json"), "w") as f:  # gs:// on a TPU
            json.dump(metrics, f, indent=1)
    if metrics:
        print(
            f"box AP {metrics.get('AP', float('nan')):.4f}, mask AP {metrics.get('mask_AP', float('nan')):.4f}; "
            f"all metrics in {model_dir}/results.json",
            flush=True,
        )
    return metrics
