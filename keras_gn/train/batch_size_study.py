"""The paper's batch-size study (Figure 1, Table 2) at a scale a CPU can run.

For every normalization in `norms` and every batch in `images_per_replica`,
trains the same small ResNet from scratch with several seeds, on one replica
by default (so the batch of the normalization statistics is
`images_per_replica`; under a `strategy` with N replicas, as on the paper's 8
GPUs, each replica gets `images_per_replica` images of a global batch N times
larger and the learning rate follows the global batch), for
the same number of epochs at every batch, with the learning rate scaled
linearly with the batch and divided by 10 at 30%, 60% and 90% of training
(the paper's 30/60/90 of 100 epochs). BN is evaluated with its moving
statistics, as a user would deploy it. Writes to `output_dir`:

- `results.json`: one object per run (norm, images_per_replica, seed,
  val_error as a fraction, ...);
- `results.md`: a table shaped like the paper's Table 2 (mean and spread of
  the validation error in %, and the GN - BN row);
- `error_vs_batch.png`: error against images per replica, the paper's
  Figure 1 style (log2 axis, one line per method, the spread as a band).
"""

import dataclasses
import json
import os
import statistics
import time

import numpy as np

__all__ = ["StudyConfig", "QUICK", "FULL", "run_study", "load_data", "steps_per_epoch"]

PAPER_TABLE_2 = {
    "bn": {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7},
    "gn": {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1},
}
LABELS = {"bn": "BN", "gn": "GN", "ln": "LN", "in": "IN", "brn": "BRN", "syncbn": "SyncBN", "frozen_bn": "BN*", "none": "none"}


@dataclasses.dataclass
class StudyConfig:
    """What the default run trains. See the README for why these values."""

    norms: tuple = ("bn", "gn")
    images_per_replica: tuple = (32, 16, 8, 4, 2)
    seeds: int = 3
    dataset: str = "fashion_mnist"
    data_dir: "str | None" = None
    train_examples: int = 6_000  # sized so that the default study runs in under 20 minutes on 2 cores
    eval_examples: int = 5_000
    epochs: int = 3
    depth: int = 14
    width: int = 16
    stem: str = "imagenet"  # 7x7/2 + pool/2: 28 px -> 7, 4, 2, 1 in the four stages
    groups: int = 8  # the paper's Table 3: G = 8 is within 0.3 points of G = 32
    base_learning_rate: float = 0.1
    base_batch: int = 32  # lr = base_learning_rate * images_per_replica / base_batch
    momentum: float = 0.9
    weight_decay: float = 1e-4
    jit_compile: bool = False
    output_dir: str = "batch_size_study"


QUICK = dict(images_per_replica=(32, 8, 2), seeds=1, train_examples=1000, eval_examples=1000, epochs=1)
FULL = dict(seeds=5, train_examples=60_000, eval_examples=10_000, epochs=10)


def steps_per_epoch(config, images_per_replica, replicas=1):
    """Optimizer steps in one epoch at this batch (the last partial batch is
    dropped: a BN batch of one image has no variance)."""
    return config.train_examples // (images_per_replica * replicas)


def load_data(config):
    """(x_train, y_train), (x_eval, y_eval), num_classes, source: float32
    images [N, H, W, C] standardised with the training set's statistics."""
    if config.dataset == "fashion_mnist":
        from keras_gn.data.fashion_mnist import load_fashion_mnist

        (x_train, y_train), (x_eval, y_eval), source = load_fashion_mnist()
        x_train, x_eval = x_train[..., None], x_eval[..., None]
        num_classes = 10
    else:
        import tensorflow_datasets as tfds

        from keras_gn.data import dataset_info
        from keras_gn.data.images import load_tfds

        info = dataset_info(config.dataset, config.data_dir)
        load = lambda split: tfds.as_numpy(load_tfds(config.dataset, split, config.data_dir, as_supervised=True, batch_size=-1))
        x_train, y_train = load("train")
        x_eval, y_eval = load(info.eval_split)
        num_classes = info.num_classes
        source = f"tfds:{config.dataset}"
    # A fixed, class-mixed subset: the first examples of one permutation.
    rng = np.random.default_rng(1234)
    train_index = rng.permutation(len(x_train))[: config.train_examples]
    eval_index = rng.permutation(len(x_eval))[: config.eval_examples]
    x_train, y_train = x_train[train_index], y_train[train_index]
    x_eval, y_eval = x_eval[eval_index], y_eval[eval_index]
    if len(x_train) < config.train_examples or len(x_eval) < config.eval_examples:
        raise ValueError(
            f"{config.dataset} has {len(x_train)} training and {len(x_eval)} evaluation examples; "
            f"asked for {config.train_examples} and {config.eval_examples}."
        )
    mean, std = float(x_train.mean()), float(x_train.std())
    standardise = lambda x: ((x.astype(np.float32) - mean) / std).astype(np.float32)
    return (standardise(x_train), y_train.astype(np.int64)), (standardise(x_eval), y_eval.astype(np.int64)), num_classes, source


def train_one(config, data, norm, images_per_replica, seed, strategy=None):
    """Trains one model; returns its result dict (val_error in [0, 1])."""
    import keras
    import tensorflow as tf

    from keras_gn.models import resnet
    from keras_gn.train.classification import learning_rate_schedule

    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    global_batch = images_per_replica * replicas

    (x_train, y_train), (x_eval, y_eval), num_classes, _ = data
    keras.utils.set_random_seed(seed)
    steps = steps_per_epoch(config, images_per_replica, replicas)
    if steps < 1:
        raise ValueError(
            f"images_per_replica={images_per_replica} x {replicas} replica(s) is more than the "
            f"{config.train_examples} training examples."
        )
    with strategy.scope():
        model = resnet(
            depth=config.depth,
            norm=norm,
            num_classes=num_classes,
            input_shape=x_train.shape[1:],
            width=config.width,
            stem=config.stem,
            weight_decay=config.weight_decay,
            **({"groups": config.groups} if norm == "gn" else {}),
        )
        schedule = learning_rate_schedule(
            config.base_learning_rate,
            config.base_batch,
            [f * config.epochs for f in (0.3, 0.6, 0.9)],
            global_batch,
            steps,
        )
        model.compile(
            optimizer=keras.optimizers.SGD(schedule, momentum=config.momentum),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=config.jit_compile,
            # Several steps per call fail under MirroredStrategy in Keras 3.15
            # with TF 2.20 ("You must feed a value for placeholder tensor").
            steps_per_execution=min(64, steps) if replicas == 1 else 1,
        )
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(global_batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    start = time.time()
    history = model.fit(train_ds, epochs=config.epochs, verbose=0, shuffle=False)
    train_seconds = time.time() - start
    # BN in inference mode: its moving statistics, as deployed.
    evaluation = model.evaluate(x_eval, y_eval, batch_size=500, verbose=0, return_dict=True)
    return {
        "norm": norm,
        "images_per_replica": int(images_per_replica),
        "replicas": int(replicas),
        "seed": int(seed),
        "val_error": 1.0 - float(evaluation["accuracy"]),
        "train_loss": float(history.history["loss"][-1]),
        "train_error": 1.0 - float(history.history["accuracy"][-1]),
        # Read from the optimizer's own schedule: what training really used.
        "learning_rate": float(schedule(0)),
        "final_learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        "steps_per_epoch": steps,
        "optimizer_steps": int(model.optimizer.iterations.numpy()),
        "train_seconds": round(train_seconds, 1),
    }


def run_study(config, log=print, strategy=None):
    """Runs every (norm, images_per_replica, seed), under `strategy` if given
    (default: one replica); writes and returns the results."""
    os.makedirs(config.output_dir, exist_ok=True)
    data = load_data(config)
    log(
        f"{config.dataset} from {data[3]}: {len(data[0][0])} training / {len(data[1][0])} evaluation images; "
        f"ResNet-{config.depth} width {config.width}; {config.epochs} epochs per run"
    )
    runs = [(n, b, s) for s in range(config.seeds) for b in config.images_per_replica for n in config.norms]
    results, start = [], time.time()
    for i, (norm, batch, seed) in enumerate(runs, 1):
        result = train_one(config, data, norm, batch, seed, strategy)
        results.append(result)
        elapsed = time.time() - start
        log(
            f"[{i}/{len(runs)}] {norm:>4} images_per_replica={batch:<3} seed={seed}: "
            f"val error {100 * result['val_error']:5.2f}% (train {100 * result['train_error']:5.2f}%, "
            f"lr {result['learning_rate']:.4g}, {result['optimizer_steps']} steps, {result['train_seconds']:.0f} s); "
            f"about {elapsed / i * (len(runs) - i) / 60:.1f} min left"
        )
        # Written after every run, so an interrupted study keeps what it has.
        write_outputs(results, config)
    return results


def summarize(results):
    """{norm: {images_per_replica: (mean %, std %, n)}}."""
    table = {}
    for r in results:
        table.setdefault(r["norm"], {}).setdefault(r["images_per_replica"], []).append(100 * r["val_error"])
    return {
        norm: {b: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v)) for b, v in cells.items()}
        for norm, cells in table.items()
    }


def markdown_table(results, config):
    summary = summarize(results)
    batches = sorted({r["images_per_replica"] for r in results}, reverse=True)
    head = "| images per replica | " + " | ".join(str(b) for b in batches) + " |"
    lines = [head, "|---|" + "---|" * len(batches)]
    for norm, cells in summary.items():
        row = [f"{cells[b][0]:.2f} ± {cells[b][1]:.2f}" if b in cells else "" for b in batches]
        lines.append(f"| {LABELS.get(norm, norm)} | " + " | ".join(row) + " |")
    if "bn" in summary and "gn" in summary:
        diff = [
            f"{summary['gn'][b][0] - summary['bn'][b][0]:+.2f}" if b in summary["gn"] and b in summary["bn"] else ""
            for b in batches
        ]
        lines.append("| GN − BN | " + " | ".join(diff) + " |")
    seeds = sorted({r["seed"] for r in results})
    lines += [
        "",
        f"Validation error (%) of {config.dataset} ({config.eval_examples} images), mean ± standard deviation over "
        f"{len(seeds)} seed(s); ResNet-{config.depth} (width {config.width}, {config.stem} stem), "
        f"{config.train_examples} training images, {config.epochs} epochs, lr {config.base_learning_rate} x images per step / "
        f"{config.base_batch}, GN with G = {config.groups}; "
        f"{_replicas(results)}.",
        "",
        "The paper (ResNet-50, ImageNet, 8 GPUs, Table 2), error (%):",
        "",
        "| images per GPU | 32 | 16 | 8 | 4 | 2 |",
        "|---|---|---|---|---|---|",
        "| BN | 23.6 | 23.7 | 24.8 | 27.3 | 34.7 |",
        "| GN | 24.1 | 24.2 | 24.0 | 24.2 | 24.1 |",
        "| GN − BN | +0.5 | +0.5 | −0.8 | −3.1 | −10.6 |",
    ]
    return "\n".join(lines) + "\n"


def _replicas(results):
    replicas = sorted({r.get("replicas", 1) for r in results})
    return "one replica" if replicas == [1] else f"{'/'.join(map(str, replicas))} replicas, each with images per replica"


def plot(results, path):
    # A Figure without pyplot: no GUI backend needed, and the backend of a
    # notebook that calls this is left as it was.
    from matplotlib.figure import Figure

    summary = summarize(results)
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for norm, cells in summary.items():
        batches = sorted(cells, reverse=True)
        mean = np.array([cells[b][0] for b in batches])
        std = np.array([cells[b][1] for b in batches])
        (line,) = ax.plot(batches, mean, marker="o", label=LABELS.get(norm, norm))
        ax.fill_between(batches, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    all_batches = sorted({r["images_per_replica"] for r in results}, reverse=True)
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_batches)
    ax.set_xticklabels([str(b) for b in all_batches])
    ax.invert_xaxis()  # as the paper's Figure 1: the batch shrinks to the right
    ax.set_xlabel("images per replica (batch of the normalization statistics)")
    ax.set_ylabel("validation error (%)")
    ax.set_title("Error against batch size (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_outputs(results, config):
    with open(os.path.join(config.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(config.output_dir, "results.md"), "w") as f:
        f.write(markdown_table(results, config))
    plot(results, os.path.join(config.output_dir, "error_vs_batch.png"))
