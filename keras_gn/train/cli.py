"""Command-line flags made from the configuration dataclasses: the field
helpers of `keras_gn.config_flags` (a leaf module, re-exported here) and
the training binaries' runtime flags (the strategy, the CPU split).

Every field of a config (`TrainConfig`, `VideoConfig`, `StudyConfig`) is one
absl flag of the field's name, type and default, with the help text kept next
to the field (`option`), so a field is written once and every binary reads it
the same way:

    cli.define_flags(TrainConfig)                  # at import, in the binary
    config = TrainConfig(**cli.values(TrainConfig))  # in main()

Tuples are comma-separated lists; `None` defaults take the annotation's type;
fields declared with `option(..., flag=False)` are not flags. A value outside
`choices` or below `minimum` stops the binary with one line naming the flag,
the value and what is allowed (absl's `app.UsageError`), before anything is
built.
"""

from absl import flags

from keras_gn.config_flags import define_flags, inherit, option, values
from keras_gn.train.strategy import STRATEGIES, make_strategy, split_cpu

__all__ = ["option", "inherit", "define_flags", "values", "define_runtime_flags", "strategy_from_flags"]


def define_runtime_flags(flag_values=flags.FLAGS):
    """Where a training binary runs: the strategy and the CPU split."""
    flags.DEFINE_enum(
        "strategy",
        "default",
        list(STRATEGIES),
        "tf.distribute strategy (auto: TPU, else all GPUs, else the CPU).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("num_gpus", 1, "Replicas for --strategy=mirrored / one_device.", flag_values=flag_values)
    flags.DEFINE_string(
        "tpu", "", "TPU name or grpc:// address for TPUClusterResolver ('local' on a TPU VM).", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "cpu_devices",
        0,
        "Split the CPU into this many logical devices (to run --strategy=mirrored without GPUs).",
        flag_values=flag_values,
    )


def strategy_from_flags(flag_values=flags.FLAGS):
    """Splits the CPU if asked and makes the strategy of the runtime flags."""
    split_cpu(flag_values.cpu_devices)
    return make_strategy(flag_values.strategy, flag_values.num_gpus, flag_values.tpu)
