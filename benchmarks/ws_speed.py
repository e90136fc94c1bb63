r"""What Weight Standardization costs: a ResNet-50 GN training step with and
without WS, side by side in one process.

    python -m benchmarks.ws_speed                       # ResNet-50, batch 8, 224 px, XLA
    python -m benchmarks.ws_speed --quick               # ResNet-14, 64 px: a smoke run
    python -m benchmarks.ws_speed --output=docs/ws_speed.json
    python -m benchmarks.ws_speed --control --output=docs/ws_speed_control.json   # GN against GN

Both models are `keras_gn.models.resnet(depth, norm="gn")`, one with
`weight_standardization=True`, compiled the same way (SGD with momentum,
sparse cross-entropy, `jit_compile=True`: one XLA program per step); a step
is `train_on_batch` on a fixed random batch. After `--warmup` steps each, the
two are timed in alternation, `--repeats` rounds, the order swapped every
round so that a noisy machine slows both alike, and the median of the
per-round ratios (GN+WS / GN) is reported with the median times. WS adds the
standardization of every kernel (25.5 M weights in ResNet-50) and its
gradient to a step whose cost is the convolutions over the activations; the
target is a ratio of at most 1.10. `--control` times a second plain GN model
in WS's place (the same architecture, another instance): the ratio the
method gives when there is no difference, to read the first one against.
"""

import json
import statistics
import time

from absl import app, flags

flags.DEFINE_bool("quick", False, "ResNet-14, width 16, 64 px, 3 rounds (seconds).")
flags.DEFINE_integer("depth", 50, "ResNet depth.")
flags.DEFINE_integer("batch", 8, "Images per step.")
flags.DEFINE_integer("image_size", 224, "Image side, pixels.")
flags.DEFINE_integer("repeats", 7, "Timed rounds; the median is reported.", lower_bound=1)
flags.DEFINE_integer("warmup", 2, "Untimed steps per model after compiling.", lower_bound=0)
flags.DEFINE_string("output", "ws_speed.json", "Where to write the JSON results ('' for none).")
flags.DEFINE_bool("control", False, "A second plain GN model in WS's place: the ratio when nothing differs.")
FLAGS = flags.FLAGS

TARGET = 1.10


def _model(weight_standardization, depth, width, image_size, classes=1000):
    import keras

    from keras_gn.models import resnet

    keras.utils.set_random_seed(0)
    model = resnet(
        depth,
        norm="gn",
        width=width,
        groups=min(32, width),
        input_shape=(image_size, image_size, 3),
        num_classes=classes,
        weight_decay=1e-4,
        weight_standardization=weight_standardization,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    return model


def measure(depth, width, batch, image_size, repeats, warmup, log=print, control=False):
    """{"gn_ms", "gn_ws_ms", "ratio", "ratios"}: median step times and the
    median of the per-round ratios GN+WS / GN (`control`: a second plain GN
    model in WS's place)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, image_size, image_size, 3)).astype(np.float32)
    y = rng.integers(0, 1000, size=batch)
    models = {"gn": _model(False, depth, width, image_size), "gn_ws": _model(not control, depth, width, image_size)}
    for name, model in models.items():
        start = time.perf_counter()
        for _ in range(1 + warmup):
            model.train_on_batch(x, y)
        log(f"{name}: compiled and warmed up in {time.perf_counter() - start:.0f} s")
    second = "GN (control)" if control else "GN+WS"
    times = {name: [] for name in models}
    ratios = []
    for round_ in range(repeats):
        order = list(models) if round_ % 2 == 0 else list(reversed(models))
        for name in order:
            start = time.perf_counter()
            models[name].train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
        ratios.append(times["gn_ws"][-1] / times["gn"][-1])
        gn_ms, other_ms = times["gn"][-1] * 1e3, times["gn_ws"][-1] * 1e3
        log(f"round {round_ + 1}/{repeats}: GN {gn_ms:.0f} ms, {second} {other_ms:.0f} ms")
    return {
        "gn_ms": statistics.median(times["gn"]) * 1e3,
        "gn_ws_ms": statistics.median(times["gn_ws"]) * 1e3,
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }


def main(argv):
    del argv
    import tensorflow as tf

    if FLAGS.quick:
        depth, width, image_size, repeats = 14, 16, 64, 3
    else:
        depth, width, image_size, repeats = FLAGS.depth, 64, FLAGS.image_size, FLAGS.repeats
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    setting = f"ResNet-{depth} GN, batch {FLAGS.batch}, {image_size} px, XLA, {device}"
    if FLAGS.control:
        setting += "; control: plain GN in WS's place"
    print(f"Timing a training step of {setting}.", flush=True)
    result = measure(
        depth, width, FLAGS.batch, image_size, repeats, FLAGS.warmup, log=lambda s: print(s, flush=True),
        control=FLAGS.control,
    )  # fmt: skip
    verdict = "meets" if result["ratio"] <= TARGET else "misses"
    second = "GN (control)" if FLAGS.control else "GN+WS"
    print(
        f"GN {result['gn_ms']:.0f} ms, {second} {result['gn_ws_ms']:.0f} ms per step (medians of {repeats}); "
        f"{second} / GN = {result['ratio']:.3f}x (median ratio), {verdict} the {TARGET:.2f}x target."
    )
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(
                {"setting": setting, **result, "target": TARGET, "tensorflow": tf.__version__, "device": device},
                f,
                indent=1,
            )


if __name__ == "__main__":
    app.run(main)
