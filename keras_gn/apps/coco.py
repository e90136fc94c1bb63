r"""keras-gn-coco: Mask R-CNN with GN on COCO, on the TensorFlow Model Garden
(the paper's Tables 4-7: C4 and FPN).

    keras-gn-coco --experiment=maskrcnn_r50fpn_gn_coco --mode=train_and_eval \
        --strategy=mirrored --num_gpus=8 --data_dir=$COCO --model_dir=runs/maskrcnn_r50fpn_gn \
        --init_checkpoint=runs/r50_gn_backbone/ckpt

GN+WS (Weight Standardization in every convolution of backbone, FPN and box
and mask heads; beyond the paper): --experiment=maskrcnn_r50fpn_gn_ws_coco,
from a GN+WS backbone (keras-gn-imagenet --weight_standardization, then
keras-gn-convert-backbone). A smoke run on generated shapes (see the README) on a CPU with two logical
devices. A --model_dir holds one run: a killed run resumes from its last
checkpoint, a finished one is kept (--overwrite starts afresh). The logic
lives in keras_gn.detection.run.
"""

import os

from absl import app, flags

from keras_gn.apps import launch, runs
from keras_gn.train.strategy import STRATEGIES, is_chief

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "experiment", "maskrcnn_r50fpn_gn_coco", "A registered experiment (keras_gn.detection.configs.EXPERIMENTS)."
)
flags.DEFINE_enum("mode", "train_and_eval", ["train", "eval", "train_and_eval", "continuous_eval"], "What to run.")
flags.DEFINE_string(
    "model_dir", None, "Checkpoints, summaries, results.json; restart with the same one to resume.", required=True
)
flags.DEFINE_enum(
    "strategy", "mirrored", list(STRATEGIES), "tf.distribute strategy (auto: TPU, else all GPUs, else the CPU)."
)
flags.DEFINE_integer("num_gpus", 8, "Replicas for --strategy=mirrored (the paper: 8 x 1 image).", lower_bound=1)
flags.DEFINE_string("tpu", "", "TPU name or grpc:// address.")
flags.DEFINE_integer(
    "cpu_devices",
    0,
    "Split the CPU into this many logical devices (to run --strategy=mirrored without GPUs).",
    lower_bound=0,
)
flags.DEFINE_string(
    "data_dir",
    None,
    "TFRecords from the Model Garden's create_coco_tf_record (train*, val*) and instances_val2017.json.",
)
flags.DEFINE_string(
    "annotation_file", None, "COCO annotations of the evaluation split (default: data_dir/instances_val2017.json)."
)
flags.DEFINE_string("init_checkpoint", None, "Backbone checkpoint from keras-gn-convert-backbone ('' for none).")
flags.DEFINE_string("params_override", "", "Overrides of the experiment config, YAML or 'a.b=c,d.e=f'.")
flags.DEFINE_bool(
    "overwrite",
    False,
    "Start afresh in a --model_dir that holds a run, finished or killed: its checkpoints, summaries, "
    "params.yaml and results are removed first.",
)

# What a run writes in --model_dir (Orbit's checkpoints and summaries, the
# Model Garden's params.yaml, our results.json): all that --overwrite removes.
OUTPUTS = ("checkpoint", "ckpt-*", "train", "validation", "params.yaml", "results.json")


def _check_paths():
    if FLAGS.data_dir and "://" not in FLAGS.data_dir and not os.path.isdir(FLAGS.data_dir):
        raise app.UsageError(f"--data_dir={FLAGS.data_dir} does not exist; it should hold the COCO TFRecords.")
    if FLAGS.annotation_file and "://" not in FLAGS.annotation_file and not os.path.isfile(FLAGS.annotation_file):
        raise app.UsageError(f"--annotation_file={FLAGS.annotation_file} does not exist.")
    with launch.usage_errors():
        runs.check_writable(FLAGS.model_dir, "--model_dir", remote=True)  # Orbit writes through tf.io.gfile


def _main(argv):
    del argv
    from keras_gn import train
    from keras_gn.detection import run

    with launch.usage_errors(errors=(ValueError, KeyError)):
        params = run.experiment_params(
            FLAGS.experiment, FLAGS.data_dir, FLAGS.annotation_file, FLAGS.init_checkpoint, FLAGS.params_override
        )
    _check_paths()
    with launch.usage_errors():
        train.split_cpu(FLAGS.cpu_devices)
        strategy = train.make_strategy(FLAGS.strategy, FLAGS.num_gpus, FLAGS.tpu)
    if not is_chief(strategy):
        return run.run(params, FLAGS.mode, FLAGS.model_dir, strategy)
    with runs.claim(FLAGS.model_dir, OUTPUTS, overwrite=FLAGS.overwrite) as finished:
        if finished and "train" in FLAGS.mode:
            print(runs.finished_notice(finished))
            return None
        return run.run(params, FLAGS.mode, FLAGS.model_dir, strategy)


def main():
    launch.run(_main, name="keras-gn-coco", doc=__doc__)


if __name__ == "__main__":
    main()
