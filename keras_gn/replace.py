"""`replace_normalization`: swap every BatchNormalization of a Keras model."""

import keras

from keras_gn.layers import GroupNormalization

__all__ = ["replace_normalization"]


def replace_normalization(model, norm=None, copy_weights=True, **gn_kwargs):
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

    def make_norm(bn):
        if norm is not None:
            return norm(bn)
        return GroupNormalization(axis=bn.axis, name=bn.name, **gn_kwargs)

    def clone(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return make_norm(layer)
        if isinstance(layer, keras.Model):
            return replace_normalization(layer, norm, copy_weights, **gn_kwargs)
        return layer.__class__.from_config(layer.get_config())

    new = keras.models.clone_model(model, clone_function=clone)
    if copy_weights:
        for old_layer, new_layer in zip(_flat_layers(model), _flat_layers(new)):
            if not isinstance(old_layer, keras.layers.BatchNormalization) and old_layer.weights:
                new_layer.set_weights(old_layer.get_weights())
    return new


def _flat_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flat_layers(layer)
        else:
            yield layer
