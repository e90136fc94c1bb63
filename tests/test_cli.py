"""Flags from the config dataclasses (keras_gn.train.cli): the binaries' flag
sets, their defaults and their checks, without running a binary."""

import pytest
from absl import app, flags

from keras_gn.study import StudyConfig
from keras_gn.train import TrainConfig, cli
from keras_gn.train.video import VideoConfig

RUNTIME = {"strategy", "num_gpus", "tpu", "cpu_devices"}
# The binaries' flags: the runtime ones and each config field's.
IMAGENET = RUNTIME | {
    "norm", "groups", "depth", "width", "dataset", "data_dir", "image_size", "epochs", "base_learning_rate",
    "base_batch", "decay_epochs", "weight_decay", "steps_per_epoch", "eval_steps", "synthetic_examples",
    "synthetic_classes", "model_dir", "mixed_precision", "jit_compile", "steps_per_execution", "seed", "stem",
    "images_per_replica", "data_format",
}  # fmt: skip
KINETICS = (IMAGENET - {"stem", "images_per_replica", "data_format"}) | {
    "frames", "sample_rate", "clips_per_replica", "eval_clips", "init_checkpoint",
}  # fmt: skip


def _flags(config_cls, argv=()):
    values = flags.FlagValues()
    cli.define_flags(config_cls, values)
    cli.define_runtime_flags(values)
    values(["binary", *argv])
    return values


@pytest.mark.parametrize("config_cls,expected", [(TrainConfig, IMAGENET), (VideoConfig, KINETICS)])
def test_binaries_keep_their_flags_and_defaults(config_cls, expected):
    values = _flags(config_cls)
    names = set(values)
    assert expected <= names
    # The recipe's further fields (SGD momentum, Weight Standardization, the padding, the warm-up), in
    # both binaries, and the images' virtual replicas.
    added = {"momentum", "weight_standardization", "padding", "warmup_epochs"}
    assert names - expected == added | ({"virtual_replicas"} if config_cls is TrainConfig else set())
    assert config_cls(**cli.values(config_cls, values)) == config_cls()


def test_video_config_has_the_shared_fields_and_none_of_the_images():
    """VideoConfig is RunConfig's fields and the clips': no hidden image
    fields (stem, images per replica, virtual replicas, layout)."""
    import dataclasses

    from keras_gn.train import RunConfig

    shared = {f.name for f in dataclasses.fields(RunConfig)}
    video = {f.name for f in dataclasses.fields(VideoConfig)}
    image = {f.name for f in dataclasses.fields(TrainConfig)}
    assert shared <= video and shared <= image
    assert image - shared == {"stem", "images_per_replica", "virtual_replicas", "data_format"}
    assert video - shared == {"frames", "sample_rate", "clips_per_replica", "eval_clips", "init_checkpoint"}
    assert VideoConfig().dataset == "kinetics400" and VideoConfig().base_learning_rate == 0.01
    assert RunConfig().dataset == "imagenet2012"  # the video defaults do not leak


def test_values_parse_types_lists_and_optionals():
    values = _flags(
        TrainConfig,
        ["--decay_epochs=1.5,3", "--steps_per_epoch=7", "--nojit_compile", "--norm=bn", "--base_learning_rate=0.2"],
    )
    config = TrainConfig(**cli.values(TrainConfig, values))
    assert config.decay_epochs == (1.5, 3.0) and config.steps_per_epoch == 7
    assert config.jit_compile is False and config.norm == "bn" and config.base_learning_rate == 0.2
    assert config.eval_steps is None


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--images_per_replica=0"], "--images_per_replica must be at least 1; got 0"),
        (["--epochs=-2"], "--epochs must be at least 1; got -2"),
        (["--decay_epochs=3,x"], "--decay_epochs takes floats; got 3,x"),
    ],
)
def test_bad_values_are_one_line_usage_errors(argv, message):
    values = _flags(TrainConfig, argv)
    with pytest.raises(app.UsageError, match=message):
        cli.values(TrainConfig, values)


def test_choices_are_checked_by_the_parser_and_for_list_items():
    with pytest.raises(flags.IllegalFlagValueError, match="bn\\|syncbn"):
        _flags(TrainConfig, ["--norm=gnn"])
    values = flags.FlagValues()
    cli.define_flags(StudyConfig, values)
    values(["binary", "--exhibits=table2,table9"])
    with pytest.raises(app.UsageError, match="--exhibits: table9 not among table2, exposure, table1, table3, all"):
        cli.values(StudyConfig, values)


def test_preset_fills_only_what_the_command_line_left():
    values = flags.FlagValues()
    cli.define_flags(StudyConfig, values)
    values(["binary", "--epochs=5"])
    got = cli.values(StudyConfig, values, preset={"epochs": 2, "seeds": 1})
    assert got["epochs"] == 5 and got["seeds"] == 1
