"""The TensorFlow core and the keras.ops path against the NumPy reference."""

import functools

import numpy as np
import pytest
import reference
import tensorflow as tf

from keras_gn import ops

# (shape, axis, groups): ranks 2-5, channels_last and channels_first, G from 1 to C.
CASES = [
    ((4, 8), -1, 2),
    ((3, 6), 1, 6),
    ((2, 5, 12), -1, 3),
    ((2, 12, 5), 1, 4),
    ((2, 4, 3, 16), -1, 1),
    ((2, 4, 3, 16), -1, 16),
    ((2, 16, 4, 3), 1, 8),
    ((2, 3, 4, 4, 8), -1, 4),
    ((2, 8, 3, 4, 4), 1, 2),
]


@pytest.fixture(params=[True, False], ids=["compiled_core", "open_core"])
def gn(request):
    """`ops.group_norm` in each of its two ways: the XLA-compiled core (what
    a graph with static sizes runs) and the plain graph of open sizes (eager
    calls, models with open sizes)."""
    return functools.partial(ops.group_norm, compiled=request.param)


def _inputs(shape, axis, seed=0):
    rng = np.random.default_rng(seed)
    channels = shape[axis]
    x = rng.normal(2.0, 3.0, size=shape)
    gamma = rng.normal(size=channels)
    beta = rng.normal(size=channels)
    return x, gamma, beta


@pytest.mark.parametrize("shape,axis,groups", CASES)
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False), (False, False)])
def test_forward_matches_reference(shape, axis, groups, center, scale, gn):
    x, gamma, beta = _inputs(shape, axis)
    gamma = gamma if scale else None
    beta = beta if center else None
    expected = reference.group_norm(x, gamma, beta, groups, axis)
    f32 = lambda a: None if a is None else a.astype(np.float32)
    got = gn(f32(x), f32(gamma), f32(beta), groups, axis).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)
    got64 = gn(x, gamma, beta, groups, axis).numpy()
    np.testing.assert_allclose(got64, expected, rtol=1e-10, atol=1e-10)
    via_keras = ops.keras_group_norm(tf.constant(f32(x)), f32(gamma), f32(beta), groups, axis).numpy()
    np.testing.assert_allclose(via_keras, expected, rtol=1e-4, atol=2e-5)


def _plain_group_norm(x, gamma, beta, groups, axis, epsilon=1e-5):
    """The paper's formula in plain TF ops (channels moved last), for autodiff."""
    rank = len(x.shape)
    perm = list(range(rank)) if axis in (-1, rank - 1) else [0] + list(range(2, rank)) + [1]
    xt = tf.transpose(x, perm)
    c = xt.shape[-1]
    v = tf.reshape(xt, [xt.shape[0], -1, groups, c // groups])
    mean = tf.reduce_mean(v, axis=[1, 3], keepdims=True)
    var = tf.reduce_mean(tf.square(v - mean), axis=[1, 3], keepdims=True)
    y = tf.reshape((v - mean) / tf.sqrt(var + epsilon), xt.shape) * gamma + beta
    return tf.transpose(y, np.argsort(perm))


@pytest.mark.parametrize("shape,axis,groups", CASES)
@pytest.mark.parametrize("jit", [False, True])
def test_gradients_match_autodiff_of_plain_formula(shape, axis, groups, jit):
    x, gamma, beta = (tf.constant(a) for a in _inputs(shape, axis, seed=1))
    dy = tf.constant(np.random.default_rng(2).normal(size=shape))

    def grads(fn):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            loss = tf.reduce_sum(fn(x, gamma, beta, groups, axis) * dy)
        return tape.gradient(loss, [x, gamma, beta])

    ours = tf.function(lambda: grads(ops.group_norm), jit_compile=jit)() if jit else grads(ops.group_norm)
    plain = grads(_plain_group_norm)
    for name, a, b in zip(("x", "gamma", "beta"), ours, plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-9, err_msg=name)


def test_gradients_match_finite_differences(gn):
    x, gamma, beta = (tf.constant(a) for a in _inputs((2, 3, 3, 4), -1, seed=3))
    theoretical, numerical = tf.test.compute_gradient(lambda x, g, b: gn(x, g, b, 2), [x, gamma, beta])
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-6)


def test_float32_gradients_close_to_float64(gn):
    x, gamma, beta = _inputs((2, 7, 7, 64), -1, seed=4)
    dy = np.random.default_rng(5).normal(size=x.shape)

    def grads(dtype):
        t = [tf.constant(a.astype(dtype)) for a in (x, gamma, beta)]
        with tf.GradientTape() as tape:
            tape.watch(t)
            loss = tf.reduce_sum(gn(*t, 32) * dy.astype(dtype))
        return [g.numpy() for g in tape.gradient(loss, t)]

    for a, b in zip(grads(np.float32), grads(np.float64)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_large_mean_small_spread_is_accurate(gn):
    # A mean 1e4 times the spread: a one-pass E[x^2] - E[x]^2 in float32
    # would lose every digit of the variance here.
    rng = np.random.default_rng(6)
    x = (1e4 + rng.normal(size=(2, 8, 8, 32))).astype(np.float32)
    got = gn(x, None, None, 4).numpy()
    np.testing.assert_allclose(got, reference.group_norm(x, None, None, 4), atol=5e-3)


def test_inside_user_jit_function_and_dynamic_batch(gn):
    fn = tf.function(
        lambda x: gn(x, None, None, 4),
        jit_compile=True,
        input_signature=[tf.TensorSpec([None, 5, 5, 8], tf.float32)],
    )
    for n in (1, 3):
        x = np.random.default_rng(n).normal(size=(n, 5, 5, 8)).astype(np.float32)
        np.testing.assert_allclose(fn(x).numpy(), reference.group_norm(x, None, None, 4), rtol=1e-4, atol=2e-5)
