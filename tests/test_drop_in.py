"""The layer as users run it: a drop-in for Keras's own GroupNormalization
(its positional order, groups=-1, its outputs), no program traced or
compiled per new input shape, no retracing warnings, and `fit_groups`."""

import logging

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf

from keras_gn import GroupNormalization, ops


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=shape).astype(np.float32)


def test_keras_positional_order_gives_keras_outputs():
    x = _x((2, 5, 5, 16))
    # Keras's order: groups, axis, epsilon, center, scale, initializers...
    ours = GroupNormalization(4, -1, 1e-3, True, True, "random_normal", "random_uniform")
    theirs = keras.layers.GroupNormalization(4, -1, 1e-3, True, True, "random_normal", "random_uniform")
    ours.build(x.shape)
    theirs.build(x.shape)
    ours.set_weights(theirs.get_weights())
    assert (ours.num_groups, ours.axis, ours.epsilon) == (4, -1, 1e-3)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), rtol=1e-5, atol=1e-5)
    gamma, beta = (w.numpy() for w in theirs.weights)
    np.testing.assert_allclose(np.asarray(ours(x)), reference.group_norm(x, gamma, beta, 4, -1, 1e-3), atol=2e-5)


def test_groups_minus_one_is_one_group_per_channel():
    x = _x((2, 3, 3, 6))
    layer = GroupNormalization(-1)
    y = np.asarray(layer(x))
    assert layer.num_groups == 6 and layer.get_config()["groups"] == -1
    np.testing.assert_allclose(y, reference.group_norm(x, None, None, 6), atol=2e-5)
    np.testing.assert_allclose(y, np.asarray(keras.layers.GroupNormalization(-1, epsilon=1e-5)(x)), atol=2e-5)


def test_group_size_is_keyword_only():
    # The second positional argument is the axis, as in Keras.
    assert GroupNormalization(4, 1).axis == 1
    with pytest.raises(TypeError):
        GroupNormalization(4, -1, 1e-5, True, True, "zeros", "ones", None, None, None, None, 2)
    assert GroupNormalization(group_size=4).group_size == 4


def test_explicit_groups_that_do_not_divide_raise_unless_fitted():
    x = _x((2, 4, 4, 24))
    with pytest.raises(ValueError, match=r"groups=32 is more than the 24 channels.*fit_groups=True for gcd"):
        GroupNormalization(groups=32)(x)
    with pytest.raises(ValueError, match=r"40 channels cannot be split evenly into groups=32.*gcd\(40, 32\) = 8"):
        GroupNormalization(groups=32)(_x((2, 3, 3, 40)))
    layer = GroupNormalization(groups=32, fit_groups=True)
    y = np.asarray(layer(x))
    assert layer.num_groups == 8  # gcd(24, 32): 8 groups of 3 channels
    np.testing.assert_allclose(y, reference.group_norm(x, None, None, 8), atol=2e-5)
    clone = GroupNormalization.from_config(layer.get_config())
    assert clone.fit_groups and clone(x).shape == x.shape and clone.num_groups == 8
    # A count that divides keeps it.
    assert GroupNormalization(groups=8, fit_groups=True)(x).shape == x.shape


def _traces():
    """How many times the core's passes have been traced, over all of them."""
    return sum(f.experimental_get_tracing_count() for f in ops._FUNCTIONS.values())


def test_new_input_shapes_trace_and_compile_nothing_eagerly():
    layer = GroupNormalization(groups=4, epsilon=2.5e-5)  # a configuration of its own
    layer(_x((1, 6, 6, 8)))
    before, compiled = _traces(), [key for key in ops._FUNCTIONS if key[-1]]
    for size in (7, 9, 12, 5, 31):
        x = _x((2, size, size + 1, 8), size)
        with tf.GradientTape() as tape:
            xt = tf.constant(x)
            tape.watch(xt)
            y = layer(xt)
        tape.gradient(y, xt)
        np.testing.assert_allclose(np.asarray(y), reference.group_norm(x, None, None, 4, -1, 2.5e-5), atol=3e-5)
    # The gradient's pass is traced once (at the first size), nothing else;
    # no XLA-compiled pass was made.
    assert _traces() - before <= 1
    assert [key for key in ops._FUNCTIONS if key[-1]] == compiled


def test_a_model_with_open_sizes_compiles_no_core_in_predict():
    inputs = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    model = keras.Model(inputs, GroupNormalization(groups=2, epsilon=3.5e-5)(h))
    model.predict(_x((1, 8, 8, 3)), verbose=0)
    before, compiled = _traces(), [key for key in ops._FUNCTIONS if key[-1]]
    for size in (9, 10, 16, 17):
        model.predict(_x((1, size, size, 3)), verbose=0)
    assert _traces() == before
    assert [key for key in ops._FUNCTIONS if key[-1]] == compiled


def test_a_model_with_static_sizes_runs_the_compiled_core_in_fit():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    h = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    h = GroupNormalization(groups=2, epsilon=4.5e-5)(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile("sgd", "mse", jit_compile=False)
    model.fit(_x((8, 6, 6, 3)), np.zeros((8, 2), np.float32), batch_size=4, epochs=1, verbose=0)
    compiled = [key for key in ops._FUNCTIONS if key[-1] and 4.5e-5 in key[2]]
    assert len(compiled) == 1  # the forward, traced with the batch open
    assert ops._FUNCTIONS[compiled[0]].experimental_get_tracing_count() == 1


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_eager_calls_at_new_sizes_print_no_retracing_warning():
    handler = _Records()
    logger = tf.get_logger()
    logger.addHandler(handler)
    try:
        layer = GroupNormalization(groups=2)
        for size in range(4, 14):
            with tf.GradientTape() as tape:
                x = tf.constant(_x((1, size, size, 4), size))
                tape.watch(x)
                y = layer(x)
            tape.gradient(y, x)
    finally:
        logger.removeHandler(handler)
    assert not [m for m in handler.messages if "retracing" in m], handler.messages
