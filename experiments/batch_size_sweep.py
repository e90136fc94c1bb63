r"""The paper's batch-size study (Figure 1, Table 2) on a CPU, on Fashion-MNIST.

    python -m experiments.batch_size_sweep                     # the default study (README)
    python -m experiments.batch_size_sweep --quick             # a 2-minute smoke run
    python -m experiments.batch_size_sweep --full              # all 60k images, 10 epochs, 5 seeds (hours)
    python -m experiments.batch_size_sweep --norms=bn,gn,ln,in,brn --output_dir=runs/all

Writes results.md (the paper's Table 2 layout), error_vs_batch.png (its
Figure 1) and results.json to --output_dir. The logic lives in
keras_gn.train.batch_size_study.
"""

import dataclasses

from absl import app, flags

from keras_gn.train import batch_size_study as study

DEFAULT = study.StudyConfig()
FLAGS = flags.FLAGS

flags.DEFINE_list("norms", list(DEFAULT.norms), "Normalizations: bn, gn, ln, in, brn, syncbn (keras_gn.normalization names).")
flags.DEFINE_list("images_per_replica", [str(b) for b in DEFAULT.images_per_replica], "Batches of the normalization statistics.")
flags.DEFINE_integer("seeds", DEFAULT.seeds, "Runs per (norm, batch), with seeds 0..N-1.")
flags.DEFINE_string("dataset", DEFAULT.dataset, "fashion_mnist (bundled) or a prepared TFDS image data set, e.g. cifar10.")
flags.DEFINE_string("data_dir", None, "TFDS data folder for --dataset other than fashion_mnist.")
flags.DEFINE_integer("train_examples", DEFAULT.train_examples, "Training images (a fixed random subset).")
flags.DEFINE_integer("eval_examples", DEFAULT.eval_examples, "Evaluation images (a fixed random subset of the test split).")
flags.DEFINE_integer("epochs", DEFAULT.epochs, "Epochs, the same at every batch size.")
flags.DEFINE_integer("depth", DEFAULT.depth, "ResNet depth (8, 11, 14, 26, 50, ...).")
flags.DEFINE_integer("width", DEFAULT.width, "ResNet width (64 in ResNet-50).")
flags.DEFINE_enum("stem", DEFAULT.stem, ["imagenet", "small"], "imagenet: 7x7/2 + pool/2; small: 3x3/1.")
flags.DEFINE_integer("groups", DEFAULT.groups, "GN groups.")
flags.DEFINE_float("base_learning_rate", DEFAULT.base_learning_rate, "Learning rate at --base_batch images; scaled linearly.")
flags.DEFINE_integer("base_batch", DEFAULT.base_batch, "Batch of --base_learning_rate.")
flags.DEFINE_float("momentum", DEFAULT.momentum, "SGD momentum.")
flags.DEFINE_float("weight_decay", DEFAULT.weight_decay, "Weight decay on every weight.")
flags.DEFINE_bool("jit_compile", DEFAULT.jit_compile, "XLA-compile the training step.")
flags.DEFINE_string("output_dir", DEFAULT.output_dir, "Where results.md, error_vs_batch.png and results.json go.")
flags.DEFINE_bool("quick", False, f"Smoke run, about 2 minutes: {study.QUICK}.")
flags.DEFINE_bool("full", False, f"Longer and closer to converged: {study.FULL}.")


def main(argv):
    del argv
    if FLAGS.quick and FLAGS.full:
        raise app.UsageError("--quick and --full exclude each other.")
    try:
        batches = tuple(int(b) for b in FLAGS.images_per_replica)
    except ValueError:
        raise app.UsageError(f"--images_per_replica takes integers; got {FLAGS.images_per_replica}.") from None
    if any(b < 1 for b in batches):
        raise app.UsageError(f"--images_per_replica must be positive; got {batches}.")
    config = study.StudyConfig(
        norms=tuple(FLAGS.norms),
        images_per_replica=batches,
        **{f.name: FLAGS[f.name].value for f in dataclasses.fields(study.StudyConfig) if f.name not in ("norms", "images_per_replica")},
    )
    preset = study.QUICK if FLAGS.quick else study.FULL if FLAGS.full else {}
    # A preset sets what the user did not set on the command line.
    changes = {k: v for k, v in preset.items() if not FLAGS[k].present}
    config = dataclasses.replace(config, **changes)
    study.run_study(config, log=lambda line: print(line, flush=True))
    print(open(f"{config.output_dir}/results.md").read())
    print(f"Plot: {config.output_dir}/error_vs_batch.png")


if __name__ == "__main__":
    app.run(main)
