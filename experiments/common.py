"""Flags and start-up shared by the training binaries (imagenet_resnet, kinetics_i3d)."""

from absl import flags

from keras_gn.train.strategy import STRATEGIES

FLAGS = flags.FLAGS


def define_flags(defaults):
    """Defines the flags every training binary takes; `defaults` is a
    TrainConfig (or subclass) whose values become the flags' defaults."""
    d = defaults
    flags.DEFINE_string("norm", d.norm, "Normalization: bn, syncbn, frozen_bn, brn, gn, ln, in, none.")
    flags.DEFINE_integer("groups", d.groups, "Groups G for --norm=gn (the paper's best: 32).")
    flags.DEFINE_integer("depth", d.depth, "ResNet depth: 50, 101 (the paper), or 8/11/14/26/152.")
    flags.DEFINE_integer("width", d.width, "Stem and first-stage width (64 in ResNet-50).")
    flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy (auto: TPU, else all GPUs, else the CPU).")
    flags.DEFINE_integer("num_gpus", 1, "Replicas for --strategy=mirrored / one_device.")
    flags.DEFINE_string("tpu", "", "TPU name or grpc:// address for TPUClusterResolver ('local' on a TPU VM).")
    flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (to run --strategy=mirrored without GPUs).")
    flags.DEFINE_string("dataset", d.dataset, "TFDS data set, or 'synthetic'.")
    flags.DEFINE_string("data_dir", None, "TFDS data folder (prepared data; nothing is downloaded).")
    flags.DEFINE_integer("image_size", d.image_size, "Training and evaluation crop size, pixels.")
    flags.DEFINE_integer("epochs", d.epochs, "Training epochs.")
    flags.DEFINE_float("base_learning_rate", d.base_learning_rate, "Learning rate for a total batch of --base_batch, scaled linearly.")
    flags.DEFINE_integer("base_batch", d.base_batch, "The total batch of --base_learning_rate.")
    flags.DEFINE_list("decay_epochs", [str(e) for e in d.decay_epochs], "Epochs at which the learning rate is divided by 10.")
    flags.DEFINE_float("weight_decay", d.weight_decay, "Weight decay on all weights, gamma and beta included.")
    flags.DEFINE_integer("steps_per_epoch", None, "Default: training examples / global batch.")
    flags.DEFINE_integer("eval_steps", None, "Default: the whole evaluation split.")
    flags.DEFINE_integer("synthetic_examples", d.synthetic_examples, "Training examples of --dataset=synthetic.")
    flags.DEFINE_integer("synthetic_classes", d.synthetic_classes, "Classes of --dataset=synthetic.")
    flags.DEFINE_string("model_dir", d.model_dir, "Checkpoints, TensorBoard logs, results.json; restart with the same one to resume.")
    flags.DEFINE_enum("mixed_precision", "auto", ["auto", "none", "float16", "bfloat16"], "auto: bfloat16 on TPU, float16 on GPU, none on CPU.")
    flags.DEFINE_bool("jit_compile", d.jit_compile, "XLA-compile the training step.")
    flags.DEFINE_integer("steps_per_execution", d.steps_per_execution, "Training steps per tf.function call (use > 1 on TPU).")
    flags.DEFINE_integer("seed", d.seed, "Random seed.")


def common_config():
    """The shared flags as TrainConfig keyword arguments."""
    return dict(
        norm=FLAGS.norm, groups=FLAGS.groups, depth=FLAGS.depth, width=FLAGS.width, dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir, image_size=FLAGS.image_size, epochs=FLAGS.epochs,
        base_learning_rate=FLAGS.base_learning_rate, base_batch=FLAGS.base_batch,
        decay_epochs=tuple(float(e) for e in FLAGS.decay_epochs), weight_decay=FLAGS.weight_decay,
        steps_per_epoch=FLAGS.steps_per_epoch, eval_steps=FLAGS.eval_steps,
        synthetic_examples=FLAGS.synthetic_examples, synthetic_classes=FLAGS.synthetic_classes,
        model_dir=FLAGS.model_dir, jit_compile=FLAGS.jit_compile, steps_per_execution=FLAGS.steps_per_execution,
        seed=FLAGS.seed,
    )


def start():
    """Splits the CPU if asked, makes the strategy and picks the precision.
    Returns (strategy, mixed_precision) for TrainConfig."""
    import tensorflow as tf

    from keras_gn import train

    train.split_cpu(FLAGS.cpu_devices)
    strategy = train.make_strategy(FLAGS.strategy, FLAGS.num_gpus, FLAGS.tpu)
    precision = FLAGS.mixed_precision
    if precision == "auto":
        precision = "bfloat16" if isinstance(strategy, tf.distribute.TPUStrategy) else "float16" if tf.config.list_logical_devices("GPU") else ""
    return strategy, "" if precision == "none" else precision
