"""The ResNet builder."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gn import GroupNormalization
from keras_gn.models import resnet, resnet50, resnet101


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_resnet50_and_101_have_the_standard_sizes():
    # torchvision's resnet50 / resnet101 have 25,557,032 / 44,549,160 parameters.
    assert _trainable(resnet50(norm="gn")) == 25_557_032
    assert _trainable(resnet101(norm="bn")) == 44_549_160


def test_resnet18_and_34_have_torchvisions_sizes_and_basic_blocks():
    # torchvision's resnet18 / resnet34 have 11,689,512 / 21,797,672 parameters.
    assert _trainable(resnet(18, norm="gn")) == 11_689_512
    assert _trainable(resnet(34, norm="bn")) == 21_797_672
    model = resnet(18, norm="gn", include_top=False)
    assert model.output_shape == (None, 7, 7, 512)
    names = [layer.name for layer in model.layers]
    # Two 3x3 convolutions per block, the stride on the first; stage 1 keeps the stem's shape (no projection).
    assert not any(n.endswith(("_conv3", "_norm3")) for n in names) and "stage1_block1_proj_conv" not in names
    assert model.get_layer("stage2_block1_conv1").strides == (2, 2) and model.get_layer(
        "stage2_block1_conv1"
    ).kernel_size == (3, 3)
    assert model.get_layer("stage2_block1_conv2").strides == (1, 1)
    assert model.get_layer("stage2_block1_proj_conv").strides == (2, 2) and "stage2_block2_proj_conv" not in names
    # Zero gamma in each block's last norm, and one in every other one.
    for layer in model.layers:
        if isinstance(layer, GroupNormalization):
            assert np.all(layer.gamma.numpy() == (0.0 if layer.name.endswith("_norm2") else 1.0)), layer.name
    assert len([l for l in model.layers if isinstance(l, GroupNormalization)]) == 1 + 2 * 8 + 3


def test_basic_resnets_take_every_option():
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    for kwargs in (
        dict(norm="bn", virtual_replicas=2),
        dict(norm="gn", groups=8, weight_standardization=True, padding="same"),
        dict(norm="gn", groups=8, stem="strided"),
    ):
        model = resnet(34, width=16, num_classes=10, input_shape=(32, 32, 3), **kwargs)
        assert model(x, training=True).shape == (2, 10), kwargs
    levels = resnet(18, norm="gn", groups=8, width=16, input_shape=(64, 64, 3), endpoints=True).output
    assert {k: v.shape[1:] for k, v in levels.items()} == {
        "2": (16, 16, 16), "3": (8, 8, 32), "4": (4, 4, 64), "5": (2, 2, 128)
    }  # fmt: skip
    # GN's groups must divide the basic stages' widths (no 4x outputs).
    from keras_gn.models.resnet import normalized_channels

    assert normalized_channels(18, 16) == [16, 32, 64, 128]
    # A saved ResNet-18 rebuilds as one.
    model = resnet(18, norm="gn", groups=8, width=16, num_classes=10, input_shape=(32, 32, 3))
    again = type(model).from_config(model.get_config())
    assert [l.name for l in again.layers] == [l.name for l in model.layers]


def test_structure():
    model = resnet50(norm="gn", include_top=False)
    assert model.output_shape == (None, 7, 7, 2048)
    # The stride of a downsampling block is on its 3x3 convolution.
    assert model.get_layer("stage2_block1_conv2").strides == (2, 2)
    assert model.get_layer("stage2_block1_conv1").strides == (1, 1)
    assert model.get_layer("stage2_block1_proj_conv").strides == (2, 2)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs and not any(c.use_bias for c in convs)
    gns = [l for l in model.layers if isinstance(l, GroupNormalization)]
    assert len(gns) == 53 and all(l.groups == 32 for l in gns)


def test_channels_first_matches_channels_last():
    kw = dict(norm="gn", groups=4, width=8, stem="small", num_classes=5)
    last = resnet(8, input_shape=(16, 16, 3), **kw)
    first = resnet(8, input_shape=(3, 16, 16), data_format="channels_first", **kw)
    first.set_weights(last.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    # TensorFlow's CPU kernels have no NCHW convolution; XLA compiles one.
    y_first = tf.function(first, jit_compile=True)(np.transpose(x, [0, 3, 1, 2]))
    np.testing.assert_allclose(y_first.numpy(), last(x).numpy(), rtol=1e-4, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth must be one of"):
        resnet(35)
    with pytest.raises(ValueError, match="data_format must be"):
        resnet(8, data_format="NHWC")
    with pytest.raises(ValueError, match="groups=32 is more than the 8 channels"):
        resnet(8, width=8, stem="small", input_shape=(8, 8, 3))


def test_stages_build_a_part_of_the_network_with_the_whole_ones_names():
    from keras_gn.models import resnet

    whole = resnet(depth=50, norm="gn", input_shape=(64, 64, 3), include_top=False)
    res2to4 = resnet(depth=50, norm="gn", input_shape=(64, 64, 3), stages=(1, 2, 3), endpoints=True)
    res5 = resnet(depth=50, norm="gn", input_shape=(14, 14, 1024), stages=(4,), include_top=False)
    assert list(res2to4.output) == ["2", "3", "4"] and res5.output_shape == (None, 7, 7, 2048)
    names = lambda m: {l.name for l in m.layers if l.weights}
    assert names(res2to4) | names(res5) == names(whole) and not names(res2to4) & names(res5)
    assert res2to4.count_params() + res5.count_params() == whole.count_params()
    with pytest.raises(ValueError, match="consecutive stages among 1..4"):
        resnet(depth=50, stages=(1, 3))
    with pytest.raises(ValueError, match="give the input feature map's input_shape"):
        resnet(depth=50, stages=(4,))


def _standardized(kernel, epsilon=1e-6):
    """The Weight Standardization formula in float64 NumPy: per output
    channel (last axis), over every other axis, biased variance."""
    w = np.asarray(kernel, np.float64)
    axes = tuple(range(w.ndim - 1))
    return (w - w.mean(axes, keepdims=True)) / np.sqrt(w.var(axes, keepdims=True) + epsilon)


def test_weight_standardization_in_every_convolution():
    from keras_gn import WSConv2D
    from keras_gn.models.resnet import ResNet

    model = resnet50(norm="gn", weight_standardization=True)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 53 and all(isinstance(c, WSConv2D) for c in convs)  # stem and projections too
    assert not isinstance(model.get_layer("logits"), WSConv2D)
    assert _trainable(model) == 25_557_032 and model.name == "resnet50_gn_ws"
    config = model.get_config()
    assert config["weight_standardization"] is True
    clone = ResNet.from_config(config)
    assert sum(isinstance(l, WSConv2D) for l in clone.layers) == 53
    assert (
        resnet(8, width=8, groups=4, stem="small", input_shape=(8, 8, 3)).get_config()["weight_standardization"]
        is False
    )


def test_ws_resnet_equals_a_plain_one_holding_standardized_kernels():
    kw = dict(norm="gn", groups=4, width=8, num_classes=5, input_shape=(32, 32, 3))
    ws = resnet(14, weight_standardization=True, **kw)
    rng = np.random.default_rng(0)
    for w in ws.weights:
        w.assign(rng.normal(0.1, 0.3, w.shape).astype(np.float32))
    plain = resnet(14, **kw)
    for layer in ws.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.Conv2D):
            weights[0] = _standardized(weights[0]).astype(np.float32)
        plain.get_layer(layer.name).set_weights(weights)
    x = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    expected = plain(x).numpy()
    np.testing.assert_allclose(ws(x).numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    from keras_gn import WSConv2D, fold_weight_standardization

    folded = fold_weight_standardization(ws)
    assert not any(isinstance(l, WSConv2D) for l in folded.layers)
    assert sum(type(l) is keras.layers.Conv2D for l in folded.layers) == 17
    np.testing.assert_allclose(folded(x).numpy(), ws(x).numpy(), rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_ws_resnet_for_tf_keras():
    tf_keras = pytest.importorskip("tf_keras")
    from keras_gn import legacy

    model = resnet(8, norm="gn", groups=4, width=8, input_shape=(32, 32, 3), framework="tf_keras",
                   weight_standardization=True)  # fmt: skip
    convs = [l for l in model.layers if isinstance(l, tf_keras.layers.Conv2D)]
    assert len(convs) == 9 and all(isinstance(c, legacy.WSConv2D) for c in convs)


def test_each_builder_keeps_exactly_its_signatures_arguments():
    """A builder is written once: its signature is its config (plus the
    norm's keyword arguments and `trainable`), positional arguments included,
    and a model rebuilt from the config has the same layers."""
    import inspect

    from keras_gn.models import bit_resnet, i3d_resnet
    from keras_gn.models.bit import BiTResNet
    from keras_gn.models.i3d import I3DResNet
    from keras_gn.models.resnet import ResNet

    built = [
        (resnet, ResNet, resnet(8, "gn", width=8, groups=4, stem="small", input_shape=(8, 8, 3), num_classes=3)),
        (i3d_resnet, I3DResNet, i3d_resnet(8, width=8, groups=4, input_shape=(4, 16, 16, 3), num_classes=3)),
        (bit_resnet, BiTResNet, bit_resnet(50, 1, False, input_shape=(32, 32, 3))),
    ]
    for builder, cls, model in built:
        parameters = inspect.signature(builder).parameters
        named = {n for n, p in parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
        extra = {"groups"} if "norm_args" in parameters else set()
        assert isinstance(model, cls) and set(model.get_config()) == named | extra | {"trainable"}, builder.__name__
        assert builder.__wrapped__ is cls.graph and builder.__doc__.strip()
        again = cls.from_config(model.get_config())
        assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    assert built[0][2].get_config()["depth"] == 8 and built[2][2].get_config()["include_top"] is False
    # A norm with no name has no config to keep: a plain functional model.
    plain = resnet(8, keras.layers.LayerNormalization, width=8, stem="small", input_shape=(8, 8, 3))
    assert not isinstance(plain, ResNet) and plain.name == "resnet8_LayerNormalization"
    with pytest.raises(TypeError, match="resnet\\(\\) takes no source: .* model.pretrained"):
        resnet(8, width=8, stem="small", input_shape=(8, 8, 3), source="timm")
