"""What keras-gn-imagenet and keras-gn-kinetics share: every check before
anything runs, the run folder, and `keras_gn.train.train`."""

import tensorflow as tf
from absl import app, flags

from keras_gn.apps import launch, runs
from keras_gn.errors import RunError
from keras_gn.train import cli, train
from keras_gn.train.strategy import is_chief

__all__ = ["binary", "define_flags", "train_in_folder"]

FLAGS = flags.FLAGS

# What a run writes in --model_dir (keras_gn.train.loop), and all
# that --overwrite removes.
OUTPUTS = ("backup", "checkpoints", "tensorboard", "model.keras", "results.json")


def define_flags(config_cls):
    """The config's flags, where it runs, and --overwrite."""
    cli.define_flags(config_cls)
    cli.define_runtime_flags()
    flags.DEFINE_bool(
        "overwrite",
        False,
        "Start afresh in a --model_dir that holds a run, finished or killed: its checkpoints, backup, "
        "TensorBoard logs, model and results are removed first.",
    )


def _strategy(config):
    """The strategy of the runtime flags; flag errors as usage errors."""
    try:
        with launch.usage_errors():
            strategy = cli.strategy_from_flags()
    except RuntimeError as error:  # a TPU that cannot be reached
        raise RunError(str(error)) from None
    devices = strategy.extended.worker_devices if isinstance(strategy, tf.distribute.MirroredStrategy) else ()
    if config.jit_compile and len(devices) > 1 and all("CPU" in d.upper() for d in devices):
        raise app.UsageError(
            "--jit_compile: XLA cannot compile one training step over several logical CPU devices "
            "(--cpu_devices); add --nojit_compile, or run on GPUs."
        )
    return strategy


def train_in_folder(config_cls, task):
    """Reads and checks the flags (exit 2 on a bad one, before anything is
    built or written), then trains in --model_dir: one run at a time, a
    finished run kept unless --overwrite, a killed one resumed."""
    config = config_cls(**cli.values(config_cls))
    with launch.usage_errors():
        task.check(config)
        runs.check_writable(config.model_dir, "--model_dir")
    strategy = _strategy(config)
    if not is_chief(strategy):
        # Another worker of a multi-worker run: the chief holds the folder.
        if not FLAGS.overwrite and tf.io.gfile.exists(f"{config.model_dir}/results.json"):
            print(runs.finished_notice(f"{config.model_dir}/results.json"))
            return None
        return train(config, strategy, task=task)
    with runs.claim(config.model_dir, OUTPUTS, overwrite=FLAGS.overwrite) as finished:
        if finished:
            print(runs.finished_notice(finished))
            return None
        return train(config, strategy, task=task)


def binary(config_cls, task, *, name, doc):
    """The `main()` of a training binary (keras-gn-imagenet,
    keras-gn-kinetics): defines the flags of `config_cls` and, when called,
    trains `task` in --model_dir (`train_in_folder`)."""
    define_flags(config_cls)

    def run(argv):
        del argv
        train_in_folder(config_cls, task)

    return lambda: launch.run(run, name=name, doc=doc)
