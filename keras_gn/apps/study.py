r"""keras-gn-study: the paper's ImageNet-classification study (Tables 1-3,
Figures 1 and 4), BN's error taken apart and an exposure exhibit, on a CPU,
on the Fashion-MNIST subset that ships inside keras_gn (no download).

    keras-gn-study                      # Table 2, BN's error, exposure (README): under 40 min on 2 cores
    keras-gn-study --exhibits=all       # and Tables 1 and 3, Figure 4
    keras-gn-study --quick              # every exhibit in a 2-minute smoke run, into ./classification_study_quick
    keras-gn-study --exhibits=table2    # Figure 1 / Table 2 (and BN's error taken apart) only
    keras-gn-study --full               # all of Fashion-MNIST, 5 seeds (hours), into ./classification_study_full
    keras-gn-study --dataset=cifar10 --data_dir=DIR   # a prepared TFDS data set (hours on a CPU)

Writes report.md (each exhibit next to the paper's numbers, a line per claim),
figure1.png, bn_error.png, exposure.png, figure4.png, table3.png and
results.json to --output_dir.
Started again with the same --output_dir, it skips the runs already there;
two studies cannot write into one --output_dir at once. The logic lives in
keras_gn.study.
"""

import os

from absl import app, flags

from keras_gn import study
from keras_gn.apps import launch, runs
from keras_gn.train import cli

DEFAULT = study.StudyConfig()
FLAGS = flags.FLAGS

cli.define_flags(study.StudyConfig)
flags.DEFINE_bool("quick", False, f"Smoke run of every exhibit, under 2 minutes on 2 cores: {study.QUICK}.")
flags.DEFINE_bool("full", False, f"Longer and on all of Fashion-MNIST: {study.FULL}.")


def config_from_flags():
    """StudyConfig from the command line, checked; a preset (--quick,
    --full) sets what the command line did not, and has its own default
    --output_dir, so that it never mixes with the default study's runs."""
    if FLAGS.quick and FLAGS.full:
        raise app.UsageError("--quick and --full exclude each other.")
    preset = dict(study.QUICK if FLAGS.quick else study.FULL if FLAGS.full else {})
    if FLAGS.quick:
        preset["output_dir"] = DEFAULT.output_dir + "_quick"
    if FLAGS.full:
        preset["output_dir"] = DEFAULT.output_dir + "_full"
    config = study.StudyConfig(**cli.values(study.StudyConfig, preset=preset))
    with launch.usage_errors():
        study.plan(config)
    with launch.usage_errors():
        runs.check_writable(config.output_dir, "--output_dir")
    return config


def _main(argv):
    del argv
    config = config_from_flags()
    # Only the lock: a finished study started again trains nothing anyway.
    with runs.claim(config.output_dir, outputs=()):
        study.run_study(config, log=lambda line: print(line, flush=True), on_result=study.write_report)
    print(open(os.path.join(config.output_dir, "report.md")).read())
    print(f"Report and plots: {config.output_dir}/")


def main():
    launch.run(_main, name="keras-gn-study", doc=__doc__)


if __name__ == "__main__":
    main()
