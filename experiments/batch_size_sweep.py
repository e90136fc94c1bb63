r"""The paper's ImageNet-classification study (Tables 1-3, Figures 1 and 4) on a
CPU, on the Fashion-MNIST subset bundled with keras_gn.

    python -m experiments.batch_size_sweep                      # the default study (README), about 27 minutes on 2 cores
    python -m experiments.batch_size_sweep --quick              # every exhibit in a 2-minute smoke run
    python -m experiments.batch_size_sweep --exhibits=table2    # Figure 1 / Table 2 only
    python -m experiments.batch_size_sweep --full               # all of Fashion-MNIST, 5 seeds (hours)

Writes report.md (each exhibit next to the paper's numbers, a line per claim),
figure1.png, figure4.png, table3.png and results.json to --output_dir.
Started again with the same --output_dir, it skips the runs already there.
The logic lives in keras_gn.train.study.
"""

import dataclasses
import os

from absl import app, flags

from keras_gn.train import study

DEFAULT = study.StudyConfig()
FLAGS = flags.FLAGS

HELP = {
    "exhibits": f"Exhibits to run: {', '.join(study.EXHIBITS)} (table1 includes Figure 4, table2 Figure 1).",
    "norms": "Table 2's normalizations (keras_gn.normalization names: bn, gn, ln, in, brn, syncbn).",
    "images_per_replica": "Table 2's batches of the normalization statistics.",
    "table3_groups": "Table 3: numbers of groups G (1 is LN); each must divide every layer's channels.",
    "table3_group_sizes": "Table 3: channels per group (1 is IN); each must divide every layer's channels.",
    "seeds": "Runs per cell, with seeds 0..N-1.",
    "dataset": "fashion_mnist_subset (bundled with keras_gn), fashion_mnist (all of it: Debian's "
    "dataset-fashion-mnist, $FASHION_MNIST_DIR or Keras's downloader) or a prepared TFDS image data set.",
    "data_dir": "TFDS data folder, for a TFDS --dataset.",
    "train_examples": "Training images (a fixed random subset).",
    "eval_examples": "Validation images (a fixed random subset of the test split).",
    "epochs": "Epochs, the same for every run whatever its batch.",
    "depth": "ResNet depth (8, 11, 14, 26, 50, ...).",
    "width": "ResNet width (64 in ResNet-50).",
    "stem": "imagenet: 7x7/2 + pool/2; small: 3x3/1.",
    "groups": "GN's number of groups outside Table 3.",
    "base_learning_rate": "Learning rate at --base_batch images; scaled linearly with the global batch.",
    "base_batch": "Batch of --base_learning_rate.",
    "momentum": "SGD momentum.",
    "weight_decay": "Weight decay on every weight, gamma and beta included.",
    "jit_compile": "XLA-compile the training step.",
    "workers": "Runs trained at once, each in its own process (0: one per CPU core, at most 4).",
    "output_dir": "Where report.md, the plots and results.json go.",
}


def _define_flags():
    # One flag per StudyConfig field, of the field's type and default.
    for field in dataclasses.fields(study.StudyConfig):
        default = getattr(DEFAULT, field.name)
        if isinstance(default, tuple):
            flags.DEFINE_list(field.name, [str(v) for v in default], HELP[field.name])
        elif isinstance(default, bool):
            flags.DEFINE_bool(field.name, default, HELP[field.name])
        elif isinstance(default, int):
            flags.DEFINE_integer(field.name, default, HELP[field.name])
        elif isinstance(default, float):
            flags.DEFINE_float(field.name, default, HELP[field.name])
        else:
            flags.DEFINE_string(field.name, default, HELP[field.name])


_define_flags()
flags.DEFINE_bool("quick", False, f"Smoke run of every exhibit, about 2 minutes: {study.QUICK}.")
flags.DEFINE_bool("full", False, f"Longer and on all of Fashion-MNIST: {study.FULL}.")

INTEGER_LISTS = ("images_per_replica", "table3_groups", "table3_group_sizes")


def config_from_flags():
    """StudyConfig from the command line; a preset (--quick, --full) sets
    what the command line did not."""
    if FLAGS.quick and FLAGS.full:
        raise app.UsageError("--quick and --full exclude each other.")
    values = {}
    for field in dataclasses.fields(study.StudyConfig):
        value = FLAGS[field.name].value
        if field.name in INTEGER_LISTS:
            try:
                value = [int(v) for v in value]
            except ValueError:
                raise app.UsageError(f"--{field.name} takes integers; got {','.join(value)}.") from None
            if any(v < 1 for v in value):
                raise app.UsageError(f"--{field.name} takes positive integers; got {','.join(map(str, value))}.")
        values[field.name] = tuple(value) if isinstance(value, list) else value
    preset = study.QUICK if FLAGS.quick else study.FULL if FLAGS.full else {}
    values.update({k: v for k, v in preset.items() if not FLAGS[k].present})
    if FLAGS.quick and not FLAGS["output_dir"].present:
        values["output_dir"] = DEFAULT.output_dir + "_quick"  # never mixed with the default study's runs
    if FLAGS.full and not FLAGS["output_dir"].present:
        values["output_dir"] = DEFAULT.output_dir + "_full"
    config = study.StudyConfig(**values)
    try:
        study.plan(config)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    return config


def main(argv):
    del argv
    config = config_from_flags()
    study.run_study(config, log=lambda line: print(line, flush=True))
    print(open(os.path.join(config.output_dir, "report.md")).read())
    print(f"Report and plots: {config.output_dir}/")


if __name__ == "__main__":
    app.run(main)
