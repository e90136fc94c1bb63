"""One training step under MirroredStrategy over R logical CPU devices and on one
device with R virtual replicas, for BN, Batch Renorm and GN: prints, per norm,
the largest differences of the loss and of every weight's change (the moving
statistics included), and the same against a plain one-device step."""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_gn.models import resnet
from keras_gn.train import make_strategy, split_cpu

R = int(sys.argv[1]) if len(sys.argv) > 1 else 8
split_cpu(R)

strategy = make_strategy("mirrored", num_gpus=R)
B = 2
rng = np.random.default_rng(0)
x = rng.normal(size=(R * B, 8, 8, 3)).astype(np.float32)
x[: R * B // 2] = 3.0 * x[: R * B // 2] + 1.0  # replicas see different statistics
y = np.arange(R * B) % 4


def build(norm, replicas):
    keras.utils.set_random_seed(1)
    extra = {"groups": 4} if norm == "gn" else {}
    model = resnet(
        8,
        norm=norm,
        width=8,
        stem="small",
        input_shape=(8, 8, 3),
        num_classes=4,
        weight_decay=1e-3,
        virtual_replicas=replicas,
        **extra,
    )
    # SGD at learning rate 1: a weight's change is minus its gradient.
    model.compile(
        keras.optimizers.SGD(1.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False
    )
    return model


def step(model):
    before = [w.numpy() for w in model.weights]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(R * B)
    loss = model.fit(ds, epochs=1, verbose=0, shuffle=False).history["loss"][0]
    after = {w.path: w.numpy() for w in model.weights}
    return loss, {w.path: after[w.path] - b for w, b in zip(model.weights, before)}


out = {}
for norm in ("bn", "brn", "gn"):
    ref = build(norm, 1)
    weights = ref.get_weights()
    for w, v in zip(ref.weights, weights):  # non-zero gamma everywhere; non-trivial moving stats
        if "gamma" in w.path:
            v[...] = 0.5
        if "moving_variance" in w.path or "renorm_stddev" in w.path or "moving_stddev" in w.path:
            v[...] = 1.3
        if "renorm_stddev" in w.path or "moving_stddev" in w.path:
            v[...] = np.sqrt(1.3)
    with strategy.scope():
        mirrored = build(norm, 1)
    mirrored.set_weights(weights)
    virtual = build(norm, R)
    virtual.set_weights(weights)
    one = build(norm, 1)
    one.set_weights(weights)
    (lm, dm), (lv, dv), (lo, do) = step(mirrored), step(virtual), step(one)

    def err(a, b):
        return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)

    out[norm] = {"loss": abs(lm - lv), "delta": err(dm, dv), "vs_one_device": err(dm, do), "loss_vs_one": abs(lm - lo)}
    stats = [k for k in dm if "moving" in k or "renorm_" in k]
    out[norm]["stats"] = max([float(np.max(np.abs(dm[k] - dv[k]))) for k in stats] or [0.0])
print(json.dumps(out))
