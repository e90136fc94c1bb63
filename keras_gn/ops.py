"""The Group Normalization math, in one place.

For x with N samples, C channels and G groups, GN takes one mean and one
variance per (sample, group) over the C/G channels of the group and every
spatial position (Wu & He 2018, equations (1)-(2)):

    mu    = mean(x over the group)           sigma = sqrt(var(x over the group) + eps)
    y     = gamma_c * (x - mu) / sigma + beta_c

Two implementations with the same numbers:

* `group_norm`: the TensorFlow core. The statistics are float32 for every
  input dtype (float64 for float64), in two passes over x minus a shift
  (the group's first value), so that no digits cancel when the mean is
  large against the spread; the output is `(x - mean) * (gamma / sigma) +
  beta`, one pass over x. Its gradient is analytic (`tf.custom_gradient`)
  and keeps only x, gamma and four per-group statistics for the backward
  pass. Forward and backward run one of two ways (`_compile_core`): in a
  graph whose sizes are static, as XLA-compiled functions with the batch
  open (`_forward`, `_backward`; on a CPU the sums over positions are
  short matrix products in blocks, added up block by block, so that their
  error does not grow with the size of the feature map); in eager calls
  and where sizes are open, as one cached plain graph of open sizes
  (`_forward_open`, `_backward_open`), so that a new input shape compiles
  nothing.
* `keras_group_norm`: the same formula in `keras.ops`, used by the layer on
  Keras backends other than TensorFlow (JAX, PyTorch), differentiated by the
  backend's autodiff.
"""

import contextlib
import math
import numbers

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "group_norm",
    "keras_group_norm",
    "check_epsilon",
    "check_float",
    "check_groups",
    "normalize_axis",
    "is_integer",
    "is_real",
    "set_cpu_sums",
    "inline_core",
]


def is_integer(value):
    """True for Python and NumPy integers, False for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value):
    """True for Python and NumPy real numbers, False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def normalize_axis(axis, rank):
    """Returns the channel axis as a positive index, or raises ValueError.

    Any axis but the batch axis (0) can hold the channels, for inputs of rank
    2 (`[N, C]`) and above; -1 (channels_last) and 1 (channels_first) are the
    fast layouts, others are moved to the last axis and back.
    """
    if rank is None or rank < 2:
        raise ValueError(
            f"GroupNormalization needs an input of rank 2 or more ([N, C], "
            f"[N, L, C], [N, H, W, C], [N, T, H, W, C]); got rank {rank}."
        )
    if not is_integer(axis):
        raise TypeError(f"axis must be an int (-1 or 1); got {axis!r}.")
    axis = int(axis)
    if not -rank <= axis < rank:
        raise ValueError(
            f"axis={axis} is out of range for a rank-{rank} input "
            f"(valid: {-rank}..{rank - 1}; -1 for channels_last, 1 for "
            f"channels_first)."
        )
    positive = axis % rank
    if positive == 0:
        raise ValueError(
            f"axis={axis} is the batch axis of a rank-{rank} input; the "
            f"channel axis must be -1 (channels_last) or 1 (channels_first)."
        )
    return positive


def check_epsilon(epsilon, meaning="added to the variance"):
    """Returns `epsilon` as a Python float, or raises ValueError unless it is
    a positive number (Python's or NumPy's): the one check of GN's layers,
    its core and the weight-standardized convolutions."""
    if not is_real(epsilon) or not epsilon > 0:
        raise ValueError(f"epsilon must be a positive number ({meaning}); got {epsilon!r}.")
    return float(epsilon)


def check_float(dtype_name, layer_name=None):
    """Raises TypeError unless `dtype_name` (e.g. "float16", "int32") is a
    floating-point dtype: the one message of the core and both layers."""
    if "float" not in dtype_name:
        where = f" ({layer_name!r})" if layer_name else ""
        raise TypeError(
            f"GroupNormalization{where} needs floating-point inputs; got {dtype_name}. "
            f"Cast the input to a float dtype first, e.g. float32."
        )


def check_groups(channels, groups):
    """Raises ValueError unless `groups` divides the `channels` evenly."""
    if channels is None:
        raise ValueError(
            "GroupNormalization needs a known number of channels, but the "
            "channel axis of the input is undefined (None). Give the input "
            "a static channel dimension."
        )
    if groups > channels:
        raise ValueError(
            f"groups={groups} is more than the {channels} channels of the "
            f"input; use at most {channels} groups (groups={channels} is "
            f"Instance Normalization)."
        )
    if channels % groups:
        divisors = [g for g in range(1, channels + 1) if channels % g == 0]
        raise ValueError(
            f"{channels} channels cannot be split evenly into groups={groups} "
            f"({channels} % {groups} = {channels % groups}); groups must "
            f"divide the channel count, e.g. one of {divisors}."
        )


def _accumulator(dtype):
    # float16 and bfloat16 statistics overflow or lose precision: accumulate in
    # float32 (float64 inputs keep float64).
    return tf.float64 if dtype == tf.float64 else tf.float32


def _positions(x, channels_last):
    """The number of positions per (sample, channel): a Python int when
    every spatial size is static (whatever the batch), else a scalar tensor."""
    spatial = x.shape[1:-1] if channels_last else x.shape[2:]
    if all(size is not None for size in spatial):
        return math.prod(spatial)
    sizes = tf.shape(x)[1:-1] if channels_last else tf.shape(x)[2:]
    return tf.reduce_prod(sizes)


def _view(x, channels_last, dtype):
    """x as [N, S, C] (channels_last) or [N, C, S], S = all positions; S is
    static whenever the spatial sizes are, so that the CPU's sums apply
    under an unknown batch too. No -1 in the shape: an empty batch has no
    size to infer it from."""
    batch = tf.shape(x)[0]
    positions = _positions(x, channels_last)
    if channels_last:
        shape = tf.stack([batch, positions, x.shape[-1]])
    else:
        shape = tf.stack([batch, x.shape[1], positions])
    return tf.cast(tf.reshape(x, shape), dtype)


_SUM_BY_MATMUL = None


def _sum_by_matmul():
    # XLA's CPU backend reduces over a non-minor axis several times slower
    # than a batched matrix-vector product runs, so on a machine without
    # accelerators the per-channel sums are ones @ t. On GPU and TPU, float32
    # matmuls may run in TF32 or bfloat16, which would spoil the statistics:
    # there they stay plain (fast, exact) reductions.
    global _SUM_BY_MATMUL
    if _SUM_BY_MATMUL is None:
        accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
        _SUM_BY_MATMUL = not accelerators
    return _SUM_BY_MATMUL


def set_cpu_sums(enabled):
    """Chooses how the core sums over positions: True for the CPU's matrix
    products, False for the plain reductions of GPUs and TPUs, None for the
    choice by device (the default). For benchmarks, e.g. to export the
    accelerator program from a machine without an accelerator."""
    global _SUM_BY_MATMUL
    _SUM_BY_MATMUL = enabled


# Positions summed by one matrix product on the CPU path. A product sums its
# terms one after another, so its rounding error grows with their number;
# blocks of at most this many positions, summed again block by block, keep
# the error of a sum over 2**24 positions at a few float32 ulps.
BLOCK = 1024


def _block_length(positions):
    """A divisor of `positions` in [BLOCK / 4, BLOCK], or BLOCK (the view is
    then padded with zeros to a multiple of it)."""
    for length in range(BLOCK, BLOCK // 4 - 1, -1):
        if positions % length == 0:
            return length
    return BLOCK


def _matmul_sums(t, channels_last):
    """Sums over the positions axis of [N, S, C] or [N, C, S] by ones @ t."""
    if channels_last:
        ones = tf.ones(tf.stack([tf.shape(t)[0], 1, tf.shape(t)[1]]), t.dtype)
        return tf.matmul(ones, t)[:, 0, :]
    ones = tf.ones(tf.stack([tf.shape(t)[0], tf.shape(t)[2], 1]), t.dtype)
    return tf.matmul(t, ones)[:, :, 0]


def _channel_sums(t, channels_last, sums):
    """Per-(sample, channel) sums over the positions of a view: [N, C].

    `sums`: "matmul" (the CPU) for matrix products in blocks of at most
    BLOCK positions, summed again block by block; "xla" for XLA's own
    reduction, exact to a few ulps at any size (GPU and TPU, and the only
    choice when the number of positions is known only at run time)."""
    axis = 1 if channels_last else 2
    positions = t.shape[axis]
    if sums == "xla" or positions is None:
        return tf.reduce_sum(t, axis=axis)
    while positions > BLOCK:
        # [N, S, C] -> [N * S/L, L, C]: per-block sums -> [N, S/L, C], and
        # the same again over the blocks until few enough remain.
        length = _block_length(positions)
        if positions % length:
            pad = [[0, 0], [0, 0], [0, 0]]
            pad[axis] = [0, -positions % length]
            t = tf.pad(t, pad)
            positions += -positions % length
        blocks = positions // length
        channels = t.shape[2 if channels_last else 1]
        if channels_last:
            t = tf.reshape(_matmul_sums(tf.reshape(t, [-1, length, channels]), True), [-1, blocks, channels])
        else:
            t = tf.reshape(_matmul_sums(tf.reshape(t, [-1, blocks, length]), False), [-1, channels, blocks])
        positions = blocks
    return _matmul_sums(t, channels_last)


def _group_sums(per_channel, groups):
    """[N, C] -> [N, G]: sums over the channels of each group."""
    return tf.reduce_sum(tf.reshape(per_channel, [-1, groups, per_channel.shape[-1] // groups]), axis=2)


def _broadcast(per_group, channels, channels_last):
    """[N, G] -> [N, 1, C] or [N, C, 1]: each group's value on its channels."""
    groups = per_group.shape[-1]
    per_channel = tf.reshape(
        tf.broadcast_to(per_group[:, :, None], tf.stack([tf.shape(per_group)[0], groups, channels // groups])),
        [-1, channels],
    )
    return per_channel[:, None, :] if channels_last else per_channel[:, :, None]


def _param(p, channels_last, dtype):
    """[C] -> [1, 1, C] or [1, C, 1]."""
    p = tf.cast(p, dtype)
    return p[None, None, :] if channels_last else p[None, :, None]


def _group_count(view, groups, channels_last):
    # Elements per (sample, group): positions x channels per group.
    positions = tf.shape(view)[1 if channels_last else 2]
    return tf.cast(positions * (view.shape[-1 if channels_last else 1] // groups), view.dtype)


def _moments(v, groups, channels_last, sums):
    """Per-(sample, group) statistics of a view in two passes around a shift:
    `shift`, the group's first value; `offset`, the mean of v - shift
    rounded to the accumulator; `residual`, the mean of v - shift - offset
    (the offset's rounding), so that mean = shift + offset + residual; and
    the variance, the mean of (v - shift - offset)**2 less residual**2.
    v - shift is exact and of the size of the spread, not of the mean, so no
    digits cancel however large the mean (a constant group gives exactly 0).
    The offset is up to sqrt(count) standard deviations, and its rounding
    (a relative 6e-8 in float32) would shift every output of the group by
    the same amount; the residual, taken in the second pass with the
    variance, removes it. Summing v itself first would cost the same pass."""
    channels = v.shape[-1 if channels_last else 1]
    size = channels // groups
    count = _group_count(v, groups, channels_last)
    shift = v[:, 0, ::size] if channels_last else v[:, ::size, 0]  # [N, G]
    centered = v - _broadcast(shift, channels, channels_last)
    offset = _group_sums(_channel_sums(centered, channels_last, sums), groups) / count
    deviation = centered - _broadcast(offset, channels, channels_last)
    residual = _group_sums(_channel_sums(deviation, channels_last, sums), groups) / count
    var = _group_sums(_channel_sums(tf.square(deviation), channels_last, sums), groups) / count
    return shift, offset, residual, tf.maximum(var - tf.square(residual), 0.0)


def _centered(v, shift, offset, residual, channels_last):
    """x - mean, as ((x - shift) - offset) - residual: exact to an ulp of the
    spread, and without a systematic offset per group."""
    channels = v.shape[-1 if channels_last else 1]
    centered = (v - _broadcast(shift, channels, channels_last)) - _broadcast(offset, channels, channels_last)
    return centered - _broadcast(residual, channels, channels_last)


def _forward(x, gamma, beta, groups, channels_last, epsilon, sums):
    acc = _accumulator(x.dtype)
    channels = x.shape[-1 if channels_last else 1]
    # The casts are fused by XLA: no float32 copy of x is kept, but every sum
    # is accumulated in float32.
    v = _view(x, channels_last, acc)
    shift, offset, residual, var = _moments(v, groups, channels_last, sums)
    inv = tf.math.rsqrt(var + epsilon)
    # y = (x - mean) * scale + beta, scale = gamma / sigma per (sample,
    # channel). Not folded into x * scale + (beta - mean * scale), whose two
    # large terms cancel when the mean is large against the spread.
    scale = _param(gamma, channels_last, acc) * _broadcast(inv, channels, channels_last)
    y = _centered(v, shift, offset, residual, channels_last) * scale + _param(beta, channels_last, acc)
    return tf.reshape(tf.cast(y, x.dtype), tf.shape(x)), shift, offset, residual, inv


def _backward(dy, x, gamma, shift, offset, residual, inv, groups, channels_last, sums):
    acc = _accumulator(x.dtype)
    channels = x.shape[-1 if channels_last else 1]
    v = _view(x, channels_last, acc)
    d = _view(dy, channels_last, acc)
    count = _group_count(v, groups, channels_last)
    gamma = tf.cast(gamma, acc)
    inv_c = _broadcast(inv, channels, channels_last)
    centered = _centered(v, shift, offset, residual, channels_last)

    # Per-(sample, channel) sums of dy and dy * xhat: [N, C].
    sum_dy = _channel_sums(d, channels_last, sums)
    sum_dy_xhat = _channel_sums(d * centered, channels_last, sums) * tf.repeat(inv, channels // groups, axis=1)
    dbeta = tf.reduce_sum(sum_dy, axis=0)
    dgamma = tf.reduce_sum(sum_dy_xhat, axis=0)

    # dx = inv * (g*dy - mean_group(g*dy) - xhat * mean_group(g*dy*xhat)),
    # written as one multiply-add pass over dy and (x - mean).
    mean_g_dy = _broadcast(_group_sums(gamma * sum_dy, groups) / count, channels, channels_last)
    mean_g_dy_xhat = _broadcast(_group_sums(gamma * sum_dy_xhat, groups) / count, channels, channels_last)
    g = _param(gamma, channels_last, acc)
    dx = (g * inv_c) * d - (inv_c * inv_c * mean_g_dy_xhat) * centered - inv_c * mean_g_dy
    dx = tf.reshape(tf.cast(dx, x.dtype), tf.shape(x))
    return dx, dgamma, dbeta


def group_norm(x, gamma, beta, groups, axis=-1, epsilon=1e-5, compiled=None):
    """Group Normalization of `x`, on TensorFlow with an XLA-compiled core.

    Args:
      x: a float tensor of rank >= 2 (float16, bfloat16, float32 or float64),
        channels on `axis`.
      gamma: per-channel scale of shape [C], or None for no scale.
      beta: per-channel shift of shape [C], or None for no shift.
      groups: number of groups G; must divide C. G=1 is Layer Normalization,
        G=C Instance Normalization.
      axis: the channel axis: -1 (channels_last, default), 1
        (channels_first), or any other but the batch axis 0 (moved to the
        last axis and back).
      epsilon: added to the variance, > 0 (the paper's 1e-5 by default).
        Python or NumPy numbers alike, as `groups`.
      compiled: whether forward and backward run as XLA-compiled functions
        of their own (one program per input shape, reused while the shape
        repeats): None (default) inside a graph whose spatial sizes are
        static; False for plain TensorFlow ops, which compile nothing at a
        new shape; True always (eager calls too). Under a caller's own XLA
        compilation either way becomes part of the caller's program.

    Returns:
      A tensor of x's shape and dtype. The statistics and the scale are
      computed in float32 (float64 for float64 inputs).

    Safe inside a caller's own `tf.function(jit_compile=True)` and inside
    `tf.distribute` replica functions. No shape depends on the data.
    """
    x = tf.convert_to_tensor(x)
    check_float(x.dtype.name)
    rank = x.shape.rank
    channel_axis = normalize_axis(axis, rank)
    channels = x.shape[channel_axis]
    if not is_integer(groups) or groups < 1:
        raise ValueError(f"groups must be a positive integer; got {groups!r}.")
    groups = int(groups)
    check_groups(channels, groups)
    epsilon = check_epsilon(epsilon)

    gamma = tf.ones([channels], tf.float32) if gamma is None else gamma
    beta = tf.zeros([channels], tf.float32) if beta is None else beta
    gamma = tf.convert_to_tensor(gamma)
    beta = tf.convert_to_tensor(beta)
    for name, param in (("gamma", gamma), ("beta", beta)):
        if param.shape.rank != 1 or param.shape[0] != channels:
            raise ValueError(f"{name} must have shape [{channels}] (one value per channel); got {param.shape}.")
    if channel_axis in (1, rank - 1):
        return _group_norm(x, gamma, beta, groups, channel_axis == rank - 1, epsilon, compiled)
    # Channels elsewhere: normalise them as channels_last.
    perm = [i for i in range(rank) if i != channel_axis] + [channel_axis]
    y = _group_norm(tf.transpose(x, perm), gamma, beta, groups, True, epsilon, compiled)
    return tf.transpose(y, np.argsort(perm))


# The same passes for open sizes: the view keeps x's axes, with the channels
# split into [G, C/G], and every statistic keeps its dimensions, so that it
# broadcasts with no op of its own: few ops, which matters where a new shape
# would otherwise trace and optimize many (eager calls, graphs traced at
# each new size). Each sum runs over one or two axes at a time (the
# innermost spatial axis with the group's channels, then every other
# spatial axis), so that no run of terms is longer than one axis of the map.


def _open_layout(rank, channels_last):
    """(spatial axes, the axis of the channels within a group) of the open view."""
    if channels_last:  # [N, *spatial, G, C/G]
        return list(range(1, rank - 1)), rank
    return list(range(3, rank + 1)), 2  # [N, G, C/G, *spatial]


def _open_view(x, groups, channels_last, dtype):
    shape = tf.shape(x)
    channels = shape[-1] if channels_last else shape[1]
    split = tf.stack([groups, channels // groups])
    if channels_last:
        view = tf.concat([shape[:-1], split], 0)
    else:
        view = tf.concat([shape[:1], split, shape[2:]], 0)
    return tf.cast(tf.reshape(x, view), dtype)


def _open_param(p, rank, inner, groups, dtype):
    """[C] -> the open view's [1, ..., G, C/G, ..., 1]."""
    shape = [1] * (rank + 1)
    shape[inner - 1 : inner + 1] = [groups, -1]
    return tf.reshape(tf.cast(p, dtype), shape)


def _open_count(v, spatial, inner):
    """Elements per (sample, group) of the open view, in its dtype."""
    return tf.cast(tf.reduce_prod(tf.gather(tf.shape(v), [*spatial, inner])), v.dtype)


def _spatial_sum(t, spatial, inner=None):
    """Sums over the spatial axes (and the `inner` one with the innermost),
    keeping dimensions, one axis (pair) at a time from the innermost: a
    plain reduction adds its terms one after another, so that its error
    grows with their number, which one axis of a map bounds. A single
    spatial axis ([N, L, C] inputs: sequences, signals) bounds nothing:
    there float32 terms are added in float64."""
    if not spatial:
        return t if inner is None else tf.reduce_sum(t, axis=inner, keepdims=True)
    first = [spatial[-1]] if inner is None else [spatial[-1], inner]
    if len(spatial) == 1 and t.dtype == tf.float32:
        return tf.cast(tf.reduce_sum(tf.cast(t, tf.float64), axis=first, keepdims=True), t.dtype)
    t = tf.reduce_sum(t, axis=first, keepdims=True)
    for axis in reversed(spatial[:-1]):
        t = tf.reduce_sum(t, axis=axis, keepdims=True)
    return t


def _forward_open(x, gamma, beta, groups, channels_last, epsilon):
    acc = _accumulator(x.dtype)
    rank = x.shape.rank
    spatial, inner = _open_layout(rank, channels_last)
    v = _open_view(x, groups, channels_last, acc)
    count = _open_count(v, spatial, inner)
    first = tuple(slice(0, 1) if axis in spatial or axis == inner else slice(None) for axis in range(rank + 1))
    # The passes of `_moments`: around the group's first value, the mean of
    # the deviations (the offset's rounding) taken out.
    centered = v - v[first]
    offset = _spatial_sum(centered, spatial, inner) / count
    deviation = centered - offset
    residual = _spatial_sum(deviation, spatial, inner) / count
    var = tf.maximum(_spatial_sum(tf.square(deviation), spatial, inner) / count - tf.square(residual), 0.0)
    inv = tf.math.rsqrt(var + epsilon)
    scale = inv * _open_param(gamma, rank, inner, groups, acc)
    y = (deviation - residual) * scale + _open_param(beta, rank, inner, groups, acc)
    return tf.reshape(tf.cast(y, x.dtype), tf.shape(x)), v[first], offset, residual, inv


def _backward_open(dy, x, gamma, shift, offset, residual, inv, groups, channels_last):
    acc = _accumulator(x.dtype)
    rank = x.shape.rank
    spatial, inner = _open_layout(rank, channels_last)
    v = _open_view(x, groups, channels_last, acc)
    d = _open_view(dy, groups, channels_last, acc)
    count = _open_count(v, spatial, inner)
    g = _open_param(gamma, rank, inner, groups, acc)
    xhat = (((v - shift) - offset) - residual) * inv
    # Per-(sample, channel) sums of dy and dy * xhat, as `_backward`.
    sum_dy = _spatial_sum(d, spatial)
    sum_dy_xhat = _spatial_sum(d * xhat, spatial)
    dbeta = tf.reshape(tf.reduce_sum(sum_dy, axis=0), [-1])
    dgamma = tf.reshape(tf.reduce_sum(sum_dy_xhat, axis=0), [-1])
    mean_g_dy = tf.reduce_sum(g * sum_dy, axis=inner, keepdims=True) / count
    mean_g_dy_xhat = tf.reduce_sum(g * sum_dy_xhat, axis=inner, keepdims=True) / count
    dx = inv * (g * d - mean_g_dy - xhat * mean_g_dy_xhat)
    return tf.reshape(tf.cast(dx, x.dtype), tf.shape(x)), dgamma, dbeta


# (pass, signature, constants, XLA) -> the pass as a tf.function.
_FUNCTIONS = {}


def _signature(t, open_axes):
    """The TensorSpec of a pass's argument, with the sizes on `open_axes` left open."""
    return tf.TensorSpec([None if axis in open_axes else size for axis, size in enumerate(t.shape)], t.dtype)


def _function(name, fn, tensors, constants, xla):
    """`fn(*tensors, *constants)` as a `tf.function`, made once per signature
    and kept: with `xla`, XLA-compiled with the batch open (one trace per
    layer shape; XLA compiles it per batch size as it runs, then reuses
    it); without, a plain graph with every size open, the channels' too
    (one trace per number of groups, epsilon, rank and layout: an eager
    call is one graph call instead of some forty eager ops, and a new shape
    or channel count traces and compiles nothing).
    A graph that calls it holds one call, not the ops: it is traced once,
    not again in every graph that uses it."""
    signature = []
    for t in tensors:
        if not xla:  # every size open, the channels' too
            open_axes = range(t.shape.rank)
        else:  # the batch of x, dy and the [N, G] statistics; [C] parameters as they are
            open_axes = [0] if t.shape.rank > 1 else []
        signature.append(_signature(t, open_axes))
    key = (name, tuple((spec.dtype, tuple(spec.shape)) for spec in signature), constants, xla)
    function = _FUNCTIONS.get(key)
    if function is None:
        function = tf.function(
            lambda *args: fn(*args, *constants),
            input_signature=signature,
            jit_compile=xla,
            autograph=False,
            # Not inlined into the caller's graph: instantiated once, not
            # optimized again with every graph that calls it.
            experimental_attributes=None if xla else {"_noinline": True},
        )
        _FUNCTIONS[key] = function
    return function(*tensors)


_INLINE = False


@contextlib.contextmanager
def inline_core():
    """Within this context, graphs being traced get the core's passes as
    plain ops of their own, not as calls of the core's functions: for
    converters that do not inline a SavedModel's functions (tf2onnx), e.g.

        with keras_gn.ops.inline_core():
            model.export("saved")          # then python -m tf2onnx.convert --saved-model saved

    Eager calls are unaffected. The ops are those of the open-sizes path."""
    global _INLINE
    previous, _INLINE = _INLINE, True
    try:
        yield
    finally:
        _INLINE = previous


def _compile_core(x, compiled):
    """Whether the core runs as XLA-compiled functions of its own: with
    `compiled=None`, inside a graph (a `tf.function`, `fit`, `predict`, a
    SavedModel) whose spatial sizes are static, where the program is
    compiled once per layer shape and batch size and then reused; a
    caller's own XLA compilation (`jit_compile=True`, TPU) inlines it.
    Otherwise the same formula runs as a plain TensorFlow graph whose sizes
    are open: a new input shape then traces and compiles nothing."""
    if compiled is not None:
        return bool(compiled)
    return not tf.executing_eagerly() and all(size is not None for size in x.shape[1:])


def _group_norm(x, gamma, beta, groups, channels_last, epsilon, compiled=None):
    inline = _INLINE and not tf.executing_eagerly()
    compile_core = not inline and _compile_core(x, compiled)
    # How the passes sum (see `_channel_sums`) is an argument of theirs, so
    # that it is part of the functions' keys (see `set_cpu_sums`).
    sums = "matmul" if _sum_by_matmul() else "xla"
    if compile_core:
        forward, backward, extra = _forward, _backward, (sums,)
    else:
        forward, backward, extra = _forward_open, _backward_open, ()

    def run(name, fn, tensors, constants):
        if inline:
            return fn(*tensors, *constants)
        return _function(name, fn, tensors, constants, compile_core)

    @tf.custom_gradient
    def fn(x, gamma, beta):
        y, shift, offset, residual, inv = run(
            "forward", forward, (x, gamma, beta), (groups, channels_last, epsilon, *extra)
        )
        # The open functions know no size: give the graph back x's.
        y = tf.ensure_shape(y, x.shape)

        def grad(dy):
            tensors = (dy, x, gamma, shift, offset, residual, inv)
            dx, dgamma, dbeta = run("backward", backward, tensors, (groups, channels_last, *extra))
            dx = tf.ensure_shape(dx, x.shape)
            dgamma = tf.ensure_shape(tf.cast(dgamma, gamma.dtype), gamma.shape)
            return dx, dgamma, tf.ensure_shape(tf.cast(dbeta, beta.dtype), beta.shape)

        return y, grad

    return fn(x, gamma, beta)


def keras_group_norm(x, gamma, beta, groups, axis=-1, epsilon=1e-5):
    """The same Group Normalization in `keras.ops`, for any Keras backend.

    Arguments as `group_norm`; the axis and groups must already be valid
    (the layer checks them at build time). Statistics are float32 (float64
    for float64 inputs), in the same two passes as `group_norm`; the output
    has x's dtype. Differentiated by the backend's own autodiff.
    """
    ops = keras.ops
    rank = len(x.shape)
    channel_axis = axis % rank
    if channel_axis not in (1, rank - 1):
        moved = keras_group_norm(ops.moveaxis(x, channel_axis, -1), gamma, beta, groups, -1, epsilon)
        return ops.moveaxis(moved, -1, channel_axis)
    channels_last = channel_axis == rank - 1
    groups = int(groups)
    group_size = x.shape[channel_axis] // groups
    shape = ops.shape(x)
    if channels_last:
        view = ops.reshape(x, (shape[0], -1, groups, group_size))
        axes, param_shape = (1, 3), (1, 1, groups, group_size)
    else:
        view = ops.reshape(x, (shape[0], groups, group_size, -1))
        axes, param_shape = (2, 3), (1, groups, group_size, 1)
    acc = "float64" if keras.backend.standardize_dtype(x.dtype) == "float64" else "float32"
    xf = ops.cast(view, acc)
    # The same two passes around each group's first value as `_moments`.
    # y does not depend on the shift, so no gradient flows through it.
    first = xf[:, :1, :, :1] if channels_last else xf[:, :, :1, :1]
    centered = xf - ops.stop_gradient(first)
    offset = ops.mean(centered, axis=axes, keepdims=True)
    deviation = centered - offset
    # The offset's rounding, removed as in `_moments`.
    residual = ops.mean(deviation, axis=axes, keepdims=True)
    var = ops.maximum(ops.mean(ops.square(deviation), axis=axes, keepdims=True) - ops.square(residual), 0.0)
    deviation = deviation - residual
    scale = ops.rsqrt(var + float(epsilon))
    if gamma is not None:
        scale = scale * ops.reshape(ops.cast(gamma, acc), param_shape)
    y = deviation * scale
    if beta is not None:
        y = y + ops.reshape(ops.cast(beta, acc), param_shape)
    return ops.reshape(ops.cast(y, x.dtype), shape)
