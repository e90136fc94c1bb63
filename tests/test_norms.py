"""The normalization factory, inside a small ResNet."""

import keras
import numpy as np
import pytest

from keras_gn import GroupNormalization, normalization
from keras_gn.models import resnet

NAMES = ["bn", "syncbn", "frozen_bn", "brn", "gn", "ln", "in", "none"]


def _small(norm, **kwargs):
    return resnet(8, norm=norm, width=32, stem="small", input_shape=(8, 8, 3), num_classes=4, **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_each_name_builds_trains_and_serializes(name, tmp_path):
    model = _small(name)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype(np.float32)
    kernel = model.get_layer("stem_conv").kernel  # block-inner convs get no gradient at step 1 (gamma = 0)
    before = kernel.numpy().copy()
    loss = model.train_on_batch(x, np.array([0, 1, 2, 3]))
    assert np.isfinite(loss)
    assert not np.array_equal(before, kernel.numpy())
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_layers_are_what_the_names_say():
    make = lambda name, **kw: normalization(name, **kw)(axis=-1)
    assert make("gn").groups == 32 and make("gn", groups=16).groups == 16
    assert make("ln").groups == 1
    assert make("in").group_size == 1 and make("in").groups is None
    assert make("gn", group_size=4).group_size == 4
    bn = make("bn")
    assert isinstance(bn, keras.layers.BatchNormalization) and not bn.synchronized and not bn.renorm
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
    assert make("syncbn").synchronized
    assert make("frozen_bn").trainable is False
    brn = make("brn")
    assert brn.renorm and brn.renorm_clipping == {"rmax": 1.5, "rmin": 1 / 1.5, "dmax": 0.5}
    assert isinstance(make("none"), keras.layers.Identity)
    assert make("bn", momentum=0.99).momentum == 0.99


def test_frozen_bn_uses_inference_statistics_in_training():
    layer = normalization("frozen_bn")(axis=-1)
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(8, 4)).astype(np.float32)
    np.testing.assert_allclose(layer(x, training=True).numpy(), x / np.sqrt(1 + 1e-5), rtol=1e-5)
    assert layer.trainable_weights == []


def test_custom_class_and_callable():
    model = _small(keras.layers.LayerNormalization)
    assert any(isinstance(l, keras.layers.LayerNormalization) for l in model.layers)
    calls = []

    def my_norm(axis, zero_init=False, regularizer=None, name=None):
        calls.append(zero_init)
        return GroupNormalization(groups=8, axis=axis, name=name)

    _small(my_norm)
    assert True in calls and False in calls


def test_unknown_name_lists_known_ones():
    with pytest.raises(
        ValueError, match="Unknown normalization 'batchnorm'; known: bn, syncbn, frozen_bn, brn, gn, ln, in, none"
    ):
        normalization("batchnorm")
    with pytest.raises(TypeError, match="norm must be a name"):
        normalization(3)


@pytest.mark.parametrize("name", ["gn", "bn"])
def test_last_norm_of_every_block_starts_at_zero_gamma(name):
    model = resnet(14, norm=name, width=32, stem="small", input_shape=(16, 16, 3), num_classes=2)
    norms = [l for l in model.layers if l.name.endswith("norm") or "_norm" in l.name]
    last = [l for l in norms if l.name.endswith("_norm3")]
    assert len(last) == 4  # one per block
    for layer in norms:
        expected = 0.0 if layer in last else 1.0
        np.testing.assert_array_equal(layer.gamma.numpy(), expected, err_msg=layer.name)


def test_weight_decay_reaches_every_weight_including_gamma_and_beta():
    wd = 1e-4
    model = resnet(8, norm="gn", width=32, stem="small", input_shape=(8, 8, 3), num_classes=3, weight_decay=wd)
    # Give gamma and beta non-trivial values so that they count.
    for w in model.trainable_weights:
        w.assign(np.random.default_rng(len(w.path)).normal(size=w.shape))
    model(np.zeros((1, 8, 8, 3), np.float32))
    expected = 0.5 * wd * sum(float(np.sum(w.numpy() ** 2)) for w in model.trainable_weights)
    assert any("gamma" in w.path for w in model.trainable_weights)
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-5)


def test_per_norm_arguments_reach_only_their_family():
    # Callers (the builders, the binaries) pass groups= and momentum= whatever the norm.
    gn = normalization("gn", groups=4, momentum=0.5)(axis=-1)
    assert gn.groups == 4
    bn = normalization("bn", groups=4, momentum=0.5)(axis=-1)
    assert isinstance(bn, keras.layers.BatchNormalization) and bn.momentum == 0.5
    ln = normalization("ln", groups=4)(axis=-1)
    assert ln.groups == 1
    inst = normalization("in", groups=4)(axis=-1)
    assert inst.group_size == 1 and inst.groups is None
    assert normalization("gn", group_size=2)(axis=-1).group_size == 2
    model = _small("bn", groups=4)
    assert all(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers if "norm" in layer.name)


def test_tf_keras_layer_class_as_norm():
    tf_keras = pytest.importorskip("tf_keras")
    model = resnet(
        8,
        norm=tf_keras.layers.LayerNormalization,
        framework="tf_keras",
        width=8,
        stem="small",
        input_shape=(8, 8, 3),
        num_classes=2,
    )
    norm3 = model.get_layer("stage1_block1_norm3")
    assert isinstance(norm3, tf_keras.layers.LayerNormalization)
    assert np.all(norm3.get_weights()[0] == 0)  # zero_init reached the class as gamma_initializer


def test_builders_take_a_dtype_policy():
    model = _small("gn", dtype="mixed_float16")
    conv = model.get_layer("stage1_block1_conv2")
    norm = model.get_layer("stage1_block1_norm2")
    assert conv.compute_dtype == "float16" and conv.variable_dtype == "float32"
    assert norm.compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32"
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    assert model(x).dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy untouched
