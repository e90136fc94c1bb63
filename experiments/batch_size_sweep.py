r"""The paper's ImageNet-classification study (Tables 1-3, Figures 1 and 4) on a
CPU, on the Fashion-MNIST subset bundled with keras_gn.

    python -m experiments.batch_size_sweep                      # the default study (README), ~27 min on 2 cores
    python -m experiments.batch_size_sweep --quick              # every exhibit in a 2-minute smoke run
    python -m experiments.batch_size_sweep --exhibits=table2    # Figure 1 / Table 2 only
    python -m experiments.batch_size_sweep --full               # all of Fashion-MNIST, 5 seeds (hours)

Writes report.md (each exhibit next to the paper's numbers, a line per claim),
figure1.png, figure4.png, table3.png and results.json to --output_dir.
Started again with the same --output_dir, it skips the runs already there.
The logic lives in keras_gn.train.study.
"""

import os

from absl import app, flags

from keras_gn.train import cli, study

DEFAULT = study.StudyConfig()
FLAGS = flags.FLAGS

cli.define_flags(study.StudyConfig)
flags.DEFINE_bool("quick", False, f"Smoke run of every exhibit, about 2 minutes: {study.QUICK}.")
flags.DEFINE_bool("full", False, f"Longer and on all of Fashion-MNIST: {study.FULL}.")


def config_from_flags():
    """StudyConfig from the command line; a preset (--quick, --full) sets
    what the command line did not."""
    if FLAGS.quick and FLAGS.full:
        raise app.UsageError("--quick and --full exclude each other.")
    preset = dict(study.QUICK if FLAGS.quick else study.FULL if FLAGS.full else {})
    if FLAGS.quick:
        preset["output_dir"] = DEFAULT.output_dir + "_quick"  # never mixed with the default study's runs
    if FLAGS.full:
        preset["output_dir"] = DEFAULT.output_dir + "_full"
    config = study.StudyConfig(**cli.values(study.StudyConfig, preset=preset))
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
