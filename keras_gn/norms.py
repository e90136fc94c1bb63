"""`normalization(name)`: one spelling for each normalization the paper compares.

    make = keras_gn.normalization("gn")             # or "bn", "syncbn", "frozen_bn", "brn", "ln", "in", "none"
    layer = make(axis=-1)                           # a fresh layer each call
    last = make(axis=-1, zero_init=True)            # gamma = 0: the last norm of a residual block
    make = keras_gn.normalization("gn", groups=16)  # GN's groups; ignored by "bn", "ln", ...
    make = keras_gn.normalization("bn", virtual_replicas=8)  # BN's statistics per 1/8 of the batch

A model builder calls the returned function as
`make(axis=..., zero_init=False, regularizer=None, name=None)`: `zero_init`
starts gamma at 0, `regularizer` (a Keras regularizer or None) applies to gamma
and beta.
"""

import functools
import sys

import keras

from keras_gn.batch_norm import VirtualReplicaBatchNormalization, check_virtual_replicas
from keras_gn.layers import GroupNormalization

__all__ = ["normalization", "NORMALIZATIONS"]

# Keras's BatchNormalization defaults are momentum 0.99 and epsilon 1e-3; the
# paper's (Caffe2/PyTorch) BN uses 0.9 and 1e-5.
_BN = {"momentum": 0.9, "epsilon": 1e-5}


def _table(layers, group_norm):
    """name -> (layer class, its arguments), for one Keras's layers."""
    bn = layers.BatchNormalization
    return {
        # Statistics of the replica's own batch, as the paper ran BN on 8 GPUs.
        "bn": (bn, dict(_BN)),
        # Statistics over the whole global batch, across replicas.
        "syncbn": (bn, dict(_BN, synchronized=True)),
        # Moving statistics and gamma/beta frozen (the detection baseline, BN*).
        "frozen_bn": (bn, dict(_BN, trainable=False)),
        # Batch Renormalization with the paper's r_max = 1.5 and d_max = 0.5.
        "brn": (bn, dict(_BN, renorm=True, renorm_clipping={"rmax": 1.5, "rmin": 1 / 1.5, "dmax": 0.5})),
        "gn": (group_norm, {"groups": 32}),
        "ln": (group_norm, {"groups": 1}),
        "in": (group_norm, {"group_size": 1}),
        "none": (None, {}),
    }


NORMALIZATIONS = _table(keras.layers, GroupNormalization)


def keras_module(framework):
    """The Keras of `framework`: "keras" (Keras 3) or "tf_keras" (Keras 2,
    for the Model Garden); both have the same layers API."""
    if framework == "keras":
        return keras
    if framework == "tf_keras":
        import tf_keras

        return tf_keras
    raise ValueError(f"framework must be 'keras' or 'tf_keras'; got {framework!r}.")


def _framework_table(framework):
    K = keras_module(framework)
    if K is keras:
        return NORMALIZATIONS, keras.layers.Identity
    from keras_gn import legacy

    return _table(K.layers, legacy.GroupNormalization), K.layers.Identity


def _make(
    cls, defaults, axis=-1, zero_init=False, regularizer=None, name=None, identity=keras.layers.Identity, **overrides
):
    if cls is None:
        return identity(name=name, **{k: v for k, v in overrides.items() if k == "dtype"})
    kwargs = dict(defaults)
    kwargs.update(overrides)
    if zero_init:
        kwargs["gamma_initializer"] = "zeros"
    if regularizer is not None:
        kwargs.setdefault("gamma_regularizer", regularizer)
        kwargs.setdefault("beta_regularizer", regularizer)
    return cls(axis=axis, name=name, **kwargs)


# The arguments that belong to one family of normalizations: given to
# `normalization` whatever the norm, they reach only the layers that take them,
# so a caller can pass `groups=` without asking which norm it builds.
_FAMILY_ARGS = {"gn": ("groups", "group_size"), "bn": ("momentum", "renorm_momentum")}
_FAMILY = {"gn": "gn", "bn": "bn", "syncbn": "bn", "frozen_bn": "bn", "brn": "bn"}
# The norms whose training statistics are a replica's own batch: with
# virtual replicas, each slice's.
_PER_REPLICA = ("bn", "brn")


def _is_layer_class(norm):
    """A Keras 3 or tf_keras layer class (tf_keras is imported already when
    one of its classes exists)."""
    if not isinstance(norm, type):
        return False
    bases = [keras.layers.Layer]
    if "tf_keras" in sys.modules:
        bases.append(sys.modules["tf_keras"].layers.Layer)
    return any(issubclass(norm, base) for base in bases)


def normalization(
    norm="gn", framework="keras", *, groups=None, group_size=None, momentum=None, virtual_replicas=1, **overrides
):
    """Returns a function that makes a fresh normalization layer.

    Args:
      norm: a name from `NORMALIZATIONS` ("bn", "syncbn", "frozen_bn", "brn",
        "gn", "ln", "in", "none"); or a Keras 3 or tf_keras layer class taking
        `axis` and `gamma_initializer`/`gamma_regularizer`/`beta_regularizer`
        (BN-like); or any callable with the signature
        `fn(axis, zero_init=False, regularizer=None, name=None)` returning a
        layer, which is returned as it is.
      framework: "keras" (Keras 3, default) or "tf_keras" (Keras 2, for the
        Model Garden: its BatchNormalization and `keras_gn.legacy`'s GN).
      groups, group_size: GN's groups (default 32) or channels per group;
        used by "gn" only and ignored by the other names ("ln" and "in" fix
        their own grouping), so callers may always pass them. Given with a
        class or callable, they go to it like `overrides`.
      momentum: the moving averages' momentum of the BN family ("bn",
        "syncbn", "frozen_bn", "brn"; default 0.9); ignored by the others.
      virtual_replicas: for "bn" and "brn", the statistics of each of this
        many equal slices of the batch, as BN and Batch Renorm on that many
        GPUs (`keras_gn.VirtualReplicaBatchNormalization`; Keras 3 only);
        ignored by the others ("syncbn" normalizes over the whole batch, GN,
        LN and IN over each image).
      **overrides: other arguments for the layer, e.g. `epsilon=1e-3`.

    Returns:
      `make(axis=-1, zero_init=False, regularizer=None, name=None) -> Layer`.
    """
    family = {"groups": groups, "group_size": group_size, "momentum": momentum}
    family = {k: v for k, v in family.items() if v is not None}
    if isinstance(norm, str):
        table, identity = _framework_table(framework)
        key = norm.lower()
        if key not in table:
            raise ValueError(f"Unknown normalization {norm!r}; known: {', '.join(table)}.")
        cls, defaults = table[key]
        check_virtual_replicas(virtual_replicas)
        if virtual_replicas > 1 and key in _PER_REPLICA:
            if framework != "keras":
                raise ValueError(f"virtual_replicas needs framework='keras'; got {framework!r}.")
            cls, defaults = VirtualReplicaBatchNormalization, dict(defaults, virtual_replicas=virtual_replicas)
        if cls is None and overrides:
            raise ValueError(f"norm='none' takes no arguments; got {sorted(overrides)}.")
        own = _FAMILY_ARGS.get(_FAMILY.get(key), ())
        overrides = {**{k: v for k, v in family.items() if k in own}, **overrides}
        if "group_size" in overrides:
            defaults = {k: v for k, v in defaults.items() if k != "groups"}
        if "groups" in overrides:
            defaults = {k: v for k, v in defaults.items() if k != "group_size"}
        return functools.partial(_make, cls, defaults, identity=identity, **overrides)
    if virtual_replicas != 1:
        family["virtual_replicas"] = virtual_replicas
    overrides = {**family, **overrides}  # a class or callable of the caller's: its own arguments
    if _is_layer_class(norm):
        return functools.partial(_make, norm, {}, **overrides)
    if callable(norm):
        if overrides:
            return functools.partial(norm, **overrides)
        return norm
    raise TypeError(
        f"norm must be a name ({', '.join(NORMALIZATIONS)}), a Keras layer class or a callable; "
        f"got {type(norm).__name__}."
    )
