r"""Mask R-CNN with GN on COCO, on the TensorFlow Model Garden (the paper's Tables 4-7: C4 and FPN).

    python -m experiments.coco_mask_rcnn --experiment=maskrcnn_r50fpn_gn_coco --mode=train_and_eval \
        --strategy=mirrored --num_gpus=8 --data_dir=$COCO --model_dir=runs/maskrcnn_r50fpn_gn \
        --init_checkpoint=runs/r50_gn_backbone/ckpt

A smoke run on generated shapes (see the README) on a CPU with two logical
devices. The logic lives in keras_gn.detection.run.
"""

from absl import app, flags

from keras_gn.train.strategy import STRATEGIES

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
flags.DEFINE_integer("num_gpus", 8, "Replicas for --strategy=mirrored (the paper: 8 x 1 image).")
flags.DEFINE_string("tpu", "", "TPU name or grpc:// address.")
flags.DEFINE_integer(
    "cpu_devices", 0, "Split the CPU into this many logical devices (to run --strategy=mirrored without GPUs)."
)
flags.DEFINE_string(
    "data_dir",
    None,
    "TFRecords from the Model Garden's create_coco_tf_record (train*, val*) and instances_val2017.json.",
)
flags.DEFINE_string(
    "annotation_file", None, "COCO annotations of the evaluation split (default: data_dir/instances_val2017.json)."
)
flags.DEFINE_string("init_checkpoint", None, "Backbone checkpoint from experiments/convert_backbone.py ('' for none).")
flags.DEFINE_string("params_override", "", "Overrides of the experiment config, YAML or 'a.b=c,d.e=f'.")


def main(argv):
    del argv
    from keras_gn import train
    from keras_gn.detection import run

    train.split_cpu(FLAGS.cpu_devices)
    strategy = train.make_strategy(FLAGS.strategy, FLAGS.num_gpus, FLAGS.tpu)
    params = run.experiment_params(
        FLAGS.experiment, FLAGS.data_dir, FLAGS.annotation_file, FLAGS.init_checkpoint, FLAGS.params_override
    )
    run.run(params, FLAGS.mode, FLAGS.model_dir, strategy)


if __name__ == "__main__":
    app.run(main)
