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
        resnet(34)
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
