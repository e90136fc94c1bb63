"""The Keras 3 layer: numbers, batch independence, LN/IN, mixed precision, errors."""

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf

from keras_gn import GroupNormalization, instance_norm, layer_norm


def _random_layer(**kwargs):
    return GroupNormalization(gamma_initializer="random_normal", beta_initializer="random_normal", **kwargs)


@pytest.mark.parametrize(
    "shape,kwargs",
    [
        ((4, 64), {}),
        ((2, 10, 64), {"groups": 8}),
        ((2, 6, 6, 64), {}),
        ((2, 64, 6, 6), {"axis": 1, "groups": 16}),
        ((2, 3, 4, 4, 64), {"group_size": 4}),
    ],
)
def test_layer_matches_reference(shape, kwargs):
    x = np.random.default_rng(0).normal(1.0, 2.0, size=shape).astype(np.float32)
    layer = _random_layer(**kwargs)
    y = layer(x).numpy()
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    groups = kwargs.get("groups", 32) if "group_size" not in kwargs else shape[-1] // kwargs["group_size"]
    expected = reference.group_norm(x, gamma, beta, groups, kwargs.get("axis", -1))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=3e-5)
    assert layer.num_groups == groups


def test_matches_keras_own_group_normalization():
    x = np.random.default_rng(1).normal(size=(3, 7, 7, 64)).astype(np.float32)
    ours = GroupNormalization(groups=16, epsilon=1e-3)
    theirs = keras.layers.GroupNormalization(groups=16, epsilon=1e-3)
    np.testing.assert_allclose(ours(x).numpy(), np.asarray(theirs(x)), rtol=1e-4, atol=1e-5)


def test_matches_torch_group_norm_when_installed():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).normal(size=(2, 64, 5, 5)).astype(np.float32)
    theirs = torch.nn.GroupNorm(32, 64, eps=1e-5)(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(GroupNormalization(axis=1)(x).numpy(), theirs, rtol=1e-4, atol=1e-5)


def test_batch_independence():
    rng = np.random.default_rng(3)
    layer = _random_layer(groups=8)
    batch = rng.normal(size=(32, 6, 6, 16)).astype(np.float32)
    full = layer(batch).numpy()
    # The same sample alone, and among different other samples.
    alone = layer(batch[:1]).numpy()
    others = batch.copy()
    others[1:] = rng.normal(5.0, 10.0, size=others[1:].shape)
    mixed = layer(others).numpy()
    np.testing.assert_allclose(alone[0], full[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mixed[0], full[0], rtol=1e-5, atol=1e-6)
    # Training and inference compute the same thing.
    np.testing.assert_array_equal(layer(batch, training=True).numpy(), layer(batch, training=False).numpy())


def test_groups_one_is_layer_norm():
    x = np.random.default_rng(4).normal(size=(3, 5, 5, 12)).astype(np.float32)
    np.testing.assert_allclose(layer_norm()(x).numpy(), reference.layer_norm(x), rtol=1e-4, atol=1e-5)
    theirs = keras.layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-5)(x)
    np.testing.assert_allclose(GroupNormalization(groups=1)(x).numpy(), np.asarray(theirs), rtol=1e-4, atol=1e-5)


def test_group_size_one_is_instance_norm():
    x = np.random.default_rng(5).normal(size=(3, 5, 5, 12)).astype(np.float32)
    np.testing.assert_allclose(instance_norm()(x).numpy(), reference.instance_norm(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        GroupNormalization(groups=12)(x).numpy(), reference.instance_norm(x), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    compute = policy.split("_")[1]
    layer = GroupNormalization(groups=4, dtype=policy)
    # Near float16's maximum: squares overflow float16, the statistics must not.
    x = (6e4 + 500 * np.random.default_rng(6).normal(size=(2, 4, 4, 8))).clip(-6.5e4, 6.5e4)
    x = tf.constant(x, compute)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, "float32") ** 2)
    grads = tape.gradient(loss, [x] + layer.trainable_variables)
    assert y.dtype == compute
    assert layer.gamma.dtype == "float32" and layer.beta.dtype == "float32"
    assert np.isfinite(y.numpy().astype(np.float32)).all()
    assert all(np.isfinite(np.asarray(g, np.float32)).all() for g in grads)
    expected = reference.group_norm(np.asarray(x, np.float32), None, None, 4)
    tolerance = 2e-2 if compute == "float16" else 6e-2
    np.testing.assert_allclose(y.numpy().astype(np.float32), expected, atol=tolerance)


def test_mixed_precision_model_trains():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                keras.layers.Conv2D(16, 3),
                GroupNormalization(groups=4),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(2, dtype="float32"),
            ]
        )
        assert model.layers[1].compute_dtype == "float16"
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        history = model.fit(np.random.rand(8, 8, 8, 3), np.arange(8) % 2, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mask_is_accepted_and_passed_on():
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(10, 16, mask_zero=True)(inputs)
    h = GroupNormalization(groups=4)(h)
    outputs = keras.layers.LSTM(3)(h)
    model = keras.Model(inputs, outputs)
    tokens = np.array([[1, 2, 0, 0], [3, 4, 5, 0]])
    out = keras.ops.convert_to_numpy(model(tokens))
    assert out.shape == (2, 3)
    # The mask reached the LSTM: its output is that of the LSTM run on the
    # unpadded steps of GN's output alone. (GN's statistics do include the
    # padded steps, as Keras's own GroupNormalization's do.)
    normalized = keras.ops.convert_to_numpy(keras.Model(inputs, h)(tokens))
    lstm = model.layers[-1]
    for row, length in zip(range(2), (2, 3)):
        alone = keras.ops.convert_to_numpy(lstm(normalized[row : row + 1, :length]))
        np.testing.assert_allclose(out[row], alone[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,shape,message",
    [
        ({"groups": 32}, (2, 4, 4, 30), "30 channels cannot be split evenly into groups=32|more than the 30"),
        ({"groups": 7}, (2, 4, 4, 30), r"30 channels cannot be split evenly into groups=7 \(30 % 7 = 2\)"),
        ({"groups": 64}, (2, 4, 4, 32), "groups=64 is more than the 32 channels"),
        ({"group_size": 5}, (2, 4, 4, 32), "group_size=5 does not divide the 32 channels"),
        ({"groups": 4}, (2, 4, 4, None), "undefined"),
        ({"groups": 4, "axis": 4}, (2, 4, 4, 8), r"axis=4 is out of range for a rank-4 input \(valid: -4..3"),
        ({"groups": 4, "axis": -4}, (2, 4, 4, 8), "batch axis"),
        ({"groups": 1}, (8,), "rank 2 or more"),
    ],
)
def test_bad_shapes_fail_at_build_time(kwargs, shape, message):
    with pytest.raises(ValueError, match=message):
        GroupNormalization(**kwargs).build(shape)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"groups": 8, "group_size": 4}, "either groups or group_size, not both; got groups=8 and group_size=4"),
        ({"epsilon": 0.0}, r"epsilon must be a positive number \(added to the variance\); got 0.0"),
        ({"epsilon": -1e-5}, "epsilon must be a positive number"),
        ({"groups": 0}, "groups must be a positive integer, or -1 for one group per channel; got 0"),
        ({"group_size": 2.5}, "group_size must be a positive integer; got 2.5"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupNormalization(**kwargs)


def test_integer_inputs_fail_with_clear_error():
    with pytest.raises(TypeError, match="needs floating-point inputs; got int32"):
        GroupNormalization(groups=2)(np.ones((2, 4), np.int32))
    with pytest.raises(TypeError, match="needs floating-point inputs"):
        keras.Sequential([keras.Input((4,), dtype="int32"), GroupNormalization(groups=2)])


def test_weights_regularizers_constraints():
    layer = GroupNormalization(
        groups=2, gamma_regularizer=keras.regularizers.L2(0.1), beta_regularizer="l2", gamma_constraint="non_neg"
    )
    layer(np.ones((2, 3, 4), np.float32))
    assert [w.name for w in layer.trainable_weights] == ["gamma", "beta"]
    assert len(layer.losses) == 2
    assert isinstance(layer.gamma.constraint, keras.constraints.NonNeg)
    no_params = GroupNormalization(groups=2, center=False, scale=False)
    no_params(np.ones((2, 4), np.float32))
    assert no_params.weights == []
