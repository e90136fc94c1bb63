"""keras_gn.legacy.GroupNormalization: the tf_keras twin, same numbers."""

import numpy as np
import pytest
import tensorflow as tf

tf_keras = pytest.importorskip("tf_keras")

import reference  # noqa: E402

import keras_gn  # noqa: E402
from keras_gn.legacy import GroupNormalization  # noqa: E402


@pytest.mark.parametrize(
    "shape,kwargs",
    [
        ((4, 64), {}),
        ((2, 6, 6, 64), {"groups": 8}),
        ((2, 64, 5, 5), {"axis": 1}),
        ((2, 3, 4, 4, 32), {"group_size": 4}),
    ],
)
def test_same_numbers_as_reference_and_keras3_layer(shape, kwargs):
    x = np.random.default_rng(0).normal(1.0, 2.0, size=shape).astype(np.float32)
    legacy = GroupNormalization(gamma_initializer="random_normal", beta_initializer="random_normal", **kwargs)
    y = legacy(x).numpy()
    gamma, beta = legacy.gamma.numpy(), legacy.beta.numpy()
    groups = legacy.num_groups
    np.testing.assert_allclose(
        y, reference.group_norm(x, gamma, beta, groups, kwargs.get("axis", -1)), rtol=1e-4, atol=3e-5
    )
    twin = keras_gn.GroupNormalization(**kwargs)
    twin.build(shape)
    twin.set_weights([gamma, beta])
    np.testing.assert_array_equal(twin(x).numpy(), y)


def test_gradients_flow_to_gamma_and_beta():
    layer = GroupNormalization(groups=2)
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 3, 3, 4)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(tf.cast(x, tf.float32))
        loss = tf.reduce_sum(y * tf.range(4, dtype=tf.float32))
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    assert all(g is not None for g in grads)
    # d loss / d beta_c = sum over N, H, W of the channel's weight c.
    np.testing.assert_allclose(grads[2].numpy(), 18.0 * np.arange(4), rtol=1e-6)


def test_model_saves_loads_and_trains(tmp_path):
    model = tf_keras.Sequential(
        [
            tf_keras.Input((6, 6, 3)),
            tf_keras.layers.Conv2D(16, 3),
            GroupNormalization(groups=4, epsilon=1e-4),
            tf_keras.layers.GlobalAveragePooling2D(),
            tf_keras.layers.Dense(2),
        ]
    )
    model.compile(optimizer="sgd", loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(2).normal(size=(4, 6, 6, 3)).astype(np.float32)
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    for path in (tmp_path / "m.keras", tmp_path / "saved"):
        model.save(str(path))
        loaded = tf_keras.models.load_model(str(path))
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert GroupNormalization.from_config(model.layers[1].get_config()).get_config() == model.layers[1].get_config()


def test_mixed_float16_and_errors():
    layer = GroupNormalization(groups=2, dtype="mixed_float16")
    y = layer(tf.constant(6e4 + np.random.default_rng(3).normal(size=(2, 4, 4, 4)) * 100, tf.float16))
    assert y.dtype == tf.float16 and layer.gamma.dtype == tf.float32
    assert np.isfinite(y.numpy()).all()
    with pytest.raises(ValueError, match="30 channels cannot be split evenly into groups=4"):
        GroupNormalization(groups=4)(tf.zeros((1, 30)))
    with pytest.raises(ValueError, match="not both"):
        GroupNormalization(groups=2, group_size=2)
    with pytest.raises(TypeError, match="floating-point"):
        GroupNormalization(groups=2)(tf.zeros((1, 4), tf.int32))
