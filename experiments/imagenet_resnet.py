r"""ResNet on ImageNet with BN, SyncBN, Batch Renorm, GN, LN or IN (the paper's Tables 1-3).

The paper's setting, 8 GPUs x 32 images, GN:

    python -m experiments.imagenet_resnet --norm=gn --images_per_replica=32 \
        --strategy=mirrored --num_gpus=8 --data_dir=gs://BUCKET/tfds --model_dir=/tmp/r50_gn_32

A smoke run on a laptop CPU (synthetic data, tiny ResNet, two logical devices):

    python -m experiments.imagenet_resnet --dataset=synthetic --depth=8 --width=8 --groups=4 \
        --stem=small --image_size=32 --synthetic_classes=10 --synthetic_examples=256 \
        --images_per_replica=8 --epochs=2 --strategy=mirrored --num_gpus=2 --cpu_devices=2 \
        --nojit_compile --model_dir=/tmp/gn_smoke

Restarting a run with the same --model_dir resumes it from its last finished
epoch. All logic lives in keras_gn.train; this file only parses flags.
"""

from absl import app, flags

FLAGS = flags.FLAGS

flags.DEFINE_string("norm", "gn", "Normalization: bn, syncbn, frozen_bn, brn, gn, ln, in, none.")
flags.DEFINE_integer("groups", 32, "Groups G for --norm=gn (the paper's best: 32).")
flags.DEFINE_integer("depth", 50, "ResNet depth: 50, 101 (the paper), or 8/11/14/26/152.")
flags.DEFINE_integer("width", 64, "Stem and first-stage width (64 in ResNet-50).")
flags.DEFINE_enum("stem", "imagenet", ["imagenet", "small"], "7x7/2 + max pool, or one 3x3/1 conv for small images.")
flags.DEFINE_integer("images_per_replica", 32, "Images per GPU/TPU core: the paper's 'batch per GPU' (32, 16, 8, 4, 2).")
flags.DEFINE_enum("strategy", "default", ["default", "one_device", "mirrored", "multi_worker_mirrored", "tpu"], "tf.distribute strategy.")
flags.DEFINE_integer("num_gpus", 1, "Replicas for --strategy=mirrored / one_device.")
flags.DEFINE_string("tpu", "", "TPU name or grpc:// address for TPUClusterResolver ('local' on a TPU VM).")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (to run --strategy=mirrored without GPUs).")
flags.DEFINE_string("dataset", "imagenet2012", "TFDS image-classification data set, or 'synthetic'.")
flags.DEFINE_string("data_dir", None, "TFDS data folder (prepared data; nothing is downloaded).")
flags.DEFINE_integer("image_size", 224, "Training and evaluation crop size, pixels.")
flags.DEFINE_enum("data_format", "channels_last", ["channels_last", "channels_first"], "Image layout.")
flags.DEFINE_integer("epochs", 100, "Training epochs (the paper: 100).")
flags.DEFINE_float("base_learning_rate", 0.1, "Learning rate for a total batch of 256, scaled linearly.")
flags.DEFINE_list("decay_epochs", ["30", "60", "90"], "Epochs at which the learning rate is divided by 10.")
flags.DEFINE_float("weight_decay", 1e-4, "Weight decay on all weights, gamma and beta included.")
flags.DEFINE_integer("steps_per_epoch", None, "Default: training examples / global batch.")
flags.DEFINE_integer("eval_steps", None, "Default: the whole evaluation split.")
flags.DEFINE_integer("synthetic_examples", 1024, "Training examples of --dataset=synthetic.")
flags.DEFINE_integer("synthetic_classes", 1000, "Classes of --dataset=synthetic.")
flags.DEFINE_string("model_dir", "/tmp/keras_gn_imagenet", "Checkpoints, TensorBoard logs, results.json.")
flags.DEFINE_enum("mixed_precision", "auto", ["auto", "none", "float16", "bfloat16"], "auto: bfloat16 on TPU, float16 on GPU, none on CPU.")
flags.DEFINE_bool("jit_compile", True, "XLA-compile the training step.")
flags.DEFINE_integer("steps_per_execution", 1, "Training steps per tf.function call (use > 1 on TPU).")
flags.DEFINE_integer("seed", 0, "Random seed.")


def main(argv):
    del argv
    import tensorflow as tf

    from keras_gn import train

    train.split_cpu(FLAGS.cpu_devices)
    strategy = train.make_strategy(FLAGS.strategy, FLAGS.num_gpus, FLAGS.tpu)
    precision = FLAGS.mixed_precision
    if precision == "auto":
        precision = "bfloat16" if FLAGS.strategy == "tpu" else "float16" if tf.config.list_logical_devices("GPU") else ""
    config = train.TrainConfig(
        norm=FLAGS.norm,
        groups=FLAGS.groups,
        depth=FLAGS.depth,
        width=FLAGS.width,
        stem=FLAGS.stem,
        images_per_replica=FLAGS.images_per_replica,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        image_size=FLAGS.image_size,
        data_format=FLAGS.data_format,
        epochs=FLAGS.epochs,
        base_learning_rate=FLAGS.base_learning_rate,
        decay_epochs=tuple(float(e) for e in FLAGS.decay_epochs),
        weight_decay=FLAGS.weight_decay,
        steps_per_epoch=FLAGS.steps_per_epoch,
        eval_steps=FLAGS.eval_steps,
        synthetic_examples=FLAGS.synthetic_examples,
        synthetic_classes=FLAGS.synthetic_classes,
        model_dir=FLAGS.model_dir,
        mixed_precision="" if precision == "none" else precision,
        jit_compile=FLAGS.jit_compile,
        steps_per_execution=FLAGS.steps_per_execution,
        seed=FLAGS.seed,
    )
    train.train(config, strategy)


if __name__ == "__main__":
    app.run(main)
