r"""Speed of keras_gn.GroupNormalization against the alternatives, side by side.

    python -m benchmarks.layer_speed                  # ResNet-50 shapes + video
    python -m benchmarks.layer_speed --quick          # two small shapes, seconds
    python -m benchmarks.layer_speed --output=layer_speed.json
    python -m benchmarks.layer_speed --export_stablehlo=hlo/   # the XLA programs, for another machine

It runs on whatever device TensorFlow places its tensors on: a GPU when
TensorFlow sees one, else the CPU. `--export_stablehlo=DIR` times nothing: it
writes the XLA program of every contender (forward, and forward+backward) and
of a ResNet-50 training step with GN and with BN (batch 32, 224 px, float32
and mixed float16) as StableHLO text, compiled for an accelerator (keras_gn's
core with its GPU/TPU sums), with `manifest.json`; `benchmarks/time_stablehlo.py`
times them on any machine with JAX, e.g. a GPU one without TensorFlow.

Every contender runs in this one process, interleaved round by round, and each
figure is the median over `--repeats` rounds, so that a noisy machine slows
all of them alike. The table reports times and ratios:

* `keras_gn`: our layer (its core is XLA-compiled in either column).
* `keras`: `keras.layers.GroupNormalization` (epsilon=1e-5, same groups).
* `paper`: the paper's TensorFlow snippet (reshape to [N, G, C/G, ...],
  `tf.nn.moments`, normalise, reshape back, gamma and beta), run in the
  paper's channels-first layout on a tensor of the same size.
* `floor`: one elementwise pass `x * a + b` with per-channel a and b, the
  least any normalization layer has to do.
* `torch`: `torch.nn.GroupNorm` on a channels_last tensor, when torch imports.

"XLA" means the timed function is `tf.function(jit_compile=True)`; "no XLA"
means a plain `tf.function` (our layer still runs its compiled core there).
Forward+backward computes the gradients of x, gamma and beta of
sum(y * dy) for a fixed random dy.
"""

import json
import statistics
import sys
import time

from absl import app, flags

flags.DEFINE_bool("quick", False, "Two small shapes and few repeats (a smoke run).")
flags.DEFINE_integer("repeats", 15, "Timed rounds per figure; the median is reported.")
flags.DEFINE_integer("groups", 32, "Groups G.")
flags.DEFINE_bool("torch", True, "Time torch.nn.GroupNorm too, when torch imports.")
flags.DEFINE_string("output", "layer_speed.json", "Where to write the JSON results ('' for none).")
flags.DEFINE_string("export_stablehlo", "", "Write the XLA programs as StableHLO to this folder instead of timing.")
flags.DEFINE_bool("export_resnet", True, "With --export_stablehlo: also ResNet-50 training steps (GN and BN).")
FLAGS = flags.FLAGS

import numpy as np  # noqa: E402

RESNET50_STAGES = [(56, 56, 256), (28, 28, 512), (14, 14, 1024), (7, 7, 2048)]


def benchmark_shapes(quick):
    if quick:
        return [(2, 14, 14, 64), (2, 4, 7, 7, 64)]
    shapes = [(n, h, w, c) for n in (8, 2) for (h, w, c) in RESNET50_STAGES]
    return shapes + [(4, 8, 56, 56, 64)]


def _tf_contenders(shape, groups):
    """name -> (forward, forward_backward) TF callables on fresh inputs."""
    import keras
    import tensorflow as tf

    import keras_gn

    rng = np.random.default_rng(0)
    channels = shape[-1]
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    dy = tf.constant(rng.normal(size=shape).astype(np.float32))
    x_cf = tf.constant(np.moveaxis(x.numpy(), -1, 1))
    dy_cf = tf.constant(np.moveaxis(dy.numpy(), -1, 1))

    def layer_pair(layer):
        layer.build(shape)
        weights = layer.trainable_variables

        def fwd(x=x):
            return layer(x)

        def fwd_bwd(x=x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(y * dy)
            return tape.gradient(loss, [x] + weights)

        return fwd, fwd_bwd

    gamma = tf.Variable(tf.ones([channels]))
    beta = tf.Variable(tf.zeros([channels]))

    def paper(x):
        # The paper's snippet, channels first: x is [N, C, *spatial].
        n, c = x.shape[0], x.shape[1]
        spatial = list(x.shape[2:])
        v = tf.reshape(x, [n, groups, c // groups] + spatial)
        mean, var = tf.nn.moments(v, list(range(2, len(v.shape))), keepdims=True)
        v = (v - mean) / tf.sqrt(var + 1e-5)
        v = tf.reshape(v, [n, c] + spatial)
        param_shape = [1, c] + [1] * len(spatial)
        return v * tf.reshape(gamma, param_shape) + tf.reshape(beta, param_shape)

    def paper_fwd():
        return paper(x_cf)

    def paper_fwd_bwd():
        with tf.GradientTape() as tape:
            tape.watch(x_cf)
            loss = tf.reduce_sum(paper(x_cf) * dy_cf)
        return tape.gradient(loss, [x_cf, gamma, beta])

    def floor_fwd():
        return x * gamma + beta

    def floor_fwd_bwd():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum((x * gamma + beta) * dy)
        return tape.gradient(loss, [x, gamma, beta])

    return {
        "keras_gn": layer_pair(keras_gn.GroupNormalization(groups=groups)),
        "keras": layer_pair(keras.layers.GroupNormalization(groups=groups, epsilon=1e-5)),
        "paper": (paper_fwd, paper_fwd_bwd),
        "floor": (floor_fwd, floor_fwd_bwd),
    }


def _torch_contender(shape, groups):
    import os

    # torch's OpenMP threads otherwise keep spinning for a while after each
    # call, taking the cores from whichever TensorFlow contender runs next.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d if len(shape) == 5 else None
    channels_first = tuple([shape[0], shape[-1]] + list(shape[1:-1]))
    x = torch.tensor(rng.normal(size=channels_first).astype(np.float32))
    dy = torch.tensor(rng.normal(size=channels_first).astype(np.float32))
    if fmt is not None:
        x, dy = x.contiguous(memory_format=fmt), dy.contiguous(memory_format=fmt)
    x.requires_grad_(True)
    layer = torch.nn.GroupNorm(groups, shape[-1], eps=1e-5)
    if torch.cuda.is_available():
        x, dy, layer = x.detach().cuda().requires_grad_(True), dy.cuda(), layer.cuda()

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def fwd():
        with torch.no_grad():
            y = layer(x)
        sync()
        return y

    def fwd_bwd():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        layer(x).backward(dy)
        sync()
        return x.grad

    return fwd, fwd_bwd


def _median_ms(callables, repeats):
    """Runs the callables round-robin; returns name -> median milliseconds."""
    import tensorflow as tf

    # On a GPU, TensorFlow returns before its kernels end: wait for them.
    sync = tf.test.experimental.sync_devices if tf.config.list_logical_devices("GPU") else (lambda: None)
    times = {name: [] for name in callables}
    for fn in callables.values():  # compile and warm up
        fn()
        fn()
    for _ in range(repeats):
        for name, fn in callables.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def run(shapes, groups, repeats, log=print, torch=True):
    """Measures every contender on every shape. Returns a list of rows."""
    import tensorflow as tf

    rows = []
    for shape in shapes:
        contenders = _tf_contenders(shape, groups)
        torch_pair = _torch_contender(shape, groups) if torch else None
        for mode_index, mode in enumerate(("forward", "forward+backward")):
            for xla in (True, False):
                callables = {name: tf.function(pair[mode_index], jit_compile=xla) for name, pair in contenders.items()}
                if torch_pair is not None and xla:
                    callables["torch"] = torch_pair[mode_index]
                medians = _median_ms(callables, repeats)
                row = {"shape": list(shape), "mode": mode, "xla": xla, "ms": medians}
                rows.append(row)
                log(
                    f"{str(shape):>22} {mode:>16} {'XLA' if xla else 'no XLA':>6}: "
                    + ", ".join(f"{k} {v:.2f} ms" for k, v in medians.items())
                )
    return rows


def summarize(rows):
    """Median over shapes of keras/keras_gn and keras_gn/floor, per setting."""
    summary = []
    for mode in ("forward", "forward+backward"):
        for xla in (True, False):
            sel = [r["ms"] for r in rows if r["mode"] == mode and r["xla"] == xla]
            if not sel:
                continue
            entry = {
                "mode": mode,
                "xla": xla,
                "speedup_vs_keras": statistics.median(m["keras"] / m["keras_gn"] for m in sel),
                "speedup_vs_paper": statistics.median(m["paper"] / m["keras_gn"] for m in sel),
                "keras_gn_over_floor": statistics.median(m["keras_gn"] / m["floor"] for m in sel),
                "keras_over_floor": statistics.median(m["keras"] / m["floor"] for m in sel),
            }
            if all("torch" in m for m in sel):
                entry["speedup_vs_torch"] = statistics.median(m["torch"] / m["keras_gn"] for m in sel)
            summary.append(entry)
    return summary


# The CPU targets (exactness first): forward under XLA at least as fast as
# keras.layers.GroupNormalization, forward+backward under XLA 1.25 times.
TARGETS = {("forward", True): 1.0, ("forward+backward", True): 1.25}


def markdown(rows, summary):
    names = list(rows[0]["ms"])
    lines = [
        "| shape | pass | XLA | " + " | ".join(f"{n} ms" for n in names) + " | keras / keras_gn | keras_gn / floor |",
        "|---|---|---|" + "---|" * len(names) + "---|---|",
    ]
    for r in rows:
        m = r["ms"]
        lines.append(
            f"| {r['shape']} | {r['mode']} | {'yes' if r['xla'] else 'no'} | "
            + " | ".join(f"{m[n]:.2f}" if n in m else "" for n in names)
            + f" | {m['keras'] / m['keras_gn']:.2f}x | {m['keras_gn'] / m['floor']:.2f}x |"
        )
    lines += [
        "",
        "Median over the shapes:",
        "",
        "| pass | XLA | keras_gn speed-up over keras | target | over the paper's snippet "
        "| keras_gn / floor | keras / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        target = TARGETS.get((s["mode"], s["xla"]))
        lines.append(
            f"| {s['mode']} | {'yes' if s['xla'] else 'no'} | {s['speedup_vs_keras']:.2f}x | "
            f"{f'>= {target:.2f}x' if target else ''} | {s['speedup_vs_paper']:.2f}x | "
            f"{s['keras_gn_over_floor']:.2f}x | {s['keras_over_floor']:.2f}x |"
        )
    return "\n".join(lines)


def _stablehlo(fn, name, folder, manifest):
    """Writes fn's XLA program (no arguments: every input is captured) as
    StableHLO text to folder/name.mlir and records it in the manifest."""
    import os

    import tensorflow as tf

    compiled = tf.function(lambda: fn(), jit_compile=True, autograph=False)  # defaults bound, no arguments
    text = compiled.experimental_get_compiler_ir()(stage="stablehlo")
    path = os.path.join(folder, name + ".mlir")
    with open(path, "w") as f:
        f.write(text)
    manifest.append({"file": name + ".mlir", "bytes": len(text)})
    return path


def _resnet50_step(norm, policy, batch=32, size=224):
    """A whole training step of ResNet-50 (forward, loss, gradients, SGD with
    momentum), every input captured."""
    import keras
    import tensorflow as tf

    from keras_gn.models import resnet50

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = resnet50(norm=norm, weight_decay=1e-4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    if policy == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(batch, size, size, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 1000, size=batch))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True)) + tf.add_n(model.losses)
            if policy == "mixed_float16":
                loss = optimizer.scale_loss(loss)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def export(folder, shapes, groups, resnet=True, log=print):
    """Writes the StableHLO programs and manifest.json to folder."""
    import json as json_module
    import os

    from keras_gn import ops

    os.makedirs(folder, exist_ok=True)
    manifest = []
    ops.set_cpu_sums(False)  # the accelerator branch of the core
    try:
        for shape in shapes:
            tag = "x".join(map(str, shape))
            for name, pair in _tf_contenders(shape, groups).items():
                for mode, fn in zip(("forward", "forward_backward"), pair):
                    _stablehlo(fn, f"{tag}_{name}_{mode}", folder, manifest)
                    manifest[-1].update(shape=list(shape), contender=name, mode=mode)
                    log(f"{manifest[-1]['file']} ({manifest[-1]['bytes'] // 1000} kB)")
        if resnet:
            for norm in ("gn", "bn"):
                for policy in ("float32", "mixed_float16"):
                    _stablehlo(_resnet50_step(norm, policy), f"resnet50_{norm}_{policy}_train_step", folder, manifest)
                    manifest[-1].update(
                        contender=f"resnet50_{norm}", mode=f"train_step_{policy}", shape=[32, 224, 224, 3]
                    )
                    log(f"{manifest[-1]['file']} ({manifest[-1]['bytes'] // 1000} kB)")
    finally:
        ops.set_cpu_sums(None)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json_module.dump(manifest, f, indent=1)


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    if FLAGS.export_stablehlo:
        export(
            FLAGS.export_stablehlo,
            benchmark_shapes(FLAGS.quick),
            FLAGS.groups,
            FLAGS.export_resnet,
            log=lambda s: print(s, file=sys.stderr, flush=True),
        )
        print(
            f"StableHLO programs in {FLAGS.export_stablehlo}/; time them with "
            f"python benchmarks/time_stablehlo.py {FLAGS.export_stablehlo}"
        )
        return
    device = (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name

    shapes = benchmark_shapes(FLAGS.quick)
    repeats = 3 if FLAGS.quick else FLAGS.repeats
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {device}, groups={FLAGS.groups}, "
        f"{repeats} rounds per figure, {len(shapes)} shapes",
        file=sys.stderr,
    )
    rows = run(shapes, FLAGS.groups, repeats, log=lambda s: print(s, file=sys.stderr, flush=True), torch=FLAGS.torch)
    summary = summarize(rows)
    print(markdown(rows, summary))
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"rows": rows, "summary": summary, "tensorflow": tf.__version__, "device": device}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
