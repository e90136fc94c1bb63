"""Exactness where GN implementations usually lose digits, against the float64
NumPy reference: float32 inputs beyond float16's range under mixed precision,
groups of 2**24 elements on the CPU sums, means large against the spread,
constants; and the user's NumPy numbers as arguments."""

import functools
import json

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf

from keras_gn import GroupNormalization, ops

tf_keras = pytest.importorskip("tf_keras")
from keras_gn import legacy  # noqa: E402

# Largest error of one rounding of a value in [-4, 4] to the output dtype.
HALF_ULP = {"float16": 2.0**-9, "bfloat16": 2.0**-6}


@pytest.fixture(params=[True, False], ids=["compiled_core", "open_core"])
def gn(request):
    """`ops.group_norm` in each of its two ways: the XLA-compiled core (what
    a graph with static sizes runs) and the plain graph of open sizes (eager
    calls, models with open sizes)."""
    return functools.partial(ops.group_norm, compiled=request.param)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _mixed_inputs():
    rng = _rng()
    shape = (2, 4, 4, 8)
    return {
        "7e4": np.full(shape, 7e4, np.float32),  # beyond float16's 65504
        "7e4+1000N": (7e4 + 1000 * rng.normal(size=shape)).astype(np.float32),
        "3e4+N": (3e4 + rng.normal(size=shape)).astype(np.float32),  # float16 keeps 2**-5 of its digits
        "5e4+100N": (5e4 + 100 * rng.normal(size=shape)).astype(np.float32),
    }


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", ["7e4", "7e4+1000N", "3e4+N", "5e4+100N"])
@pytest.mark.parametrize("framework", ["keras", "tf_keras"])
def test_float32_input_into_mixed_precision_layer_is_not_rounded_first(framework, name, policy):
    x = _mixed_inputs()[name]
    layer_class = GroupNormalization if framework == "keras" else legacy.GroupNormalization
    layer = layer_class(groups=2, dtype=policy)
    y = np.asarray(layer(x))
    assert str(y.dtype) == policy.split("_")[1]
    expected = reference.group_norm(x, None, None, 2)
    # The statistics are float32's: the only error left is the output's rounding.
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=0, atol=HALF_ULP[policy.split("_")[1]] + 1e-4)


@pytest.fixture(params=[True, False], ids=["cpu_sums", "accelerator_sums"])
def sums(request):
    """Both ways the core sums: the CPU's matrix products (the default on
    this machine) and the plain reductions used on GPU and TPU."""
    ops.set_cpu_sums(request.param)
    yield request.param
    ops.set_cpu_sums(None)


@pytest.mark.parametrize("channels_last", [True, False])
def test_sums_exact_for_a_group_of_2_to_the_24_elements(channels_last, sums, gn):
    shape = (1, 256, 256, 256, 2) if channels_last else (1, 2, 256, 256, 256)
    x = _rng().random(shape, dtype=np.float32)  # uniform [0, 1): the mean is large against the last digits
    axis = -1 if channels_last else 1
    y = gn(x, None, None, 2, axis).numpy()
    error = np.abs(y - reference.group_norm(x, None, None, 2, axis)).max()
    assert error <= 1e-5, error


def test_the_default_on_this_machine_is_the_cpu_sums():
    ops.set_cpu_sums(None)
    assert ops._sum_by_matmul() is True


@pytest.mark.parametrize("channels_last", [True, False])
def test_gradients_exact_for_large_groups(channels_last, sums, gn):
    positions = 2**22
    shape = (1, positions, 4) if channels_last else (1, 4, positions)
    axis = -1 if channels_last else 1
    rng = _rng(1)
    x = rng.random(shape, dtype=np.float32)
    dy = rng.normal(size=shape).astype(np.float32)
    gamma = rng.normal(size=4).astype(np.float32)
    beta = rng.normal(size=4).astype(np.float32)
    xt, gt, bt = tf.constant(x), tf.constant(gamma), tf.constant(beta)
    with tf.GradientTape() as tape:
        tape.watch([xt, gt, bt])
        y = gn(xt, gt, bt, 2, axis)
    dx, dgamma, dbeta = tape.gradient(y, [xt, gt, bt], output_gradients=tf.constant(dy))
    ref_dx, ref_dgamma, ref_dbeta = reference.group_norm_grad(x, gamma, dy, 2, axis)
    # Relative to the size of each gradient: they are sums over 2**22 terms.
    assert np.abs(dx.numpy() - ref_dx).max() <= 1e-5 * np.abs(ref_dx).max()
    np.testing.assert_allclose(dgamma.numpy(), ref_dgamma, rtol=1e-5, atol=1e-5 * np.abs(ref_dgamma).max())
    np.testing.assert_allclose(dbeta.numpy(), ref_dbeta, rtol=1e-5, atol=1e-5 * np.abs(ref_dbeta).max())


def _first_values_set(x, value):
    x = x.astype(np.float32)
    x[:, 0, 0, ::4] = value  # position 0, first channel of each of the 2 groups
    return x


def _large_mean_cases():
    rng = _rng(2)
    return {
        "1e4+N(0,1)": (1e4 + rng.normal(size=(2, 6, 6, 8))).astype(np.float32),
        "-3e4+N(0,1)": (-3e4 + rng.normal(size=(2, 6, 6, 8))).astype(np.float32),
        "constant 1e4": np.full((2, 6, 6, 8), 1e4, np.float32),
        "constant 1234.5678": np.full((2, 6, 6, 8), 1234.5678, np.float32),
        "constant -7e4": np.full((2, 6, 6, 8), -7e4, np.float32),
        # The core shifts by each group's first value: make it an outlier.
        "first value an outlier": _first_values_set(rng.normal(size=(2, 6, 6, 8)), 3e3),
    }


def _all_paths(x, gamma, beta, groups):
    yield "ops.group_norm", ops.group_norm(x, gamma, beta, groups).numpy()
    yield "ops.keras_group_norm", np.asarray(ops.keras_group_norm(tf.constant(x), gamma, beta, groups))
    for name, cls in (("keras layer", GroupNormalization), ("tf_keras layer", legacy.GroupNormalization)):
        layer = cls(groups=groups)
        layer.build(x.shape)
        layer.set_weights([gamma, beta])
        yield name, np.asarray(layer(x))


@pytest.mark.parametrize("name", list(_large_mean_cases()))
def test_mean_large_against_the_spread_loses_no_digits(name):
    x = _large_mean_cases()[name]
    rng = _rng(3)
    gamma = rng.normal(size=8).astype(np.float32)
    beta = rng.normal(size=8).astype(np.float32)
    expected = reference.group_norm(x, gamma, beta, 2)
    for path, y in _all_paths(x, gamma, beta, 2):
        error = np.abs(y.astype(np.float64) - expected).max()
        assert error <= 1e-3, f"{path}: {error}"


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("mean", [0.0, 5.0])
@pytest.mark.parametrize("channels_last", [True, False])
def test_no_systematic_offset_per_group(seed, mean, channels_last, gn):
    """The mean of (float64 reference - output), over the whole output and
    over each group, is at rounding level: outputs are not shifted by the
    float32 rounding of the group's mean. Statistics around the group's
    first value alone (about a standard deviation from the mean) left
    offsets up to 1.1e-7 overall and 2.2e-6 in a group on these inputs, where
    Keras's GroupNormalization gives about 3e-9 overall on N(0, 1) (TF Addons'
    GroupNorm test allows 1.5e-7). Measured now: at most 1.3e-8 overall,
    1.2e-7 in a group."""
    x = mean + np.random.default_rng(seed).normal(size=(10, 30, 30, 3)).astype(np.float32)
    axis = -1 if channels_last else 1
    if not channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    expected = reference.group_norm(x, gamma, beta, 3, axis=axis)
    outputs = [
        ("ops.group_norm", gn(x, gamma, beta, 3, axis=axis).numpy()),
        ("ops.keras_group_norm", np.asarray(ops.keras_group_norm(tf.constant(x), gamma, beta, 3, axis=axis))),
    ]
    for path, y in outputs:
        difference = expected - y.astype(np.float64)
        per_group = difference.mean(axis=(1, 2) if channels_last else (2, 3))  # 3 groups of one channel
        assert abs(difference.mean()) <= 2e-8, (path, difference.mean())
        assert np.abs(per_group).max() <= 2e-7, (path, np.abs(per_group).max())


def test_gradient_of_a_constant_input_is_finite_and_exact(gn):
    x = tf.constant(np.full((1, 4, 4, 4), 1e4, np.float32))
    dy = _rng(4).normal(size=(1, 4, 4, 4)).astype(np.float32)
    gamma = np.array([1.0, 2.0, -1.0, 0.5], np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = gn(x, gamma, np.zeros(4, np.float32), 2)
    dx = tape.gradient(y, x, output_gradients=tf.constant(dy)).numpy()
    ref_dx, _, _ = reference.group_norm_grad(x.numpy(), gamma, dy, 2, -1)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-3 * np.abs(ref_dx).max())


NUMPY_ARGUMENTS = [
    {"groups": np.int64(4)},
    {"groups": np.int32(4), "axis": np.int64(-1)},
    {"group_size": np.int16(2)},
    {"groups": np.uint8(4), "epsilon": np.float32(1e-5)},
    {"groups": 4, "epsilon": np.float64(1e-3)},
    {"groups": 4, "axis": np.int64(1)},
]


@pytest.mark.parametrize("kwargs", NUMPY_ARGUMENTS, ids=str)
@pytest.mark.parametrize("framework", ["keras", "tf_keras"])
def test_numpy_numbers_are_accepted_for_every_numeric_argument(framework, kwargs):
    cls = GroupNormalization if framework == "keras" else legacy.GroupNormalization
    layer = cls(**kwargs)
    x = _rng(5).normal(size=(2, 8, 3, 8)).astype(np.float32)
    y = np.asarray(layer(x))
    axis = int(kwargs.get("axis", -1))
    groups = 4 if "groups" in kwargs else 8 // int(kwargs["group_size"])
    epsilon = float(kwargs.get("epsilon", 1e-5))
    np.testing.assert_allclose(y, reference.group_norm(x, None, None, groups, axis, epsilon), rtol=1e-4, atol=3e-5)
    config = layer.get_config()
    json.dumps(config)  # plain Python numbers in the config
    assert cls.from_config(config).get_config() == config


def test_numpy_numbers_are_accepted_by_the_ops(gn):
    x = _rng(6).normal(size=(2, 3, 8)).astype(np.float32)
    expected = reference.group_norm(x, None, None, 4, -1, 1e-3)
    y = gn(x, None, None, np.int64(4), np.int64(-1), np.float32(1e-3)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=3e-5)
    y = np.asarray(ops.keras_group_norm(tf.constant(x), None, None, np.int64(4), np.int32(-1), np.float32(1e-3)))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=3e-5)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"groups": True}, "groups must be a positive integer"),
        ({"groups": np.float64(4.0)}, "groups must be a positive integer"),
        ({"epsilon": True}, "epsilon must be a positive number"),
        ({"epsilon": np.float32(0)}, "epsilon must be a positive number"),
        ({"epsilon": "1e-5"}, "epsilon must be a positive number"),
        ({"axis": 0}, "axis=0 is the batch axis"),
        ({"axis": np.int64(0)}, "axis=0 is the batch axis"),
    ],
)
@pytest.mark.parametrize("framework", ["keras", "tf_keras"])
def test_bad_numbers_fail_at_construction(framework, kwargs, message):
    cls = GroupNormalization if framework == "keras" else legacy.GroupNormalization
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_channels_on_a_middle_axis_as_keras_layer():
    # Keras's own GroupNormalization takes any channel axis; so does ours.
    x = _rng(7).normal(size=(2, 3, 8, 5)).astype(np.float32)
    for axis in (2, -2):
        y = np.asarray(GroupNormalization(groups=4, axis=axis)(x))
        np.testing.assert_allclose(y, reference.group_norm(x, None, None, 4, axis), rtol=1e-4, atol=3e-5)
        y = np.asarray(legacy.GroupNormalization(groups=4, axis=axis)(x))
        np.testing.assert_allclose(y, reference.group_norm(x, None, None, 4, axis), rtol=1e-4, atol=3e-5)
    keras_layer = keras.layers.GroupNormalization(groups=4, axis=2, epsilon=1e-5)
    np.testing.assert_allclose(
        np.asarray(GroupNormalization(groups=4, axis=2)(x)), np.asarray(keras_layer(x)), atol=1e-5
    )
