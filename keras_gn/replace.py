"""Every model rewrite of the package:

* `replace_normalization`: each BatchNormalization, and each GroupNormalization
  of Keras or tf_keras, becomes `keras_gn.GroupNormalization` (and, if asked,
  each convolution its weight-standardized twin);
* `fold_weight_standardization`: WS convolutions back to plain ones holding
  the standardized kernels, for serving and export;
* `rebuild`: the clone-and-swap both are made of.
"""

import warnings

import keras

from keras_gn.conv import WS_TWINS, WeightStandardized, plain_twin
from keras_gn.layers import DEFAULT_GROUPS, GroupNormalization, fitted_groups

__all__ = ["replace_normalization", "fold_weight_standardization", "rebuild"]


def _sources(K):
    """The layer classes `replace_normalization` swaps, in Keras `K`."""
    return K.layers.BatchNormalization, K.layers.GroupNormalization


def _channels(layer):
    """The channel count a normalization layer was built for."""
    for weight in layer.weights:
        if len(weight.shape) == 1:
            return int(weight.shape[0])
    try:
        return int(layer.input.shape[layer.axis])
    except (AttributeError, TypeError, ValueError):
        raise ValueError(
            f"replace_normalization cannot tell the channel count of layer {layer.name!r} "
            f"({type(layer).__name__}): it has no weights and no single input."
        ) from None


def _axis(layer):
    axis = layer.axis
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) normalizes over axes {list(axis)}; "
                f"GroupNormalization takes one channel axis."
            )
        axis = axis[0]
    return int(axis)


def replace_normalization(
    model,
    norm=None,
    copy_weights=True,
    weight_standardization=False,
    *,
    fit_groups=True,
    return_summary=False,
    **gn_kwargs,
):
    """Returns a copy of `model` in which every normalization layer is
    `keras_gn.GroupNormalization`.

        model = replace_normalization(keras.applications.MobileNetV2(weights=None))  # GN, G = 32
        model = replace_normalization(model, groups=16)
        model, summary = replace_normalization(model, return_summary=True)

    Args:
      model: a functional or Sequential `keras.Model`, or a tf_keras one
        (whose layers become `keras_gn.legacy.GroupNormalization`); nested
        models are handled too.
      norm: None for `GroupNormalization` with `gn_kwargs`; or a callable
        that takes the old layer and returns the new one (then only
        BatchNormalization layers are replaced, and nothing is fitted).
      copy_weights: copy the weights of every other layer from `model`, so
        that only the new normalization layers start afresh (default True).
        A Keras `GroupNormalization` hands its gamma and beta on too: the
        copy computes what it computed.
      weight_standardization: also replace every `Conv1D`, `Conv2D` and
        `Conv3D` (exactly those classes) by its Weight Standardization twin
        with the same configuration and weights: GN+WS in one call.
      fit_groups: where the groups do not divide a layer's channels, use
        `fitted_groups(channels, groups)` (gcd; see there why) instead of
        raising. The fitted layers are listed in one printed table.
      return_summary: also return a list with one dict per replaced layer:
        its name, the class it replaced, its channels, the groups asked for
        and the groups it got, and its epsilon.
      **gn_kwargs: `GroupNormalization` arguments for every new layer, e.g.
        `groups=16`, `epsilon=1e-5`.

    Which arguments each new layer gets: the axis, epsilon, center and
    scale of the layer it replaces (BatchNormalization's epsilon too: 1e-3
    in Keras's default BN, 1e-5 in the paper's), unless `gn_kwargs` gives
    them; a BatchNormalization's place gets `groups=32` (the paper's); a
    Keras `GroupNormalization` keeps its groups (`groups=-1`, one group per
    channel, is Instance Normalization) and its initializers, regularizers
    and constraints.

    Returns:
      The new model, or `(model, summary)` with `return_summary`. The
      original is left untouched.
    """
    K = _keras_of(model)
    if isinstance(norm, str):
        raise TypeError(
            f"norm is a callable that takes the old layer and returns the new one, not a name; got {norm!r}. "
            f"For GroupNormalization give no norm (groups=32 by default), for LN groups=1, for IN groups=-1."
        )
    if norm is not None and gn_kwargs:
        raise ValueError(
            f"Give either norm (a callable) or GroupNormalization arguments, "
            f"not both; got norm={norm!r} and {sorted(gn_kwargs)}."
        )
    batch_norm, keras_group_norm = _sources(K)
    group_norm, ws_twins = _targets(K)
    summary = []

    def swap(layer):
        if norm is not None:
            if isinstance(layer, batch_norm):
                return norm(layer)
        elif isinstance(layer, (batch_norm, keras_group_norm)):
            return _group_norm_for(layer, group_norm, keras_group_norm, fit_groups, gn_kwargs, summary)
        if weight_standardization and type(layer) in ws_twins:
            return ws_twins[type(layer)].from_config(layer.get_config())
        return None

    def weights(old):
        if isinstance(old, batch_norm):
            return None
        return old.get_weights()

    new = rebuild(model, swap, weights if copy_weights else lambda old: None)
    if not summary and norm is None:
        warnings.warn(
            f"replace_normalization found no BatchNormalization or GroupNormalization layer in {model.name!r}: "
            f"the copy is unchanged. A subclassed model's layers cannot be rewritten from outside; build the "
            f"model with keras_gn.GroupNormalization instead.",
            stacklevel=2,
        )
    _print_fitted(summary)
    return (new, summary) if return_summary else new


def _group_norm_for(layer, group_norm, keras_group_norm, fit_groups, gn_kwargs, summary):
    channels = _channels(layer)
    kwargs = {"axis": _axis(layer), "epsilon": float(layer.epsilon), "center": layer.center, "scale": layer.scale}
    if isinstance(layer, keras_group_norm):
        config = layer.get_config()
        for weight in ("beta", "gamma"):
            for what in ("initializer", "regularizer", "constraint"):
                kwargs[f"{weight}_{what}"] = config[f"{weight}_{what}"]
        kwargs["groups"] = layer.groups
    else:
        kwargs["groups"] = DEFAULT_GROUPS
    kwargs.update(gn_kwargs)
    if "group_size" in gn_kwargs:
        kwargs.pop("groups")
        asked = None
        size = gn_kwargs["group_size"]
        got = channels // size if size and channels % size == 0 else None
    else:
        asked = channels if kwargs["groups"] == -1 else kwargs["groups"]
        # gcd(channels, groups) is the groups themselves where they divide.
        got = fitted_groups(channels, asked) if fit_groups else asked
        kwargs["groups"] = got
    try:
        new = group_norm(name=layer.name, dtype=getattr(layer, "dtype_policy", None), **kwargs)
    except (TypeError, ValueError) as error:
        raise type(error)(f"Cannot replace layer {layer.name!r} ({type(layer).__name__}): {error}") from None
    summary.append(
        {
            "name": layer.name,
            "replaced": type(layer).__name__,
            "channels": channels,
            "groups_asked": asked,
            "groups": got,
            "epsilon": kwargs["epsilon"],
        }
    )
    return new


def _print_fitted(summary):
    fitted = [row for row in summary if row["groups_asked"] is not None and row["groups"] != row["groups_asked"]]
    if not fitted:
        return
    lines = [
        f"replace_normalization: {len(fitted)} of {len(summary)} layers have channels that "
        f"their groups do not divide; they got gcd(channels, groups) groups:",
        f"{'layer':<40} {'channels':>8} {'asked':>6} {'groups':>6} {'per group':>9}",
    ]
    lines += [
        f"{row['name']:<40} {row['channels']:>8} {row['groups_asked']:>6} {row['groups']:>6} "
        f"{row['channels'] // row['groups']:>9}"
        for row in fitted
    ]
    print("\n".join(lines))


def fold_weight_standardization(model):
    """Returns a copy of `model` in which every WS convolution (of Keras 3 or
    tf_keras) is the plain convolution of its parent class holding the
    standardized kernel w_hat (and the same bias): the same outputs, to
    float32 rounding, without standardizing the kernels at every call (for
    serving, SavedModel and TFLite export). Other layers keep their weights;
    the original is left untouched. Nested models are handled too.

    The folded model is for inference: training it trains plain convolutions.
    """

    def swap(layer):
        if not isinstance(layer, WeightStandardized):
            return None
        config = layer.get_config()
        config.pop("epsilon")
        config.pop("convention")
        return plain_twin(layer).from_config(config)

    def weights(old):
        if isinstance(old, WeightStandardized):
            return [old.standardized_kernel()] + old.get_weights()[1:]
        return old.get_weights()

    return rebuild(model, swap, weights)


def rebuild(model, swap, weights):
    """A copy of `model` (Keras 3 or tf_keras; nested models too) in which
    each layer for which `swap(layer)` returns a layer is replaced by it and
    every other layer is rebuilt from its config; then each new layer gets
    `weights(old_layer)` (a list for `set_weights`, or None to keep its
    initial weights). A layer that its config cannot rebuild raises an error
    that names it."""
    K = _keras_of(model)

    def clone(layer):
        new = swap(layer)
        if new is not None:
            return new
        if isinstance(layer, K.Model):
            return rebuild(layer, swap, lambda old: None)
        try:
            return layer.__class__.from_config(layer.get_config())
        except Exception as error:  # any layer's own from_config
            raise ValueError(
                f"Cannot copy layer {layer.name!r} ({type(layer).__module__}.{type(layer).__name__}): its "
                f"get_config() does not rebuild it ({type(error).__name__}: {error}). Keras's clone_model fails "
                f"the same way; the layer's get_config must return every argument of its __init__."
            ) from error

    new = K.models.clone_model(model, clone_function=clone)
    for old_layer, new_layer in zip(_flat_layers(model, K), _flat_layers(new, K)):
        values = weights(old_layer) if old_layer.weights else None
        if values is not None:
            new_layer.set_weights(values)
    return new


def _targets(K):
    """Our GroupNormalization and the WS twins of the convolutions, in Keras `K`."""
    if K is keras:
        return GroupNormalization, WS_TWINS
    from keras_gn import legacy

    return legacy.GroupNormalization, legacy.WS_TWINS


def _keras_of(model):
    if isinstance(model, keras.Model):
        return keras
    try:
        import tf_keras
    except ImportError:
        tf_keras = None
    if tf_keras is not None and isinstance(model, tf_keras.Model):
        return tf_keras
    raise TypeError(f"replace_normalization needs a keras.Model (or a tf_keras one); got {type(model).__name__}.")


def _flat_layers(model, K):
    for layer in model.layers:
        if isinstance(layer, K.Model):
            yield from _flat_layers(layer, K)
        else:
            yield layer
