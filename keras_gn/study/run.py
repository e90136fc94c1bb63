"""Training: `train_one` (one run), `run_study` (every run of the plan not yet
in the results folder, in worker processes), the results file and the
time-left estimate."""

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import threading
import time

import keras
import tensorflow as tf

from keras_gn.data.arrays import exposed, load_arrays
from keras_gn.models.resnet import resnet
from keras_gn.study import bn_error
from keras_gn.study.plan import plan, run_schedule
from keras_gn.train.loop import compile_classifier

# Images per batch of the precise statistics' passes (only memory depends on it).
PRECISE_BATCH = 250


def load_data(config):
    """The study's arrays (see `keras_gn.data.arrays.load_arrays`)."""
    return load_arrays(config.dataset, config.train_examples, config.eval_examples, config.data_dir)


def train_one(config, data, run, strategy=None):
    """Trains one run; returns its result dict (errors as fractions).

    Each step takes `config.replicas` x `run.images_per_replica` images. The
    replicas are the strategy's (a TPU's cores, several GPUs), each holding
    `config.replicas / strategy replicas` virtual replicas: on one device, all
    of them (`keras_gn.VirtualReplicaBatchNormalization`). A BN or Batch
    Renorm run also reports its error taken apart (`bn_error`)."""
    strategy = strategy or tf.distribute.get_strategy()
    real = strategy.num_replicas_in_sync
    if config.replicas % real:
        raise ValueError(f"--replicas={config.replicas} is not a multiple of the strategy's {real} replicas.")
    steps = run_schedule(config, run.images_per_replica)
    if steps.steps_per_epoch < 1:
        raise ValueError(
            f"images_per_replica={run.images_per_replica} x {config.replicas} replica(s) is more than the "
            f"{config.train_examples} training examples."
        )
    data = exposed(data, run.exposure)
    keras.utils.set_random_seed(run.seed)
    with strategy.scope():
        model = _model(config, run, data, config.replicas // real)
        # Several steps per call fail under MirroredStrategy in Keras 3.15
        # with TF 2.20 ("You must feed a value for placeholder tensor").
        per_call = min(64, steps.steps_per_epoch) if real == 1 else 1
        compile_classifier(model, steps.learning_rate(), config.momentum, config.jit_compile, per_call)
    train_ds, eval_ds = _datasets(data, steps.global_batch, run.seed)
    start = time.time()
    # The validation pass after every epoch runs in inference mode: BN with
    # its moving statistics, as deployed (Figure 4's validation curves). The
    # training error is the running error of the epoch's own mini-batches,
    # in training mode, as the paper's training curves.
    history = model.fit(train_ds, epochs=config.epochs, validation_data=eval_ds, verbose=0, shuffle=False)
    seconds = time.time() - start
    result = {
        **dataclasses.asdict(run),
        "method": run.method,
        "replicas": config.replicas,
        "device_replicas": int(real),
        "global_batch": steps.global_batch,
        "val_error": 1.0 - history.history["val_accuracy"][-1],
        "train_error": 1.0 - history.history["accuracy"][-1],
        "val_error_per_epoch": [1.0 - a for a in history.history["val_accuracy"]],
        "train_error_per_epoch": [1.0 - a for a in history.history["accuracy"]],
        "train_loss": float(history.history["loss"][-1]),
        "learning_rate": steps.peak_learning_rate,
        "warmup_steps": steps.warmup_steps,
        # Read from the optimizer's own schedule: what training really used.
        "final_learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        "steps_per_epoch": steps.steps_per_epoch,
        "optimizer_steps": int(model.optimizer.iterations.numpy()),
        "wall_seconds": round(seconds, 1),
        "protocol": {**config.protocol(), "network": network(model)},
    }
    if bn_error.bn_layers(model):
        result["bn_error"] = _bn_error(config, model, data, run, result["val_error"])
    return result


def _model(config, run, data, virtual_replicas):
    (x_train, _), _, num_classes, _ = data
    return resnet(
        depth=config.depth,
        norm=run.norm,
        num_classes=num_classes,
        input_shape=x_train.shape[1:],
        width=config.width,
        stem=config.stem,
        weight_decay=config.weight_decay,
        groups=run.groups,
        group_size=run.group_size,
        weight_standardization=run.ws,
        padding=config.padding,
        virtual_replicas=virtual_replicas,
    )


def network(model):
    """The trained network's shape: its stages and each stage's output map
    size (height x width), read from the model."""
    sizes = {}
    for layer in model.layers:
        if layer.name.startswith("stage") and layer.name.endswith("_out"):
            sizes[int(layer.name[5 : layer.name.index("_")])] = list(layer.output.shape[1:3])
    return {"stages": len(sizes), "map_sizes": [sizes[s] for s in sorted(sizes)]}


def _bn_error(config, model, data, run, moving):
    """Validation error with the moving averages (`moving`, as deployed: the
    last epoch's validation pass), with precise statistics over
    `config.precise_bn_images` training images, and with the statistics of
    each validation batch of the run's images per replica."""
    (x_train, _), (x_eval, y_eval), _, _ = data
    start = time.time()
    precise = bn_error.precise_statistics(model, x_train[: config.precise_bn_images], PRECISE_BATCH)
    batch = bn_error.batch_statistics_logits(model, x_eval, run.images_per_replica)
    return {
        "moving_averages": moving,
        "precise": bn_error.error(precise.predict(x_eval, batch_size=500, verbose=0), y_eval),
        "batch_statistics": bn_error.error(batch, y_eval),
        "batch_statistics_images": len(batch),
        "precise_images": int(min(config.precise_bn_images, len(x_train))),
        "seconds": round(time.time() - start, 1),
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

    def differing(result):  # the settings a result's protocol has otherwise (its network is read from its model)
        theirs = {k: v for k, v in result.get("protocol", {}).items() if k != "network"}
        return sorted(k for k in set(theirs) | set(protocol) if theirs.get(k) != protocol.get(k))

    other = [r for r in results if differing(r)]
    if other:
        differing = differing(other[0])
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
    """A run's work in arbitrary units: its steps x (global batch + 8). On a
    CPU a small model's step costs about as much as 8 more images, whatever
    its batch (measured: ~3.5 ms at 2 images, ~14 ms at 32)."""
    steps = run_schedule(config, images_per_replica)
    return steps.steps * (steps.global_batch + 8)


def _seconds(result):
    """A finished run's seconds: training, and BN's error taken apart."""
    return result["wall_seconds"] + result.get("bn_error", {}).get("seconds", 0.0)


def _time_left(done, todo, config, workers):
    """Seconds left for the runs to do, `workers` at once: each at the mean
    time of the finished runs of its batch, or, for a batch not yet seen, at
    the finished runs' seconds per unit of `_cost`."""
    seconds = {}
    for r in done:
        seconds.setdefault(r["images_per_replica"], []).append(_seconds(r))
    rate = sum(_seconds(r) for r in done) / sum(_cost(config, r["images_per_replica"]) for r in done)
    left = 0.0
    for run in todo:
        seen = seconds.get(run.images_per_replica)
        left += sum(seen) / len(seen) if seen else rate * _cost(config, run.images_per_replica)
    return left / workers


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


def run_study(config, log=print, strategy=None, on_result=None):
    """Runs every run of `plan(config)` not yet in `output_dir/results.json`,
    under `strategy` if given (default: one replica per run, `workers` runs at
    once); saves the results after every run, then calls
    `on_result(results, config)` (the app writes the report), and returns
    all results."""
    runs = plan(config)
    os.makedirs(config.output_dir, exist_ok=True)
    results = _load_results(config)
    todo = [run for run in runs if not any(run.matches(r) for r in results)]
    data = load_data(config)
    workers = min(_workers(config, strategy), max(1, len(todo)))
    log(
        f"{config.dataset} from {data[3]}: {len(data[0][0])} training / {len(data[1][0])} validation images; "
        f"ResNet-{config.depth} width {config.width}, {config.stem} stem; {config.replicas} replica(s) per step; "
        f"{config.epochs} epoch{'s' * (config.epochs != 1)} per run; "
        f"{len(runs)} runs, {len(runs) - len(todo)} already in {config.output_dir}; {workers} at once"
    )
    start, fresh, left = time.time(), [], list(todo)
    for run, result in _train_all(config, data, todo, strategy, workers):
        results.append(result)
        fresh.append(result)
        left.remove(run)
        # Saved after every run: a killed study loses only the runs in progress.
        _save_results(results, config)
        if on_result:
            on_result(results, config)
        log(
            f"[{len(runs) - len(left)}/{len(runs)}] {run.describe()}: val error {100 * result['val_error']:5.2f}% "
            f"(train {100 * result['train_error']:5.2f}%, peak lr {result['learning_rate']:.4g}, "
            f"{result['optimizer_steps']} steps, {_seconds(result):.0f} s); "
            f"{(time.time() - start) / 60:.1f} min elapsed, about "
            f"{_time_left(fresh, left, config, workers) / 60:.1f} min left"
        )
    if not todo and on_result:
        on_result(results, config)
    return results
