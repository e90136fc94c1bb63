"""The shared checks of `harness.py` on the things the package builds: the GN
layer and the Weight Standardization convolutions, their tf_keras twins, the
ResNet and the I3D ResNet (with and without WS); and the layers' checks again
under the JAX and PyTorch backends of Keras, each in a subprocess (a Keras
process has one backend)."""

import os
import subprocess
import sys

import harness
import numpy as np
import pytest


def _gn_layer(dtype=None):
    from keras_gn import GroupNormalization

    return GroupNormalization(groups=2, dtype=dtype, beta_initializer="random_normal")


def _gn_twin(dtype=None):
    from keras_gn.legacy import GroupNormalization

    return GroupNormalization(groups=2, dtype=dtype, beta_initializer="random_normal")


def _ws_conv2d(dtype=None):
    from keras_gn import WSConv2D

    # As many filters as input channels: the harness fits the identity through a layer.
    return WSConv2D(4, 3, padding="same", groups=2, dtype=dtype, bias_initializer="random_normal")


def _ws_conv3d(dtype=None):
    from keras_gn import WSConv3D

    return WSConv3D(4, 3, padding="same", dtype=dtype, bias_initializer="random_normal")


def _ws_conv2d_twin(dtype=None):
    from keras_gn.legacy import WSConv2D

    return WSConv2D(4, 3, padding="same", groups=2, dtype=dtype, bias_initializer="random_normal")


def _resnet_ws(dtype=None):
    from keras_gn.models import resnet

    return resnet(
        8, norm="gn", groups=4, width=8, stem="small", input_shape=(8, 8, 3), num_classes=3, dtype=dtype,
        weight_standardization=True,
    )  # fmt: skip


def _resnet(dtype=None):
    from keras_gn.models import resnet

    return resnet(8, norm="gn", groups=4, width=8, stem="small", input_shape=(8, 8, 3), num_classes=3, dtype=dtype)


def _resnet14(dtype=None):
    from keras_gn.models import resnet

    return resnet(14, norm="bn", width=8, stem="small", input_shape=(16, 16, 3), num_classes=3, dtype=dtype)


def _i3d(dtype=None):
    from keras_gn.models import i3d_resnet

    return i3d_resnet(8, norm="gn", groups=4, width=8, input_shape=(2, 16, 16, 3), num_classes=3, dtype=dtype)


def _i3d_edge(dtype=None):
    from keras_gn.models import i3d_resnet

    return i3d_resnet(
        8, norm="gn", groups=4, width=8, input_shape=(4, 16, 16, 3), num_classes=3, temporal_padding="edge",
        dtype=dtype,
    )  # fmt: skip


def _keras():
    import keras

    return keras


def _tf_keras():
    return pytest.importorskip("tf_keras")


RNG = np.random.default_rng(0)
SUBJECTS = {
    # name: (Keras module, builder, input, classes (None: a layer))
    "gn_layer": (_keras, _gn_layer, RNG.normal(2.0, 3.0, (4, 5, 5, 4)).astype("float32"), None),
    "gn_layer_tf_keras": (_tf_keras, _gn_twin, RNG.normal(2.0, 3.0, (4, 5, 5, 4)).astype("float32"), None),
    "resnet": (_keras, _resnet, RNG.normal(size=(4, 8, 8, 3)).astype("float32"), 3),
    "resnet14_bn_four_stages": (_keras, _resnet14, RNG.normal(size=(4, 16, 16, 3)).astype("float32"), 3),
    "i3d_resnet": (_keras, _i3d, RNG.normal(size=(4, 2, 16, 16, 3)).astype("float32"), 3),
    "i3d_resnet_edge_padding": (_keras, _i3d_edge, RNG.normal(size=(4, 4, 16, 16, 3)).astype("float32"), 3),
    "ws_conv2d": (_keras, _ws_conv2d, RNG.normal(2.0, 3.0, (4, 5, 5, 4)).astype("float32"), None),
    "ws_conv3d": (_keras, _ws_conv3d, RNG.normal(2.0, 3.0, (4, 3, 5, 5, 4)).astype("float32"), None),
    "ws_conv2d_tf_keras": (_tf_keras, _ws_conv2d_twin, RNG.normal(2.0, 3.0, (4, 5, 5, 4)).astype("float32"), None),
    "resnet_ws": (_keras, _resnet_ws, RNG.normal(size=(4, 8, 8, 3)).astype("float32"), 3),
}

# TensorFlow's CPU kernels have no float16 MaxPool3D or Conv3D: these run
# under XLA, as training does (jit_compile=True); GPUs have the kernels.
XLA_FOR_FLOAT16 = ("i3d_resnet", "i3d_resnet_edge_padding", "ws_conv3d")


@pytest.mark.parametrize("check", harness.CHECKS)
@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_harness(subject, check, tmp_path):
    module, make, x, classes = SUBJECTS[subject]
    K = module()
    if check == "fit_step":
        harness.fit_step(K, make, x, classes)
    elif check == "dtype_policies":
        call = None
        if subject in XLA_FOR_FLOAT16:
            import tensorflow as tf

            call = lambda model, x: tf.function(model, jit_compile=True)(x)  # noqa: E731
        expected = lambda policy: policy.compute_dtype if classes is None else "float32"  # noqa: E731
        harness.dtype_policies(K, make, x, expected, call)
    elif check == "eager_matches_symbolic":
        harness.eager_matches_symbolic(K, make, x)
        if classes is not None:
            assert tuple(make()(x).shape) == (len(x), classes)
    elif check == "saved_and_loaded_in_a_fresh_process":
        harness.saved_and_loaded_in_a_fresh_process(K, make, x, tmp_path)
    else:
        getattr(harness, check)(K, make, x)


BACKEND_SCRIPT = """
import os, sys, numpy as np, keras
sys.path.insert(0, {tests!r})
import harness
from keras_gn import GroupNormalization, WSConv2D
assert keras.backend.backend() == {backend!r}, keras.backend.backend()
x = np.random.default_rng(0).normal(2.0, 3.0, (4, 5, 5, 4)).astype("float32")
for name, make in [
    ("gn", lambda dtype=None: GroupNormalization(groups=2, dtype=dtype, beta_initializer="random_normal")),
    ("ws", lambda dtype=None: WSConv2D(4, 3, padding="same", groups=2, dtype=dtype, bias_initializer="random_normal")),
]:
    harness.config_round_trip(keras, make, x)
    harness.dtype_policies(keras, make, x, lambda policy: policy.compute_dtype)
    harness.eager_matches_symbolic(keras, make, x)
    harness.fit_step(keras, make, x)
    os.makedirs(os.path.join({tmp!r}, name))
    harness.saved_and_loaded_in_a_fresh_process(keras, make, x, os.path.join({tmp!r}, name))
    harness.predict_on_tf_data(keras, make, x)
    print(name, "checks passed")
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_layer_harness_on_other_backends(backend, tmp_path):
    pytest.importorskip(backend)
    script = BACKEND_SCRIPT.format(tests=os.path.dirname(__file__), backend=backend, tmp=str(tmp_path))
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=harness.ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "gn checks passed" in done.stdout and "ws checks passed" in done.stdout
