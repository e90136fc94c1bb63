"""`replace_normalization`: swap every BatchNormalization of a Keras model (and,
if asked, every convolution for its weight-standardized twin)."""

import keras

from keras_gn.conv import WS_TWINS
from keras_gn.layers import GroupNormalization

__all__ = ["replace_normalization", "rebuild"]


def replace_normalization(model, norm=None, copy_weights=True, weight_standardization=False, **gn_kwargs):
    """Returns a copy of `model` with every BatchNormalization replaced.

    Args:
      model: a functional or Sequential `keras.Model` (nested models are
        handled too).
      norm: what to put in place of each `keras.layers.BatchNormalization`:
        None for `keras_gn.GroupNormalization` on the BN's axis, built with
        `gn_kwargs` (e.g. `groups=32`, `epsilon=1e-5`); or a callable that
        takes the BN layer and returns the new layer.
      copy_weights: copy the weights of every other layer from `model`, so
        that only the normalization layers start afresh (default True).
      weight_standardization: also replace every `Conv1D`, `Conv2D` and
        `Conv3D` (exactly those classes) by its Weight Standardization twin
        (`keras_gn.WSConv2D`, ...) with the same configuration and, with
        `copy_weights`, the same kernel and bias: GN+WS in one call.

    Returns:
      A new model of the same structure. The original is left untouched.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"replace_normalization needs a keras.Model; got {type(model).__name__}.")
    if norm is not None and gn_kwargs:
        raise ValueError(
            f"Give either norm (a callable) or GroupNormalization arguments, "
            f"not both; got norm={norm!r} and {sorted(gn_kwargs)}."
        )

    def swap(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return (
                norm(layer) if norm is not None else GroupNormalization(axis=layer.axis, name=layer.name, **gn_kwargs)
            )
        if weight_standardization and type(layer) in WS_TWINS:
            return WS_TWINS[type(layer)].from_config(layer.get_config())
        return None

    def weights(old):
        return None if isinstance(old, keras.layers.BatchNormalization) else old.get_weights()

    return rebuild(model, swap, weights if copy_weights else lambda old: None)


def rebuild(model, swap, weights):
    """A copy of `model` (Keras 3 or tf_keras; nested models too) in which
    each layer for which `swap(layer)` returns a layer is replaced by it and
    every other layer is rebuilt from its config; then each new layer gets
    `weights(old_layer)` (a list for `set_weights`, or None to keep its
    initial weights)."""
    K = _keras_of(model)

    def clone(layer):
        new = swap(layer)
        if new is not None:
            return new
        if isinstance(layer, K.Model):
            return rebuild(layer, swap, lambda old: None)
        return layer.__class__.from_config(layer.get_config())

    new = K.models.clone_model(model, clone_function=clone)
    for old_layer, new_layer in zip(_flat_layers(model, K), _flat_layers(new, K)):
        values = weights(old_layer) if old_layer.weights else None
        if values is not None:
            new_layer.set_weights(values)
    return new


def _keras_of(model):
    if isinstance(model, keras.Model):
        return keras
    import tf_keras

    if isinstance(model, tf_keras.Model):
        return tf_keras
    raise TypeError(f"Expected a Keras 3 or tf_keras model; got {type(model).__name__}.")


def _flat_layers(model, K):
    for layer in model.layers:
        if isinstance(layer, K.Model):
            yield from _flat_layers(layer, K)
        else:
            yield layer
