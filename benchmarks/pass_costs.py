r"""What one pass over a feature map costs under XLA on this machine, side by
side: the cost model behind the layer's forward speed (README, "Speed").

    python -m benchmarks.pass_costs
    python -m benchmarks.pass_costs --quick

For ResNet-50's stage shapes (channels_last, viewed as [N, positions, C]) it
times, as medians of interleaved rounds and as multiples of the output pass
`x * a + b` (the "floor": read x, write y):

* `read`: per-channel sums of x itself (`reduce_sum` over positions), the
  cheapest statistic, which Keras's GroupNormalization's mean is;
* `read_square`: per-channel sums of x * x (Keras's second moment, inexact
  when the mean is large against the spread);
* `shifted`: sums of (x - shift)**2 with a per-channel shift, fused into
  the reduction; and `shifted_matmul`, the same as `ones @ (x - shift)**2`
  (keras_gn's CPU sums): the pass that exact statistics need, twice;
* `keras_gn_stats`: keras_gn's two statistics passes alone; `keras_gn`,
  `keras`: the whole forward of each layer.
"""

import statistics
import time

from absl import app, flags

flags.DEFINE_bool("quick", False, "One small shape, few rounds.")
flags.DEFINE_integer("repeats", 21, "Rounds; the median is reported.")
FLAGS = flags.FLAGS

GROUPS = 32


def _contenders(x):
    import keras
    import tensorflow as tf

    from keras_gn import ops

    n, s, c = x.shape
    shift = tf.reduce_mean(x[:, :8], axis=1, keepdims=True)
    ones = tf.ones([n, 1, s])
    gamma, beta = tf.ones([c]), tf.zeros([c])
    layer = keras.layers.GroupNormalization(GROUPS, epsilon=1e-5)
    layer.build(x.shape)

    def stats(x):
        return ops._moments(x, GROUPS, True, ops._sum_by_matmul())[2]

    fns = {
        "floor": lambda x: x * gamma + beta,
        "read": lambda x: tf.reduce_sum(x, axis=1),
        "read_square": lambda x: tf.reduce_sum(x * x, axis=1),
        "shifted": lambda x: tf.reduce_sum(tf.square(x - shift), axis=1),
        "shifted_matmul": lambda x: tf.matmul(ones, tf.square(x - shift)),
        "keras_gn_stats": stats,
        "keras_gn": lambda x: ops.group_norm(x, gamma, beta, GROUPS),
        "keras": lambda x: layer(x),
    }
    return {k: tf.function(f, jit_compile=True) for k, f in fns.items()}


def measure(shape, repeats):
    """name -> median milliseconds for one [N, positions, C] shape."""
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    fns = _contenders(x)
    times = {k: [] for k in fns}
    for f in fns.values():
        np.asarray(f(x))
    for _ in range(repeats):
        for name, f in fns.items():
            start = time.perf_counter()
            np.asarray(f(x))
            times[name].append(time.perf_counter() - start)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def main(argv):
    del argv
    shapes = [(2, 196, 512)] if FLAGS.quick else [(8, 3136, 256), (8, 784, 512), (8, 196, 1024), (2, 3136, 256)]
    repeats = 5 if FLAGS.quick else FLAGS.repeats
    names = None
    for shape in shapes:
        ms = measure(shape, repeats)
        if names is None:
            names = [k for k in ms if k != "floor"]
            print("| [N, positions, C] | floor ms | " + " | ".join(f"{k} / floor" for k in names) + " |")
            print("|---|---|" + "---|" * len(names))
        ratios = " | ".join(f"{ms[k] / ms['floor']:.2f}" for k in names)
        print(f"| {list(shape)} | {ms['floor']:.2f} | {ratios} |", flush=True)


if __name__ == "__main__":
    app.run(main)
