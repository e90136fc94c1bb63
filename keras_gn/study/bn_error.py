"""BN's error taken apart: a trained model's validation error with three
kinds of BN statistics (Wu & Johnson 2021, "Rethinking 'Batch' in
BatchNorm"), forward passes only:

- the moving averages, as deployed (the model as trained; the headline);
- precise statistics (`precise_statistics`): the population mean and
  variance of every BN layer's input over training images, with the final
  weights;
- the statistics of each validation batch of B images
  (`batch_statistics_logits`): BN in training mode on each batch, as the
  model saw its training batches.

The gap between the first two is the moving averages' error (EMA over
weights that kept changing); the gap between the second and the third is
the train/test mismatch of normalizing by a batch of B images in training
and by the population in inference, which grows as B shrinks.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_gn.batch_norm import VirtualReplicaBatchNormalization
from keras_gn.replace import rebuild

__all__ = ["bn_layers", "precise_statistics", "batch_statistics_logits", "error"]

# Batch Renorm's own arguments: the batch-statistics copy normalizes by the
# batch alone (r and d are training-time corrections towards the moving averages).
_RENORM_KEYS = ("renorm", "renorm_clipping", "renorm_momentum")


def bn_layers(model):
    """The model's BN-family layers (`keras.layers.BatchNormalization` and
    its subclasses: virtual replicas, Batch Renorm), in graph order."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def _copy(model):
    return rebuild(model, lambda layer: None, lambda old: old.get_weights())


def _levels(model, layers):
    """`layers` grouped by the number of BN layers on the longest path from
    the input to each: a layer's input depends only on earlier groups."""
    memo, targets = {}, {id(layer) for layer in layers}

    def above(node):  # BN layers on the longest path up to this node's inputs
        key = id(node)
        if key not in memo:
            memo[key] = max(
                (above(parent) + (id(parent.operation) in targets) for parent in node.parent_nodes), default=0
            )
        return memo[key]

    levels = {}
    for layer in layers:
        if len(layer._inbound_nodes) != 1:
            raise ValueError(f"BN layer {layer.name!r} is called {len(layer._inbound_nodes)} times; expected once.")
        levels.setdefault(above(layer._inbound_nodes[0]), []).append(layer)
    return [levels[k] for k in sorted(levels)]


def precise_statistics(model, images, batch_size=100):
    """A copy of `model` (a functional Keras model whose BN layers are its
    own layers) whose BN layers hold the exact population mean and (biased)
    variance of their inputs over `images`, with the final weights.

    The layers are taken level by level, in inference mode: each layer's
    input is computed with the earlier layers' new statistics, as the
    deployed model computes it, and summed in float64. The result does not
    depend on `batch_size`, which only bounds memory: it is the population
    limit that PreciseBN's large training-mode batches approximate."""
    copy = _copy(model)
    layers = bn_layers(copy)
    if not layers:
        raise ValueError(f"{model.name} has no BatchNormalization layer.")
    for level in _levels(copy, layers):
        moments = _moments(copy, level)
        sums = None
        for start in range(0, len(images), batch_size):
            batch = moments(images[start : start + batch_size])
            sums = batch if sums is None else [total + part for total, part in zip(sums, batch)]
        for layer, (count, total, squares) in zip(level, sums):
            mean = total / count
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(np.maximum(squares / count - mean**2, 0.0).astype(np.float32))
    return copy


def _moments(model, layers):
    """A compiled function of a batch: for each of `layers`, [the number of
    values per channel, their sum, the sum of their squares] of its input
    (float64; inference mode), as one [3, channels] array per layer."""
    probe = keras.Model(model.inputs, [layer.input for layer in layers])

    @tf.function(reduce_retracing=True)
    def moments(x):
        outputs = probe(x, training=False)
        out = []
        for layer, y in zip(layers, outputs if isinstance(outputs, (list, tuple)) else [outputs]):
            rank = len(y.shape)
            axes = [a for a in range(rank) if a != layer.axis % rank]
            y = tf.cast(y, tf.float64)
            count = tf.cast(tf.size(y), tf.float64) / y.shape[layer.axis % rank] * tf.ones_like(y[(0,) * (rank - 1)])
            out.append(tf.stack([count, tf.reduce_sum(y, axes), tf.reduce_sum(y * y, axes)]))
        return out

    return lambda x: [m.numpy() for m in moments(x)]


def batch_statistics_logits(model, images, images_per_batch, batches_per_call=None):
    """The outputs of `model` on `images` with every BN layer normalizing each
    consecutive batch of `images_per_batch` images by that batch's own mean
    and variance (BN in training mode on each batch; Batch Renorm as plain
    BN: r and d are training-time corrections). Images past the last whole
    batch are left out. Other layers run as in inference; the model's own
    statistics are not touched (this runs on a copy)."""
    batches = len(images) // images_per_batch
    if batches < 1:
        raise ValueError(f"{len(images)} images hold no batch of {images_per_batch}.")
    per_call = batches_per_call or max(
        d for d in range(1, batches + 1) if batches % d == 0 and d * images_per_batch <= 512
    )

    def swap(layer):
        if not isinstance(layer, keras.layers.BatchNormalization):
            return None
        config = {k: v for k, v in layer.get_config().items() if k not in _RENORM_KEYS + ("virtual_replicas",)}
        return VirtualReplicaBatchNormalization(virtual_replicas=per_call, **config)

    def weights(old):
        if not isinstance(old, keras.layers.BatchNormalization):
            return old.get_weights()
        kept = ([old.gamma] if old.scale else []) + ([old.beta] if old.center else [])
        return [keras.ops.convert_to_numpy(v) for v in kept + [old.moving_mean, old.moving_variance]]

    copy = rebuild(model, swap, weights)
    # Training mode for BN only: the copy's other layers (GN, convolutions,
    # no dropout here) compute the same in both modes.
    step = tf.function(lambda x: copy(x, training=True), reduce_retracing=True)
    chunk = per_call * images_per_batch
    used = batches * images_per_batch
    return np.concatenate([step(images[start : start + chunk]).numpy() for start in range(0, used, chunk)])


def error(logits, labels):
    """Top-1 error (a fraction) of `logits` against integer `labels` (the
    first len(logits) of them)."""
    return float(np.mean(np.argmax(logits, -1) != np.asarray(labels)[: len(logits)]))
