"""The paper's ImageNet-classification study (Tables 1-3, Figures 1 and 4) at a
scale a CPU runs, with one protocol for every method.

Exhibits (`StudyConfig.exhibits`):

- `table2` (Figure 1 / Table 2): BN and GN at 32, 16, 8, 4 and 2 images per
  replica;
- `table1` (Table 1 / Figure 4): BN, LN, IN and GN at 32 images per replica,
  with the training and validation error after every epoch;
- `table3` (Table 3): GN with the number of groups swept (G = 1 is LN) and
  with the channels per group swept (1 is IN), at 32 images per replica.

Every run trains the same small ResNet from scratch for the same number of
epochs, whatever its batch; the learning rate is scaled linearly with the
batch and divided by 10 at 30%, 60% and 90% of training; weight decay is on
every weight; the last norm of each residual block starts with gamma = 0; BN
is evaluated with its moving statistics. A run shared by several exhibits
(GN at 32 images is in all three) is trained once.

`run_study(config)` appends each finished run to `output_dir/results.json`
and skips, when started again, the runs already there: a killed study loses
at most the run in progress. It then writes `report.md` (each exhibit next to
the paper's numbers, with a line per claim saying whether it holds here) and
the plots `figure1.png`, `figure4.png` and `table3.png`.
"""

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import statistics
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from keras_gn import paper
from keras_gn.data.arrays import load_arrays
from keras_gn.models.resnet import STAGE_SIZES, check_groups, resnet
from keras_gn.norms import NORMALIZATIONS
from keras_gn.train.classification import compile_classifier, learning_rate_schedule
from keras_gn.train.cli import option

__all__ = [
    "StudyConfig",
    "Run",
    "QUICK",
    "FULL",
    "EXHIBITS",
    "plan",
    "run_study",
    "train_one",
    "load_data",
    "steps_per_epoch",
    "learning_rates",
    "schedule",
    "write_report",
    "claims",
]

EXHIBITS = ("table2", "table1", "table3")
TABLE1_NORMS = ("bn", "ln", "in", "gn")
LARGE_BATCH = 32  # the paper's images per GPU for Tables 1 and 3


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What the study trains; the defaults are the README's run (see there for
    why these values). Fields that change what one run computes are in
    `protocol()`; a results folder holds runs of one protocol."""

    exhibits: tuple = option(
        EXHIBITS,
        f"Exhibits to run: {', '.join(EXHIBITS)} (table1 includes Figure 4, table2 Figure 1).",
        choices=EXHIBITS,
    )
    norms: tuple = option(
        ("bn", "gn"), "Table 2's normalizations (keras_gn.normalization names: bn, gn, ln, in, brn, syncbn)."
    )
    images_per_replica: tuple = option(
        (32, 16, 8, 4, 2), "Table 2's batches of the normalization statistics.", minimum=1
    )
    table3_groups: tuple = option(
        (1, 2, 4, 8, 16), "Table 3: numbers of groups G (1 is LN); each must divide every layer's channels.", minimum=1
    )
    table3_group_sizes: tuple = option(
        (1, 2, 4, 8), "Table 3: channels per group (1 is IN); each must divide every layer's channels.", minimum=1
    )
    seeds: int = option(3, "Runs per cell, with seeds 0..N-1.", minimum=1)
    dataset: str = option(
        "fashion_mnist_subset",
        "fashion_mnist_subset (12,000 images shipped inside keras_gn), fashion_mnist (all 70,000: Debian's "
        "dataset-fashion-mnist, $FASHION_MNIST_DIR, else Keras's downloader, which needs the network) or a "
        "prepared TFDS image data set.",
    )
    data_dir: "str | None" = option(None, "TFDS data folder, for a TFDS --dataset.")
    train_examples: int = option(6_000, "Training images (a fixed random subset).", minimum=1)
    eval_examples: int = option(2_000, "Validation images (a fixed random subset of the test split).", minimum=1)
    epochs: int = option(10, "Epochs, the same for every run whatever its batch.", minimum=1)
    depth: int = option(11, "ResNet depth (8, 11, 14, 26, 50, ...).")
    width: int = option(16, "ResNet width (64 in ResNet-50).", minimum=1)
    stem: str = option("imagenet", "imagenet: 7x7/2 + pool/2; small: 3x3/1.", choices=("imagenet", "small"))
    groups: int = option(8, "GN's number of groups outside Table 3.", minimum=1)
    base_learning_rate: float = option(
        0.1, "Learning rate at --base_batch images; scaled linearly with the global batch."
    )
    base_batch: int = option(32, "Batch of --base_learning_rate.", minimum=1)
    momentum: float = option(0.9, "SGD momentum.")
    weight_decay: float = option(1e-4, "Weight decay on every weight, gamma and beta included.", minimum=0)
    jit_compile: bool = option(True, "XLA-compile the training step.")
    workers: int = option(
        0, "Runs trained at once, each in its own process (0: one per CPU core, at most 4).", minimum=0
    )
    output_dir: str = option("classification_study", "Where report.md, the plots and results.json go.")

    def __post_init__(self):
        # Lists from a notebook or JSON become tuples: the config is hashable.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))

    def protocol(self):
        """The fields every run of a results folder must share."""
        skip = {
            "exhibits",
            "norms",
            "images_per_replica",
            "table3_groups",
            "table3_group_sizes",
            "seeds",
            "output_dir",
            "workers",
        }
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}


# A smoke run of every exhibit (about a minute on 2 cores, README): numbers mean nothing.
QUICK = dict(
    images_per_replica=(32, 8, 2),
    table3_groups=(1, 2, 8),
    table3_group_sizes=(1, 4),
    seeds=1,
    train_examples=1000,
    eval_examples=500,
    epochs=2,
    jit_compile=False,
)
# Longer and on all of Fashion-MNIST (hours on a CPU).
FULL = dict(seeds=5, dataset="fashion_mnist", train_examples=60_000, eval_examples=10_000, epochs=10)


@dataclasses.dataclass(frozen=True, order=True)
class Run:
    """One training run. `groups`/`group_size` only for norm="gn"."""

    norm: str
    images_per_replica: int
    seed: int
    groups: "int | None" = None
    group_size: "int | None" = None

    def describe(self):
        what = self.norm
        if self.norm == "gn":
            what = f"gn G={self.groups}" if self.groups else f"gn {self.group_size} ch/group"
        return f"{what:<16} images_per_replica={self.images_per_replica:<3} seed={self.seed}"

    def matches(self, result):
        return all(result.get(k) == v for k, v in dataclasses.asdict(self).items())


def _gn(config, groups=None, group_size=None):
    # G = 1 is LN and 1 channel per group is IN: the same runs as Table 1's.
    if groups == 1:
        return "ln", None, None
    if group_size == 1:
        return "in", None, None
    if groups is None and group_size is None:
        groups = config.groups
    return "gn", groups, group_size


def plan(config):
    """The runs of the configured exhibits, each once, in the order they are
    trained (seed by seed, so a partial study has every cell early)."""
    _validate(config)

    def cell(norm, batch):
        return (_gn(config) if norm == "gn" else (norm, None, None)) + (batch,)

    cells = []
    if "table2" in config.exhibits:
        cells += [cell(norm, batch) for batch in config.images_per_replica for norm in config.norms]
    if "table1" in config.exhibits:
        cells += [cell(norm, LARGE_BATCH) for norm in TABLE1_NORMS]
    if "table3" in config.exhibits:
        cells += [_gn(config, groups=g) + (LARGE_BATCH,) for g in config.table3_groups]
        cells += [_gn(config, group_size=s) + (LARGE_BATCH,) for s in config.table3_group_sizes]
    runs = []
    for seed in range(config.seeds):
        for norm, groups, group_size, batch in cells:
            run = Run(norm, int(batch), seed, groups, group_size)
            if run not in runs:
                runs.append(run)
    return runs


def _validate(config):
    """Raises ValueError, naming the setting, before anything trains."""

    for exhibit in config.exhibits:
        if exhibit not in EXHIBITS:
            raise ValueError(f"unknown exhibit {exhibit!r}; choose from {', '.join(EXHIBITS)}.")
    for norm in config.norms:
        if norm not in NORMALIZATIONS:
            raise ValueError(f"unknown norm {norm!r}; choose from {', '.join(NORMALIZATIONS)}.")
    if config.depth not in STAGE_SIZES:
        raise ValueError(f"depth must be one of {sorted(STAGE_SIZES)}; got {config.depth}.")
    checks = [("groups", (config.groups,))]
    if "table3" in config.exhibits:
        checks += [("table3_groups", config.table3_groups), ("table3_group_sizes", config.table3_group_sizes)]
    for name, values in checks:
        check_groups(values, config.depth, config.width, name)
    batches = tuple(config.images_per_replica) if "table2" in config.exhibits else ()
    if {"table1", "table3"} & set(config.exhibits):
        batches += (LARGE_BATCH,)
    too_big = [b for b in batches if b > config.train_examples]
    if too_big:
        raise ValueError(f"images_per_replica {too_big} is more than the {config.train_examples} training examples.")
    if config.seeds < 1 or config.epochs < 1:
        raise ValueError(f"seeds and epochs must be positive; got seeds={config.seeds}, epochs={config.epochs}.")


def steps_per_epoch(config, images_per_replica, replicas=1):
    """Optimizer steps in one epoch (the last partial batch is dropped: a BN
    batch of one image has no variance)."""
    return config.train_examples // (images_per_replica * replicas)


def schedule(config, images_per_replica, replicas=1):
    """The Keras learning-rate schedule of one run: linear scaling with the
    global batch, divided by 10 at 30%, 60% and 90% of training."""
    return learning_rate_schedule(
        config.base_learning_rate,
        config.base_batch,
        [f * config.epochs for f in (0.3, 0.6, 0.9)],
        images_per_replica * replicas,
        steps_per_epoch(config, images_per_replica, replicas),
    )


def learning_rates(config, images_per_replica, replicas=1):
    """(the learning rates, the optimizer steps after which each next one
    applies) of `schedule`, as Python numbers."""
    lr = schedule(config, images_per_replica, replicas)
    return [float(v) for v in lr.values], [int(b) for b in lr.boundaries]


def load_data(config):
    """The study's arrays (see `keras_gn.data.arrays.load_arrays`)."""
    return load_arrays(config.dataset, config.train_examples, config.eval_examples, config.data_dir)


def train_one(config, data, run, strategy=None):
    """Trains one run; returns its result dict (errors as fractions)."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    global_batch = run.images_per_replica * replicas
    (x_train, _), _, num_classes, _ = data
    steps = steps_per_epoch(config, run.images_per_replica, replicas)
    if steps < 1:
        raise ValueError(
            f"images_per_replica={run.images_per_replica} x {replicas} replica(s) is more than the "
            f"{config.train_examples} training examples."
        )
    keras.utils.set_random_seed(run.seed)
    with strategy.scope():
        model = resnet(
            depth=config.depth,
            norm=run.norm,
            num_classes=num_classes,
            input_shape=x_train.shape[1:],
            width=config.width,
            stem=config.stem,
            weight_decay=config.weight_decay,
            groups=run.groups,
            group_size=run.group_size,
            # The committed study was run with TensorFlow's padding, before the
            # builders' default became symmetric: kept, so that it reproduces.
            padding="same",
        )
        lr = schedule(config, run.images_per_replica, replicas)
        # Several steps per call fail under MirroredStrategy in Keras 3.15
        # with TF 2.20 ("You must feed a value for placeholder tensor").
        per_call = min(64, steps) if replicas == 1 else 1
        compile_classifier(model, lr, config.momentum, config.jit_compile, steps_per_execution=per_call)
    train_ds, eval_ds = _datasets(data, global_batch, run.seed)
    start = time.time()
    # The validation pass after every epoch runs in inference mode: BN with
    # its moving statistics, as deployed (Figure 4's validation curves). The
    # training error is the running error of the epoch's own mini-batches,
    # in training mode, as the paper's training curves.
    history = model.fit(train_ds, epochs=config.epochs, validation_data=eval_ds, verbose=0, shuffle=False)
    seconds = time.time() - start
    train_error = [1.0 - a for a in history.history["accuracy"]]
    val_error = [1.0 - a for a in history.history["val_accuracy"]]
    return {
        **dataclasses.asdict(run),
        "replicas": int(replicas),
        "val_error": val_error[-1],
        "train_error": train_error[-1],
        "val_error_per_epoch": val_error,
        "train_error_per_epoch": train_error,
        "train_loss": float(history.history["loss"][-1]),
        # Read from the optimizer's own schedule: what training really used.
        "learning_rate": float(lr(0)),
        "final_learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        "steps_per_epoch": steps,
        "optimizer_steps": int(model.optimizer.iterations.numpy()),
        "wall_seconds": round(seconds, 1),
        "protocol": config.protocol(),
    }


def _datasets(data, global_batch, seed):
    """The study's tf.data pipelines over its in-memory arrays: training
    reshuffled every epoch in full batches; validation in one pass."""
    (x_train, y_train), (x_eval, y_eval), _, _ = data
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(global_batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return train_ds, tf.data.Dataset.from_tensor_slices((x_eval, y_eval)).batch(500)


def _load_results(config):
    path = os.path.join(config.output_dir, "results.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        results = json.load(f)
    protocol = json.loads(json.dumps(config.protocol()))  # tuples as JSON lists
    other = [r for r in results if r.get("protocol") != protocol]
    if other:
        differing = sorted(k for k, v in other[0].get("protocol", {}).items() if protocol.get(k) != v)
        raise ValueError(
            f"{path} holds runs of another protocol (different {', '.join(differing) or 'settings'}); "
            f"give another --output_dir, or delete that folder to start afresh."
        )
    return results


def _save_results(results, config):
    path = os.path.join(config.output_dir, "results.json")
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(path + ".tmp", path)  # never a half-written file


def _cost(config, images_per_replica):
    """A run's work in arbitrary units: its steps x (batch + 8). On a CPU a
    small model's step costs about as much as 8 more images, whatever its
    batch (measured: ~3.5 ms at 2 images, ~14 ms at 32)."""
    return steps_per_epoch(config, images_per_replica) * config.epochs * (images_per_replica + 8)


def _time_left(done, todo, config, workers):
    """Seconds left for the runs to do, at the finished runs' seconds per
    unit of `_cost`, `workers` at once."""
    rate = sum(r["wall_seconds"] for r in done) / sum(_cost(config, r["images_per_replica"]) for r in done)
    return rate * sum(_cost(config, run.images_per_replica) for run in todo) / workers


def _workers(config, strategy):
    if strategy is not None:
        return 1  # a strategy lives in this process (a TPU, several GPUs)
    return config.workers or max(1, min(4, os.cpu_count() or 1))


# One process per worker: small models use one core poorly (a step at 2
# images is mostly per-operation overhead), so two runs side by side on 2
# cores trained about 1.6 times as many runs per hour as one run with 2
# threads at 2 images per replica, about 1.1 times at 32 (README).
_WORKER_DATA = {}


def _worker_init(threads, parent):

    # A worker whose study (process `parent`) was killed ends too, instead
    # of lingering with its model in memory.
    def watch_parent():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _worker_train(config, run):
    if config not in _WORKER_DATA:
        _WORKER_DATA.clear()
        _WORKER_DATA[config] = load_data(config)
    return train_one(config, _WORKER_DATA[config], run)


def _train_all(config, data, todo, strategy, workers):
    """Yields (run, result) as runs finish."""
    if workers == 1:
        for run in todo:
            yield run, train_one(config, data, run, strategy)
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # for the workers' TensorFlow
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    with concurrent.futures.ProcessPoolExecutor(workers, context, _worker_init, (threads, os.getpid())) as pool:
        futures = {pool.submit(_worker_train, config, run): run for run in todo}
        try:
            for future in concurrent.futures.as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def run_study(config, log=print, strategy=None):
    """Runs every run of `plan(config)` not yet in `output_dir/results.json`,
    under `strategy` if given (default: one replica per run, `workers` runs at
    once); writes the report after every run and returns all results."""
    runs = plan(config)
    os.makedirs(config.output_dir, exist_ok=True)
    results = _load_results(config)
    todo = [run for run in runs if not any(run.matches(r) for r in results)]
    data = load_data(config)
    workers = min(_workers(config, strategy), max(1, len(todo)))
    log(
        f"{config.dataset} from {data[3]}: {len(data[0][0])} training / {len(data[1][0])} validation images; "
        f"ResNet-{config.depth} width {config.width}; {config.epochs} epoch{'s' * (config.epochs != 1)} per run; "
        f"{len(runs)} runs, {len(runs) - len(todo)} already in {config.output_dir}; {workers} at once"
    )
    start, fresh, left = time.time(), [], list(todo)
    for run, result in _train_all(config, data, todo, strategy, workers):
        results.append(result)
        fresh.append(result)
        left.remove(run)
        # Saved after every run: a killed study loses only the runs in progress.
        _save_results(results, config)
        write_report(results, config)
        log(
            f"[{len(runs) - len(left)}/{len(runs)}] {run.describe()}: val error {100 * result['val_error']:5.2f}% "
            f"(train {100 * result['train_error']:5.2f}%, lr {result['learning_rate']:.4g}, "
            f"{result['optimizer_steps']} steps, {result['wall_seconds']:.0f} s); "
            f"{(time.time() - start) / 60:.1f} min elapsed, about "
            f"{_time_left(fresh, left, config, workers) / 60:.1f} min left"
        )
    if not todo:
        write_report(results, config)
    return results


# ---------------------------------------------------------------- the report


def _cell(results, keep, key="val_error"):
    """Mean, standard deviation (None for one seed) and count, in %, of
    `key` over the results that `keep` accepts; None for none."""
    values = [100 * r[key] for r in results if keep(r)]
    if not values:
        return None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None), len(values)


def _fmt(stat):
    if stat is None:
        return ""
    mean, std, _ = stat
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _table2(results, config):
    batches = sorted({r["images_per_replica"] for r in results if r["norm"] == "bn"}, reverse=True)
    table = {
        norm: {
            b: _cell(results, lambda r, norm=norm, b=b: _is(r, norm, config) and r["images_per_replica"] == b)
            for b in batches
        }
        for norm in ("bn", "gn")
    }
    return table, batches


def _table1(results, config, key="val_error"):
    """Each Table 1 method at 32 images: its validation (or, with
    key="train_error", final training) error over seeds."""
    return {
        norm: _cell(results, lambda r, norm=norm: _is(r, norm, config) and r["images_per_replica"] == LARGE_BATCH, key)
        for norm in TABLE1_NORMS
    }


def _table3(results, config):
    def large(r):
        return r["images_per_replica"] == LARGE_BATCH

    def groups(g):  # G = 1 is LN
        return _cell(results, lambda r: large(r) and (r["norm"] == "ln" if g == 1 else _gn_with(r, groups=g)))

    def size(c):  # 1 channel per group is IN
        return _cell(results, lambda r: large(r) and (r["norm"] == "in" if c == 1 else _gn_with(r, group_size=c)))

    return {g: groups(g) for g in config.table3_groups}, {c: size(c) for c in config.table3_group_sizes}


def _gn_with(result, **setting):
    return result["norm"] == "gn" and all(result.get(k) == v for k, v in setting.items())


def _is(result, norm, config):
    """Whether a result is Tables 1 and 2's `norm`: for GN, the configured G
    (other G belong to Table 3)."""
    return result["norm"] == norm and (norm != "gn" or result.get("groups") == config.groups)


def _mean(stat):
    return None if stat is None else stat[0]


def claims(results, config):
    """[(exhibit, claim, holds: bool | None, the numbers)]; None where the
    results lack a cell the claim needs."""
    checks = {"table2": _table2_claims, "table1": _table1_claims, "table3": _table3_claims}
    out = []
    for exhibit in EXHIBITS:
        if exhibit in config.exhibits:
            out += checks[exhibit](results, config)
    return out


def _table2_claims(results, config):
    table, batches = _table2(results, config)
    bn, gn = ({b: _mean(table[n][b]) for b in batches} for n in ("bn", "gn"))
    if not ({32, 16, 8, 4, 2} <= set(batches) and None not in bn.values() and None not in gn.values()):
        return [("Table 2", "needs BN and GN at 32, 16, 8, 4 and 2 images", None, "")]
    gap = gn[32] - bn[32]
    rising = all(bn[a] <= bn[b] for a, b in ((16, 8), (8, 4), (4, 2)))
    drop = bn[2] - bn[32]
    spread = max(gn.values()) - min(gn.values())
    curve = " → ".join(f"{bn[b]:.2f}" for b in (16, 8, 4, 2))
    return [
        ("Table 2", "GN − BN at 32 images within +1.5 points", gap <= 1.5, f"GN − BN = {gap:+.2f}"),
        ("Table 2", "BN's error rises as the batch falls from 16 to 2", rising, curve),
        ("Table 2", "BN at 2 images at least 5 points worse than at 32", drop >= 5, f"{drop:+.2f} points"),
        ("Table 2", "GN's spread over 32…2 images at most 1.5 points", spread <= 1.5, f"{spread:.2f} points"),
    ]


def _table1_claims(results, config):
    t1 = {n: _mean(s) for n, s in _table1(results, config).items()}
    if None in t1.values():
        return [("Table 1", "needs BN, LN, IN and GN at 32 images", None, "")]
    best, worst = max(t1["bn"], t1["gn"]), min(t1["ln"], t1["in"])
    train = {n: _mean(s) for n, s in _table1(results, config, key="train_error").items()}
    errors = ", ".join(f"{paper.LABELS[n]} {t1[n]:.2f}" for n in TABLE1_NORMS)
    gap = t1["gn"] - t1["bn"]
    return [
        ("Table 1", "BN and GN within 1.5 points at 32 images", abs(gap) <= 1.5, f"GN − BN = {gap:+.2f}"),
        ("Table 1", "BN and GN both better than LN and IN", best < worst, errors),
        ("Table 1", "IN the worst of the four", t1["in"] == max(t1.values()), f"IN {t1['in']:.2f}"),
        (
            "Figure 4",
            "GN's final training error at or below BN's",
            train["gn"] <= train["bn"],
            f"GN {train['gn']:.2f}, BN {train['bn']:.2f}",
        ),
    ]


def _table3_claims(results, config):
    by_groups, by_size = _table3(results, config)
    ln, inst = _mean(by_groups.get(1)), _mean(by_size.get(1))
    middle = {f"G = {g}": _mean(s) for g, s in by_groups.items() if g != 1 and s}
    middle.update({f"{c} channels per group": _mean(s) for c, s in by_size.items() if c != 1 and s})
    if ln is None or inst is None or not middle:
        return [("Table 3", "needs G = 1 and 1 channel per group", None, "")]
    name, best = min(middle.items(), key=lambda kv: kv[1])
    return [
        (
            "Table 3",
            "a middle number of groups beats both G = 1 (LN) and 1 channel per group (IN)",
            best < min(ln, inst),
            f"best middle: {name} {best:.2f}; LN {ln:.2f}, IN {inst:.2f}",
        )
    ]


def _verdict(holds):
    return {True: "**holds**", False: "**does not hold**", None: "not measured"}[holds]


def report_markdown(results, config):
    seeds = sorted({r["seed"] for r in results})
    spread = f"mean ± standard deviation over {len(seeds)} seeds" if len(seeds) > 1 else "one seed (no spread)"
    lines = [
        "# The paper's ImageNet-classification study at CPU scale",
        "",
        f"{config.dataset} ({config.train_examples} training, {config.eval_examples} validation images); "
        f"ResNet-{config.depth} (width {config.width}, {config.stem} stem), "
        f"{config.epochs} epoch{'s' * (config.epochs != 1)} at every batch, "
        f"lr {config.base_learning_rate} × global batch / {config.base_batch}, ÷10 at 30/60/90% of training, "
        f"weight decay {config.weight_decay} on every weight, GN with G = {config.groups}; "
        f"validation error (%), {spread}; "
        f"{_replicas(results)}. "
        f"The paper: ResNet-50 on ImageNet, 8 GPUs.",
        "",
    ]
    sections = {"table2": _table2_section, "table1": _table1_section, "table3": _table3_section}
    for exhibit in EXHIBITS:
        if exhibit in config.exhibits:
            lines += sections[exhibit](results, config)
    lines += ["## The paper's claims here", ""]
    for exhibit, claim, holds, numbers in claims(results, config):
        lines.append(f"- {exhibit}: {claim}: {_verdict(holds)}" + (f" ({numbers})" if numbers else ""))
    return "\n".join(lines) + "\n"


def _row(label, cells):
    return (f"| {label} | " if label else "| | ") + " | ".join(str(c) for c in cells) + " |"


def _header(label, columns):
    return [_row(label, columns), "|---|" + "---|" * len(columns)]


def _table2_section(results, config):
    table, batches = _table2(results, config)
    lines = ["## Table 2 / Figure 1: error against images per replica", "", *_header("images per replica", batches)]
    for norm in ("bn", "gn"):
        lines.append(_row(paper.LABELS[norm], [_fmt(table[norm][b]) for b in batches]))
    diff = [
        f"{table['gn'][b][0] - table['bn'][b][0]:+.2f}" if table["gn"][b] and table["bn"][b] else "" for b in batches
    ]
    lines.append(_row("GN − BN", diff))
    for norm in ("bn", "gn"):
        lines.append(_row(f"paper {paper.LABELS[norm]}", [paper.TABLE_2[norm].get(b, "") for b in batches]))
    return lines + ["", "![Figure 1](figure1.png)", ""]


def _table1_section(results, config):
    validation = _table1(results, config)
    training = _table1(results, config, key="train_error")
    return [
        "## Table 1 / Figure 4: 32 images per replica",
        "",
        *_header("", [paper.LABELS[n] for n in TABLE1_NORMS]),
        _row("validation error", [_fmt(validation[n]) for n in TABLE1_NORMS]),
        _row("final training error", [_fmt(training[n]) for n in TABLE1_NORMS]),
        _row("paper, validation error", [paper.TABLE_1[n] for n in TABLE1_NORMS]),
        "",
        "![Figure 4](figure4.png)",
        "",
    ]


def _table3_section(results, config):
    lines = ["## Table 3: groups", ""]
    for label, cells, reference in zip(
        ("groups G", "channels per group"), _table3(results, config), (paper.TABLE_3_GROUPS, paper.TABLE_3_GROUP_SIZES)
    ):
        lines += [
            *_header(label, list(cells)),
            _row("error", [_fmt(s) for s in cells.values()]),
            _row("paper (ResNet-50)", [reference.get(k, "") for k in cells]),
            "",
        ]
    return lines + [
        "G = 1 is LN and 1 channel per group is IN (the same runs as Table 1's).",
        "",
        "![Table 3](table3.png)",
        "",
    ]


def _replicas(results):
    replicas = sorted({r.get("replicas", 1) for r in results})
    return (
        "one replica" if replicas == [1] else f"{'/'.join(map(str, replicas))} replicas, each with images per replica"
    )


def _axes(nrows=1, ncols=1, size=(6, 4.2)):
    # A Figure without pyplot: no GUI backend needed, and a notebook's
    # backend is left as it was.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots(nrows, ncols)


def plot_figure1(results, config, path):
    table, batches = _table2(results, config)
    fig, ax = _axes()
    for norm in ("bn", "gn"):
        cells = [(b, table[norm][b]) for b in batches if table[norm][b]]
        if not cells:
            continue
        xs = [b for b, _ in cells]
        mean = np.array([s[0] for _, s in cells])
        std = np.array([s[1] or 0.0 for _, s in cells])
        (line,) = ax.plot(xs, mean, marker="o", label=paper.LABELS[norm])
        ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.invert_xaxis()  # as the paper's Figure 1: the batch shrinks to the right
    ax.set_xlabel("images per replica (batch of the normalization statistics)")
    ax.set_ylabel("validation error (%)")
    ax.set_title("Figure 1: error against batch size (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_figure4(results, config, path):
    from matplotlib.ticker import MaxNLocator

    fig, axes = _axes(1, 2, size=(11, 4.2))
    for norm in TABLE1_NORMS:
        runs = [r for r in results if r["images_per_replica"] == LARGE_BATCH and _is(r, norm, config)]
        if not runs:
            continue
        for ax, key in zip(axes, ("train_error_per_epoch", "val_error_per_epoch")):
            curves = 100 * np.array([r[key] for r in runs])
            epochs = np.arange(1, curves.shape[1] + 1)
            (line,) = ax.plot(epochs, curves.mean(0), marker=".", label=paper.LABELS[norm])
            if len(runs) > 1:  # the spread over seeds
                ax.fill_between(epochs, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.15)
    for ax, title in zip(axes, ("training error (mini-batches, training mode)", "validation error")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.set_title(f"Figure 4: {title}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_table3(results, config, path):
    by_groups, by_size = _table3(results, config)
    fig, axes = _axes(1, 2, size=(11, 4.2))
    for ax, cells, xlabel, ends in (
        (axes[0], by_groups, "groups G", {1: "LN"}),
        (axes[1], by_size, "channels per group", {1: "IN"}),
    ):
        keys = [k for k, s in cells.items() if s]
        labels = [f"{k}\n({ends[k]})" if k in ends else str(k) for k in keys]
        means = [cells[k][0] for k in keys]
        stds = [cells[k][1] or 0.0 for k in keys]
        ax.bar(range(len(keys)), means, yerr=stds, capsize=4, color="tab:orange", alpha=0.8)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(labels)
        if means:
            low, high = min(m - s for m, s in zip(means, stds)), max(m + s for m, s in zip(means, stds))
            ax.set_ylim(max(0.0, low - 0.5 * (high - low + 1)), high + 0.3 * (high - low + 1))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation error (%)")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_title("Table 3: GN, number of groups", fontsize=10)
    axes[1].set_title("Table 3: GN, channels per group", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_report(results, config):
    """Writes report.md and the plots of the configured exhibits."""
    with open(os.path.join(config.output_dir, "report.md"), "w") as f:
        f.write(report_markdown(results, config))
    if "table2" in config.exhibits:
        plot_figure1(results, config, os.path.join(config.output_dir, "figure1.png"))
    if "table1" in config.exhibits:
        plot_figure4(results, config, os.path.join(config.output_dir, "figure4.png"))
    if "table3" in config.exhibits:
        plot_table3(results, config, os.path.join(config.output_dir, "table3.png"))
