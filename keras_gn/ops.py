"""The Group Normalization math, in one place.

For x with N samples, C channels and G groups, GN takes one mean and one
variance per (sample, group) over the C/G channels of the group and every
spatial position (Wu & He 2018, equations (1)-(2)):

    mu    = mean(x over the group)           sigma = sqrt(var(x over the group) + eps)
    y     = gamma_c * (x - mu) / sigma + beta_c

Two implementations with the same numbers:

* `group_norm`: the TensorFlow core. Forward and backward are each one
  XLA-compiled function; the statistics are float32 for every input dtype
  (float64 for float64);
  gamma and beta are folded into one per-(sample, channel) scale and shift, so
  the output is a single multiply-add over x. Its gradient is analytic
  (`tf.custom_gradient`) and keeps only x, gamma and the [N, G] mean and inverse
  standard deviation for the backward pass.
* `keras_group_norm`: the same formula in `keras.ops`, used by the layer on
  Keras backends other than TensorFlow (JAX, PyTorch), differentiated by the
  backend's autodiff.
"""

import keras
import tensorflow as tf

__all__ = ["group_norm", "keras_group_norm", "check_groups", "normalize_axis"]


def normalize_axis(axis, rank):
    """Returns the channel axis as a positive index, or raises ValueError.

    Group Normalization supports channels_last (`axis=-1`) and channels_first
    (`axis=1`) layouts, for inputs of rank 2 (`[N, C]`) and above.
    """
    if rank is None or rank < 2:
        raise ValueError(
            f"GroupNormalization needs an input of rank 2 or more ([N, C], "
            f"[N, L, C], [N, H, W, C], [N, T, H, W, C]); got rank {rank}."
        )
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(f"axis must be an int (-1 or 1); got {axis!r}.")
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
    if positive not in (1, rank - 1):
        raise ValueError(
            f"axis={axis} of a rank-{rank} input is neither the last axis "
            f"(channels_last, -1) nor axis 1 (channels_first); move the "
            f"channels to one of those two positions."
        )
    return positive


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


def _view(x, channels_last, dtype):
    """x as [N, S, C] (channels_last) or [N, C, S], S = all positions."""
    batch = tf.shape(x)[0]
    if channels_last:
        shape = tf.stack([batch, -1, x.shape[-1]])
    else:
        shape = tf.stack([batch, x.shape[1], -1])
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


def _channel_sums(t, channels_last):
    """Per-(sample, channel) sums over the positions of a view: [N, C]."""
    if _sum_by_matmul():
        if channels_last:
            ones = tf.ones(tf.stack([tf.shape(t)[0], 1, tf.shape(t)[1]]), t.dtype)
            return tf.matmul(ones, t)[:, 0, :]
        ones = tf.ones(tf.stack([tf.shape(t)[0], tf.shape(t)[2], 1]), t.dtype)
        return tf.matmul(t, ones)[:, :, 0]
    return tf.reduce_sum(t, axis=1 if channels_last else 2)


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


@tf.function(jit_compile=True, autograph=False)
def _forward(x, gamma, beta, groups, channels_last, epsilon):
    acc = _accumulator(x.dtype)
    channels = x.shape[-1 if channels_last else 1]
    # The casts are fused by XLA: no float32 copy of x is kept, but every sum
    # is accumulated in float32.
    v = _view(x, channels_last, acc)
    count = _group_count(v, groups, channels_last)
    mean = _group_sums(_channel_sums(v, channels_last), groups) / count
    centered = v - _broadcast(mean, channels, channels_last)
    var = _group_sums(_channel_sums(tf.square(centered), channels_last), groups) / count
    inv = tf.math.rsqrt(var + epsilon)
    # y = x * scale + shift, with scale and shift per (sample, channel).
    scale = _param(gamma, channels_last, acc) * _broadcast(inv, channels, channels_last)
    shift = _param(beta, channels_last, acc) - _broadcast(mean, channels, channels_last) * scale
    y = tf.cast(v * scale + shift, x.dtype)
    return tf.reshape(y, tf.shape(x)), mean, inv


@tf.function(jit_compile=True, autograph=False)
def _backward(dy, x, gamma, mean, inv, groups, channels_last):
    acc = _accumulator(x.dtype)
    channels = x.shape[-1 if channels_last else 1]
    v = _view(x, channels_last, acc)
    d = _view(dy, channels_last, acc)
    count = _group_count(v, groups, channels_last)
    gamma = tf.cast(gamma, acc)
    inv_c = _broadcast(inv, channels, channels_last)
    # x - mean rather than x keeps the cancellation small when the mean is
    # large compared with the spread.
    centered = v - _broadcast(mean, channels, channels_last)

    # Per-(sample, channel) sums of dy and dy * xhat: [N, C].
    sum_dy = _channel_sums(d, channels_last)
    sum_dy_xhat = _channel_sums(d * centered, channels_last) * tf.repeat(inv, channels // groups, axis=1)
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


def group_norm(x, gamma, beta, groups, axis=-1, epsilon=1e-5):
    """Group Normalization of `x`, on TensorFlow with an XLA-compiled core.

    Args:
      x: a float tensor of rank >= 2 (float16, bfloat16, float32 or float64),
        channels on `axis`.
      gamma: per-channel scale of shape [C], or None for no scale.
      beta: per-channel shift of shape [C], or None for no shift.
      groups: number of groups G; must divide C. G=1 is Layer Normalization,
        G=C Instance Normalization.
      axis: -1 (channels_last) or 1 (channels_first).
      epsilon: added to the variance, > 0 (the paper's 1e-5 by default).

    Returns:
      A tensor of x's shape and dtype. The statistics, the scale and the
      shift are computed in float32 (float64 for float64 inputs).

    Safe inside a caller's own `tf.function(jit_compile=True)` and inside
    `tf.distribute` replica functions. No shape depends on the data.
    """
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise TypeError(
            f"GroupNormalization needs floating-point inputs; got {x.dtype.name}. "
            f"Cast the input, e.g. tf.cast(x, tf.float32)."
        )
    rank = x.shape.rank
    channel_axis = normalize_axis(axis, rank)
    channels = x.shape[channel_axis]
    check_groups(channels, groups)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0; got {epsilon}.")
    channels_last = channel_axis == rank - 1

    gamma = tf.ones([channels], tf.float32) if gamma is None else gamma
    beta = tf.zeros([channels], tf.float32) if beta is None else beta
    gamma = tf.convert_to_tensor(gamma)
    beta = tf.convert_to_tensor(beta)
    for name, param in (("gamma", gamma), ("beta", beta)):
        if param.shape.rank != 1 or param.shape[0] != channels:
            raise ValueError(
                f"{name} must have shape [{channels}] (one value per channel); "
                f"got {param.shape}."
            )
    return _group_norm(x, gamma, beta, groups, channels_last, float(epsilon))


def _group_norm(x, gamma, beta, groups, channels_last, epsilon):
    @tf.custom_gradient
    def fn(x, gamma, beta):
        y, mean, inv = _forward(x, gamma, beta, groups, channels_last, epsilon)

        def grad(dy):
            dx, dgamma, dbeta = _backward(dy, x, gamma, mean, inv, groups, channels_last)
            return dx, tf.cast(dgamma, gamma.dtype), tf.cast(dbeta, beta.dtype)

        return y, grad

    return fn(x, gamma, beta)


def keras_group_norm(x, gamma, beta, groups, axis=-1, epsilon=1e-5):
    """The same Group Normalization in `keras.ops`, for any Keras backend.

    Arguments as `group_norm`; the axis and groups must already be valid
    (the layer checks them at build time). Statistics are float32 (float64
    for float64 inputs), the output
    has x's dtype. Differentiated by the backend's own autodiff.
    """
    ops = keras.ops
    rank = len(x.shape)
    channel_axis = axis % rank
    channels_last = channel_axis == rank - 1
    channels = x.shape[channel_axis]
    group_size = channels // groups
    shape = ops.shape(x)
    if channels_last:
        view = ops.reshape(x, (shape[0], -1, groups, group_size))
        axes, param_shape = (1, 3), (1, 1, groups, group_size)
    else:
        view = ops.reshape(x, (shape[0], groups, group_size, -1))
        axes, param_shape = (2, 3), (1, groups, group_size, 1)
    acc = "float64" if keras.backend.standardize_dtype(x.dtype) == "float64" else "float32"
    xf = ops.cast(view, acc)
    mean = ops.mean(xf, axis=axes, keepdims=True)
    var = ops.mean(ops.square(xf - mean), axis=axes, keepdims=True)
    scale = ops.rsqrt(var + epsilon)
    if gamma is not None:
        scale = scale * ops.reshape(ops.cast(gamma, acc), param_shape)
    shift = -mean * scale
    if beta is not None:
        shift = shift + ops.reshape(ops.cast(beta, acc), param_shape)
    y = ops.cast(xf * scale + shift, x.dtype)
    return ops.reshape(y, shape)
