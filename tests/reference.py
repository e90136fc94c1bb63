"""Independent NumPy references, written from the paper's equations (1)-(2).

Nothing here imports keras_gn.
"""

import numpy as np


def group_norm(x, gamma, beta, groups, axis=-1, epsilon=1e-5):
    """GN of x in float64: statistics per (sample, group) over the group's
    channels and all positions; then the per-channel gamma and beta."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 1)  # [N, C, ...]
    n, c = x.shape[:2]
    y = np.empty_like(x)
    size = c // groups
    for i in range(n):
        for g in range(groups):
            block = x[i, g * size : (g + 1) * size]  # S_i: the group's channels, every position
            mu = block.mean()
            sigma = np.sqrt(((block - mu) ** 2).mean() + epsilon)
            y[i, g * size : (g + 1) * size] = (block - mu) / sigma
    shape = [1, c] + [1] * (x.ndim - 2)
    if gamma is not None:
        y = y * np.reshape(gamma, shape)
    if beta is not None:
        y = y + np.reshape(beta, shape)
    return np.moveaxis(y, 1, axis)


def group_norm_grad(x, gamma, dy, groups, axis=-1, epsilon=1e-5):
    """(dx, dgamma, dbeta) of GN in float64, from differentiating
    y = gamma * xhat + beta, xhat = (x - mu) / sigma, by hand:
    dx = (g - mean(g) - xhat * mean(g * xhat)) / sigma per (sample, group),
    with g = gamma * dy."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 1)
    dy = np.moveaxis(np.asarray(dy, np.float64), axis, 1)
    n, c = x.shape[:2]
    shape = [1, c] + [1] * (x.ndim - 2)
    v = x.reshape(n, groups, -1)
    mu = v.mean(-1, keepdims=True)
    sigma = np.sqrt(((v - mu) ** 2).mean(-1, keepdims=True) + epsilon)
    xhat = ((v - mu) / sigma).reshape(x.shape)
    g = (dy * np.reshape(np.asarray(gamma, np.float64), shape)).reshape(n, groups, -1)
    xh = xhat.reshape(n, groups, -1)
    dx = (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True)) / sigma
    reduce_axes = (0,) + tuple(range(2, x.ndim))
    dgamma = (dy * xhat).sum(reduce_axes)
    dbeta = dy.sum(reduce_axes)
    return np.moveaxis(dx.reshape(x.shape), 1, axis), dgamma, dbeta


def instance_norm(x, epsilon=1e-5):
    """IN of a channels_last x: per (sample, channel) over the positions."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(1, x.ndim - 1))
    return (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + epsilon)


def layer_norm(x, epsilon=1e-5):
    """LN: per sample over every non-batch axis."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(1, x.ndim))
    return (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + epsilon)
