"""replace_normalization: BatchNormalization -> GroupNormalization in Keras models."""

import keras
import numpy as np
import pytest

from keras_gn import GroupNormalization, replace_normalization


def _count(model, cls):
    return sum(isinstance(layer, cls) for layer in model._flatten_layers(include_self=False))


def test_resnet50_swap_runs_a_training_step():
    original = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=5)
    n_bn = _count(original, keras.layers.BatchNormalization)
    model = replace_normalization(original)
    assert n_bn == 53
    assert _count(model, keras.layers.BatchNormalization) == 0
    assert _count(model, GroupNormalization) == n_bn
    assert all(layer.num_groups == 32 for layer in model.layers if isinstance(layer, GroupNormalization))
    # The other layers keep their weights; the original is untouched.
    np.testing.assert_array_equal(
        model.get_layer("conv1_conv").kernel.numpy(), original.get_layer("conv1_conv").kernel.numpy()
    )
    assert isinstance(original.get_layer("conv1_bn"), keras.layers.BatchNormalization)

    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", jit_compile=False)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    y = np.array([1, 3])
    before = model.get_layer("conv1_conv").kernel.numpy().copy()
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert not np.array_equal(before, model.get_layer("conv1_conv").kernel.numpy())


def test_plain_clone_model_swap_works():
    # The use that Keras's own GroupNormalization fails: clone_model passes mask.
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(32, 3)(inputs)
    h = keras.layers.BatchNormalization()(h)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h))
    swapped = keras.models.clone_model(
        model,
        clone_function=lambda l: (
            GroupNormalization(axis=l.axis)
            if isinstance(l, keras.layers.BatchNormalization)
            else l.__class__.from_config(l.get_config())
        ),
    )
    assert swapped(np.ones((1, 8, 8, 3), np.float32)).shape == (1, 32)


def test_custom_norm_callable_and_nested_and_channels_first():
    inner = keras.Sequential([keras.Input((4, 5, 5)), keras.layers.BatchNormalization(axis=1)], name="inner")
    inputs = keras.Input((4, 5, 5))
    model = keras.Model(inputs, keras.layers.BatchNormalization(axis=1)(inner(inputs)))
    swapped = replace_normalization(model, groups=2)
    norms = [l for l in swapped._flatten_layers(include_self=False) if isinstance(l, GroupNormalization)]
    assert len(norms) == 2 and all(l.axis == 1 and l.num_groups == 2 for l in norms)
    ln = replace_normalization(model, norm=lambda bn: GroupNormalization(groups=1, axis=bn.axis))
    x = np.random.default_rng(1).normal(size=(2, 4, 5, 5)).astype(np.float32)
    y = keras.ops.convert_to_numpy(ln(x))
    assert y.shape == (2, 4, 5, 5)
    made = [l for l in ln._flatten_layers(include_self=False) if isinstance(l, GroupNormalization)]
    assert len(made) == 2 and all(l.num_groups == 1 and l.axis == 1 for l in made)
    # Two layer norms (gamma 1, beta 0) in a row: each sample's output has
    # mean 0 and variance 1 over all its values.
    flat = y.reshape(2, -1).astype(np.float64)
    np.testing.assert_allclose(flat.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(flat.var(1), 1, rtol=1e-3)


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"needs a keras.Model \(or a tf_keras one\); got Dense"):
        replace_normalization(keras.layers.Dense(3))
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="not both"):
        replace_normalization(model, norm=lambda bn: bn, groups=2)
    with pytest.raises(TypeError, match="not a name; got 'gn'. For GroupNormalization give no norm"):
        replace_normalization(model, "gn")


def test_resnet50_becomes_gn_ws_in_one_call():
    from keras_gn import WSConv2D

    keras.utils.set_random_seed(0)
    original = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=5)
    rng = np.random.default_rng(0)
    convs = [l for l in original.layers if type(l) is keras.layers.Conv2D]
    assert len(convs) == 53
    for layer in convs:  # kernels already standardized (zero mean, unit variance: float64), random biases
        w = layer.kernel.numpy().astype(np.float64)
        w = (w - w.mean((0, 1, 2))) / w.std((0, 1, 2))
        layer.set_weights([w.astype(np.float32), rng.normal(0, 0.1, layer.bias.shape).astype(np.float32)])
    gn_ws = replace_normalization(original, groups=32, weight_standardization=True)
    gn = replace_normalization(original, groups=32)
    assert _count(gn_ws, keras.layers.Conv2D) == 53
    assert all(isinstance(l, WSConv2D) for l in gn_ws.layers if isinstance(l, keras.layers.Conv2D))
    assert _count(gn_ws, keras.layers.BatchNormalization) == 0 and _count(gn_ws, GroupNormalization) == 53
    assert not any(isinstance(l, WSConv2D) for l in original.layers)
    # GN's gamma = 1 and beta = 0 and kernels that are standardized already:
    # standardizing them again changes each by epsilon's 5e-7 and float32
    # rounding, which 53 layers carry to about 2e-4 of a softmax output
    # (seen once at 1e-4); a wrong standardization changes them entirely.
    x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(gn_ws.predict(x, verbose=0), gn.predict(x, verbose=0), rtol=2e-3, atol=1e-4)
    # The kernels were copied as they are (the standardization happens in the call).
    np.testing.assert_array_equal(gn_ws.get_layer("conv1_conv").kernel.numpy(), convs[0].kernel.numpy())


@pytest.mark.parametrize(
    "application,fitted",
    [
        # channels -> groups where 32 does not divide them: gcd(channels, 32)
        ("MobileNetV2", {"expanded_conv_project_BN": (16, 16), "block_1_project_BN": (24, 8)}),
        (
            "EfficientNetB0",
            {"block2a_project_bn": (24, 8), "block3a_project_bn": (40, 8), "block5a_project_bn": (112, 16)},
        ),
        ("ResNet50", {}),
    ],
)
def test_any_keras_application_to_gn_in_one_call(application, fitted, capsys):
    original = getattr(keras.applications, application)(weights=None, input_shape=(32, 32, 3), classes=4)
    n_bn = _count(original, keras.layers.BatchNormalization)
    model, summary = replace_normalization(original, return_summary=True)
    assert _count(model, keras.layers.BatchNormalization) == 0 and _count(model, GroupNormalization) == n_bn
    assert len(summary) == n_bn
    rows = {row["name"]: row for row in summary}
    for name, (channels, groups) in fitted.items():
        assert (rows[name]["channels"], rows[name]["groups_asked"], rows[name]["groups"]) == (channels, 32, groups)
        assert model.get_layer(name).num_groups == groups
    for row in summary:  # every layer got a grouping of its channels, 32 where 32 divides them
        assert row["channels"] % row["groups"] == 0
        assert row["groups"] == 32 or row["channels"] % 32
        assert row["epsilon"] == original.get_layer(row["name"]).epsilon  # carried from the BN
    printed = capsys.readouterr().out
    assert all(name in printed for name in fitted)
    if not fitted:
        assert "gcd" not in printed
    y = model.predict(np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32), verbose=0)
    assert y.shape == (2, 4) and np.isfinite(y).all()


def test_groups_that_do_not_divide_raise_without_fit_groups():
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.BatchNormalization(name="bn24")(keras.layers.Conv2D(24, 3)(inputs))
    model = keras.Model(inputs, h)
    with pytest.raises(ValueError, match=r"groups=32 is more than the 24 channels.*layer 'bn24'"):
        replace_normalization(model, fit_groups=False)
    assert replace_normalization(model).get_layer("bn24").num_groups == 8


def _keras_gn_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 3))
    h = keras.layers.Conv2D(12, 3, padding="same")(inputs)
    h = keras.layers.GroupNormalization(4, beta_initializer="random_normal", gamma_initializer="random_normal")(h)
    h = keras.layers.GroupNormalization(-1, epsilon=1e-4, gamma_initializer="random_normal", name="inorm")(h)
    h = keras.layers.GroupNormalization(3, center=False, gamma_initializer="random_normal")(h)
    h = keras.layers.BatchNormalization(epsilon=1e-5, name="bn")(h)
    return keras.Model(inputs, h)


def test_keras_group_normalization_swapped_with_identical_outputs():
    original = _keras_gn_model()
    model, summary = replace_normalization(original, return_summary=True)
    assert _count(model, keras.layers.GroupNormalization) == 0 and _count(model, GroupNormalization) == 4
    ours = [l for l in model.layers if isinstance(l, GroupNormalization)][:3]
    assert [(l.num_groups, l.epsilon, l.center) for l in ours] == [(4, 1e-3, True), (12, 1e-4, True), (3, 1e-3, False)]
    assert model.get_layer("bn").epsilon == 1e-5 and model.get_layer("bn").num_groups == 4  # gcd(12, 32)
    # Up to the BN: the same computation with the same weights.
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    cut = lambda m: keras.Model(m.input, m.layers[-2].output)  # noqa: E731
    np.testing.assert_allclose(cut(model).predict(x, verbose=0), cut(original).predict(x, verbose=0), atol=1e-5)


def test_tf_keras_models_get_the_tf_keras_twin():
    tf_keras = pytest.importorskip("tf_keras")
    from keras_gn import legacy

    inputs = tf_keras.Input((6, 6, 3))
    h = tf_keras.layers.Conv2D(8, 3, padding="same")(inputs)
    h = tf_keras.layers.GroupNormalization(2, gamma_initializer="random_normal", name="gn")(h)
    h = tf_keras.layers.BatchNormalization(name="bn")(h)
    original = tf_keras.Model(inputs, h)
    model = replace_normalization(original)
    assert isinstance(model.get_layer("gn"), legacy.GroupNormalization) and model.get_layer("gn").num_groups == 2
    assert isinstance(model.get_layer("bn"), legacy.GroupNormalization) and model.get_layer("bn").num_groups == 8
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    cut = lambda m: tf_keras.Model(m.input, m.get_layer("gn").output)  # noqa: E731
    np.testing.assert_allclose(cut(model)(x).numpy(), cut(original)(x).numpy(), atol=1e-5)


class _NoConfig(keras.layers.Layer):
    # An array argument: Keras cannot record it in the config on its own.
    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return x * self.scale


def test_a_layer_its_config_cannot_rebuild_is_named():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(_NoConfig(np.array([2.0]), name="odd")(inputs)))
    with pytest.raises(
        ValueError, match=r"Cannot copy layer 'odd' \(.*_NoConfig\): its get_config\(\) does not rebuild"
    ):
        replace_normalization(model)


def test_nothing_to_replace_is_said():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.warns(UserWarning, match="found no BatchNormalization or GroupNormalization"):
        replace_normalization(model)
