"""The paper's argument on 8 replicas (logical CPU devices, in a subprocess):
GN's gradients do not depend on how the batch is split across replicas (with
Weight Standardization too), per-replica BN's do, and synchronized BN's do
not again."""

import json
import os
import subprocess
import sys
import textwrap

from binaries import ROOT

SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    from keras_gn.train import split_cpu, make_strategy
    split_cpu(8)
    import keras
    from keras_gn.models import resnet

    strategy = make_strategy("mirrored", num_gpus=8)
    assert strategy.num_replicas_in_sync == 8
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
    y = np.arange(16) % 4
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")

    def build(name):
        norm, ws = name.replace("_ws", ""), name.endswith("_ws")
        extra = {"groups": 4} if norm == "gn" else {}
        return resnet(8, norm=norm, width=8, stem="small", input_shape=(8, 8, 3), num_classes=4,
                      weight_standardization=ws, **extra)

    out = {}
    for norm in ("gn", "bn", "syncbn", "gn_ws"):
        keras.utils.set_random_seed(1)
        single = build(norm)
        # Non-zero gamma everywhere, so every weight gets a gradient.
        for w in single.trainable_weights:
            if "gamma" in w.path:
                w.assign(np.full(w.shape, 0.5, np.float32))
        with tf.GradientTape() as tape:
            loss = loss_fn(y, single(x, training=True)) / 16
        expected = tape.gradient(loss, single.trainable_weights)

        with strategy.scope():
            replicated = build(norm)
        replicated.set_weights(single.get_weights())
        batches = strategy.experimental_distribute_values_from_function(
            lambda ctx: (x[2 * ctx.replica_id_in_sync_group:2 * ctx.replica_id_in_sync_group + 2],
                         y[2 * ctx.replica_id_in_sync_group:2 * ctx.replica_id_in_sync_group + 2]))

        @tf.function
        def step(batch):
            xs, ys = batch
            with tf.GradientTape() as tape:
                loss = loss_fn(ys, replicated(xs, training=True)) / 16
            return tape.gradient(loss, replicated.trainable_weights)

        per_replica = strategy.run(step, args=(batches,))
        got = [strategy.reduce("SUM", g, axis=None) for g in per_replica]
        out[norm] = max(float(np.max(np.abs(a.numpy() - b.numpy())) / (np.max(np.abs(b.numpy())) + 1e-12))
                        for a, b in zip(got, expected))
    print(json.dumps(out))
    """
)


def test_replicated_gradients_gn_bn_syncbn():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    # Relative gradient differences, replicated (8 x 2 images) vs one device (16 images).
    assert errors["gn"] < 1e-4, errors
    assert errors["gn_ws"] < 1e-4, errors
    assert errors["syncbn"] < 1e-4, errors
    assert errors["bn"] > 1e-2, errors
