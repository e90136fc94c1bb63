r"""Speed of keras_gn.GroupNormalization where users meet it: in a model.

    python -m benchmarks.model_speed                   # the study's ResNet and ResNet-50 GN
    python -m benchmarks.model_speed --quick           # a tiny ResNet, a smoke run
    python -m benchmarks.model_speed --output=docs/model_speed.json

Each network is built three times, alike but for its normalization layers:

* `keras_gn`: with `keras_gn.GroupNormalization`;
* `keras`: with `keras.layers.GroupNormalization` (same groups, epsilon 1e-5);
* `control`: `keras` again, a second model: the A/A control, whose ratio to
  `keras` shows the noise of the machine.

Two measurements, each side by side in this one process, interleaved round
by round (the order rotates every round) so that a noisy machine slows all
contenders alike:

1. **Training step**: the median time of `model.train_function` (one `fit`
   step: forward, backward, SGD update) over `--repeats` rounds, after two
   warm-up steps, in four cases: the batch `None` (as `fit` on arrays traces
   it) or static (`drop_remainder=True`), and `jit_compile` "auto" (no XLA
   on a CPU) or True.
2. **New input shapes**: models with open spatial sizes (`(None, None, C)`)
   are called at 6 new image sizes, one image each; the figure is the sum
   over the sizes of the first call's time, for `predict` and for an eager
   call `model(x)`, the median of 3 rounds with fresh models and the order
   rotated (the first round, a fresh process's, is reported too). A first
   call traces (and, where a program is compiled, compiles) what that shape
   needs.

Ratios are `keras / keras_gn` for steps (above 1: keras_gn is faster) and
`keras_gn / keras` for new shapes (above 1: keras_gn is slower); TARGETS has
the targets. The first table is what docs/speed.md reports.
"""

import json
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS


def _define_flags():
    # Defined when run as a program only: importing the module (tests, a
    # notebook) next to another benchmark defines no flag twice.
    flags.DEFINE_bool("quick", False, "A tiny ResNet, few rounds and sizes (a smoke run).")
    flags.DEFINE_list("networks", ["study", "resnet50"], "Networks: study (the study's ResNet) and/or resnet50.")
    flags.DEFINE_integer("repeats", 9, "Timed rounds per training-step figure; the median is reported.")
    flags.DEFINE_string("output", "model_speed.json", "Where to write the JSON results ('' for none).")


import numpy as np  # noqa: E402

CONTENDERS = ("keras_gn", "keras", "control")
CASES = [(batch, jit) for jit in ("auto", True) for batch in (None, "static")]
# keras / keras_gn for a training step, at least; keras_gn / keras for the
# summed first calls at new shapes, at most.
TARGETS = {"step": 1.0, "new_shapes": 1.2}


def networks(quick):
    """name -> (builder arguments, input shape, batch, new sizes)."""
    if quick:
        return {
            "tiny": (
                dict(depth=8, width=8, stem="small", groups=4, num_classes=10),
                (16, 16, 3),
                8,
                [12, 16, 20],
            ),
        }
    from keras_gn.study import StudyConfig

    study = StudyConfig()
    return {
        # The study's network and global batch at 32 images per replica.
        "study": (
            dict(depth=study.depth, width=study.width, stem=study.stem, groups=study.groups, num_classes=10),
            (28, 28, 1),
            study.replicas * 32,
            None,
        ),
        # ResNet-50 GN at ImageNet size, a detector's small batch.
        "resnet50": (dict(depth=50, groups=32, num_classes=1000), (224, 224, 3), 2, None),
    }


def new_sizes(name, image, quick):
    if quick:
        return [12, 16, 20]
    base = image[0]
    step = 4 if base < 64 else 32
    return [base - 2 * step + i * step for i in range(6) if i != 2] + [base + 4 * step]


def _norm(contender, groups):
    import keras

    if contender == "keras_gn":
        return "gn"
    # The same placement as "gn" (zero-init last norm of each block, the same
    # regularizer), Keras's class with the paper's epsilon.
    return lambda axis, zero_init=False, regularizer=None, name=None: keras.layers.GroupNormalization(
        groups=groups,
        axis=axis,
        epsilon=1e-5,
        gamma_initializer="zeros" if zero_init else "ones",
        gamma_regularizer=regularizer,
        beta_regularizer=regularizer,
        name=name,
    )


def build(contender, args, input_shape, seed=0):
    import keras

    from keras_gn.models import resnet

    keras.utils.set_random_seed(seed)
    args = dict(args)
    groups = args.pop("groups")
    norm = _norm(contender, groups)
    kwargs = {"groups": groups} if contender == "keras_gn" else {}
    return resnet(norm=norm, input_shape=input_shape, name=f"resnet{args['depth']}_{contender}", **args, **kwargs)


def _dataset(input_shape, batch, static, num_classes):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * 4, *input_shape)).astype(np.float32)
    y = rng.integers(0, num_classes, batch * 4)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=static).repeat()


def _compiled(contender, args, input_shape, jit):
    import keras

    model = build(contender, args, input_shape)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    model.make_train_function()
    return model


def rotate(names, round_index):
    """The contenders in this round's order: each goes first in turn."""
    k = round_index % len(names)
    return names[k:] + names[:k]


def training_steps(args, input_shape, batch, repeats, log=print):
    """The four cases of one network: a list of {"batch", "jit_compile", "ms"}."""
    rows = []
    for batch_kind, jit in CASES:
        static = batch_kind == "static"
        ds = _dataset(input_shape, batch, static, args["num_classes"])
        steps, first = {}, {}
        for name in CONTENDERS:
            model = _compiled(name, args, input_shape, jit)
            iterator = iter(ds)
            start = time.perf_counter()
            float(model.train_function(iterator)["loss"])  # traces and compiles
            first[name] = time.perf_counter() - start
            float(model.train_function(iterator)["loss"])
            steps[name] = (model, iterator)
        times = {name: [] for name in CONTENDERS}
        for r in range(repeats):
            for name in rotate(list(CONTENDERS), r):
                model, iterator = steps[name]
                start = time.perf_counter()
                float(model.train_function(iterator)["loss"])
                times[name].append((time.perf_counter() - start) * 1e3)
        ms = {name: statistics.median(t) for name, t in times.items()}
        row = {
            "batch": "None" if batch_kind is None else "static",
            "jit_compile": jit,
            "ms": ms,
            "first_step_s": first,
        }
        rows.append(row)
        log(
            f"  step batch={row['batch']:>6} jit_compile={str(jit):>4}: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
            + f"; keras/keras_gn {ms['keras'] / ms['keras_gn']:.2f}, keras/control {ms['keras'] / ms['control']:.2f}"
        )
        del steps
    return rows


def first_calls(args, channels, sizes, rounds=3, log=print):
    """Summed first-call seconds at new sizes, per contender, for `predict`
    and eager calls: the median over `rounds` rounds, each with fresh models
    and the contenders' order rotated (a first call's time depends on what
    ran just before it: TensorFlow's and Keras's own caches and tracing), and
    the first round alone (what a fresh process pays once: keras_gn traces
    its core's plain graph once per configuration)."""
    results = {}
    for kind in ("predict", "eager"):
        per_round = []
        for r in range(rounds):
            models = {name: build(name, args, (None, None, channels)) for name in CONTENDERS}
            seconds = {name: [] for name in CONTENDERS}
            rng = np.random.default_rng(1)
            for i, size in enumerate(sizes):
                x = rng.normal(size=(1, size, size, channels)).astype(np.float32)
                for name in rotate(list(CONTENDERS), i + r):
                    model = models[name]
                    start = time.perf_counter()
                    if kind == "predict":
                        model.predict(x, verbose=0)
                    else:
                        np.asarray(model(x))
                    seconds[name].append(time.perf_counter() - start)
            per_round.append(seconds)
        totals = {name: statistics.median(sum(s[name]) for s in per_round) for name in CONTENDERS}
        results[kind] = totals
        results[f"{kind}_first_round"] = {name: sum(per_round[0][name]) for name in CONTENDERS}
        results[f"{kind}_seconds"] = per_round
        log(
            f"  first calls at {len(sizes)} new sizes ({kind}, median of {rounds} rounds): "
            + ", ".join(f"{k} {v:.2f} s" for k, v in totals.items())
            + f"; keras_gn/keras {totals['keras_gn'] / totals['keras']:.2f}, "
            f"control/keras {totals['control'] / totals['keras']:.2f}"
        )
    return results


def run(quick=False, names=None, repeats=9, log=print):
    results = {}
    for name, (args, input_shape, batch, sizes) in networks(quick).items():
        if names and not quick and name not in names:
            continue
        sizes = sizes or new_sizes(name, input_shape, quick)
        log(f"{name}: input {input_shape}, batch {batch}, new sizes {sizes}")
        results[name] = {
            "input_shape": list(input_shape),
            "batch": batch,
            "sizes": sizes,
            "steps": training_steps(args, input_shape, batch, repeats, log),
            "new_shapes": first_calls(args, input_shape[-1], sizes, rounds=2 if quick else 3, log=log),
        }
    return results


def check(results):
    """(description, ratio, target, met) for every figure with a target."""
    lines = []
    for name, r in results.items():
        for row in r["steps"]:
            ratio = row["ms"]["keras"] / row["ms"]["keras_gn"]
            what = f"{name} training step, batch {row['batch']}, jit_compile={row['jit_compile']}"
            lines.append((what, ratio, TARGETS["step"], ratio >= TARGETS["step"]))
        for kind in ("predict", "eager"):
            totals = r["new_shapes"][kind]
            ratio = totals["keras_gn"] / totals["keras"]
            what = f"{name} first calls at {len(r['sizes'])} new sizes ({kind})"
            lines.append((what, ratio, TARGETS["new_shapes"], ratio <= TARGETS["new_shapes"]))
    return lines


def markdown(results):
    lines = [
        "| network | batch | jit_compile | keras_gn ms | keras ms | control ms | keras / keras_gn (target >= 1.0) "
        "| keras / control (A/A) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for row in r["steps"]:
            ms = row["ms"]
            lines.append(
                f"| {name} ({r['batch']} x {'x'.join(map(str, r['input_shape']))}) | {row['batch']} | "
                f"{row['jit_compile']} | {ms['keras_gn']:.1f} | {ms['keras']:.1f} | {ms['control']:.1f} | "
                f"{ms['keras'] / ms['keras_gn']:.2f}x | {ms['keras'] / ms['control']:.2f}x |"
            )
    lines += [
        "",
        "| network | first calls at new sizes | keras_gn s | keras s | control s | keras_gn / keras (target <= 1.2) "
        "| control / keras (A/A) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for kind in ("predict", "predict_first_round", "eager", "eager_first_round"):
            t = r["new_shapes"][kind]
            sizes = r["sizes"]
            lines.append(
                f"| {name} | {kind.replace('_', ' ')}, sizes {', '.join(map(str, sizes))} | {t['keras_gn']:.2f} | "
                f"{t['keras']:.2f} | {t['control']:.2f} | {t['keras_gn'] / t['keras']:.2f}x | "
                f"{t['control'] / t['keras']:.2f}x |"
            )
    met = check(results)
    lines += ["", f"Targets met: {sum(m for *_, m in met)} of {len(met)}."]
    lines += [f"- not met: {what}: {ratio:.2f}x (target {target})" for what, ratio, target, ok in met if not ok]
    return "\n".join(lines)


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    device = (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name
    repeats = 3 if FLAGS.quick else FLAGS.repeats
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    log(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {device}, {repeats} rounds per step figure")
    start = time.time()
    results = run(FLAGS.quick, FLAGS.networks, repeats, log)
    log(f"done in {time.time() - start:.0f} s")
    print(markdown(results))
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(
                {
                    "results": results,
                    "targets": TARGETS,
                    "tensorflow": tf.__version__,
                    "keras": keras.__version__,
                    "device": device,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
