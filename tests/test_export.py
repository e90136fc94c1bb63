"""A GN model exported and served: TFLite, `model.export` with open sizes
served at two sizes, ONNX through tf2onnx where it installs; and the empty
batch (a detector head with no RoIs), forward and gradient, in every way the
core runs."""

import importlib.util
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf
from binaries import ROOT

from keras_gn import GroupNormalization, ops


def _model(input_shape):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(input_shape)
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    h = GroupNormalization(groups=4, gamma_initializer="random_normal", beta_initializer="random_normal")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(h)
    h = GroupNormalization(groups=2, gamma_initializer="random_normal", beta_initializer="random_normal")(h)
    return keras.Model(inputs, h)


def _interpreter(model_content):
    if importlib.util.find_spec("ai_edge_litert"):
        from ai_edge_litert.interpreter import Interpreter
    else:  # pragma: no cover - TensorFlow's own, deprecated in 2.20
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_content=model_content)


def _run_tflite(interpreter, x):
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("sizes", [(10, 10), (None, None)], ids=["static_sizes", "open_sizes"])
def test_tflite_round_trip(tmp_path, sizes):
    model = _model((*sizes, 3))
    model.export(str(tmp_path / "saved"), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    interpreter = _interpreter(converter.convert())
    rng = np.random.default_rng(1)
    for size in (10,) if sizes[0] else (10, 13):
        x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
        expected = model.predict(x, verbose=0)
        np.testing.assert_allclose(_run_tflite(interpreter, x), expected, rtol=0, atol=1e-5)


def test_export_with_open_sizes_serves_two_sizes(tmp_path):
    model = _model((None, None, 3))
    model.export(str(tmp_path / "saved"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved"))
    rng = np.random.default_rng(2)
    for size in (9, 16):
        x = rng.normal(size=(3, size, size, 3)).astype(np.float32)
        np.testing.assert_allclose(served.serve(x).numpy(), model.predict(x, verbose=0), rtol=0, atol=1e-5)


@pytest.mark.skipif(not importlib.util.find_spec("tf2onnx"), reason="tf2onnx is not installed")
def test_onnx_through_tf2onnx(tmp_path):
    # tf2onnx reads the SavedModel in its own process (it changes TensorFlow's
    # global graph settings), onnxruntime serves it. tf2onnx does not inline
    # the core's functions: export under ops.inline_core().
    pytest.importorskip("onnxruntime")
    model = _model((12, 12, 3))
    with ops.inline_core():
        model.export(str(tmp_path / "saved"), verbose=False)
    x = np.random.default_rng(3).normal(size=(2, 12, 12, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    converted = subprocess.run(
        [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--saved-model",
            str(tmp_path / "saved"),
            "--output",
            str(tmp_path / "m.onnx"),
            "--opset",
            "17",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert converted.returncode == 0, converted.stderr[-3000:]
    script = textwrap.dedent(
        f"""
        import numpy as np, onnxruntime
        session = onnxruntime.InferenceSession({str(tmp_path / "m.onnx")!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        y = session.run(None, {{session.get_inputs()[0].name: x}})[0]
        np.testing.assert_allclose(y, np.load({str(tmp_path / "y.npy")!r}), rtol=0, atol=1e-5)
        print("ONNX OK")
        """
    )
    served = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert served.returncode == 0 and "ONNX OK" in served.stdout, served.stderr[-3000:]


# Every way the core runs: eagerly (the open graph), in a plain graph with
# static sizes (the compiled core), in a plain graph with open sizes, and
# inside the caller's XLA compilation.
RUNNERS = {
    "eager": lambda f: f,
    "graph_static": lambda f: tf.function(f),
    "graph_open": lambda f: tf.function(f, input_signature=[tf.TensorSpec([None, None, None, 8])]),
    "xla": lambda f: tf.function(f, jit_compile=True),
}


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_empty_batch_forward_and_gradient(runner):
    gamma = tf.constant(np.linspace(0.5, 1.5, 8, dtype=np.float32))
    beta = tf.constant(np.linspace(-1, 1, 8, dtype=np.float32))

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y = ops.group_norm(x, gamma, beta, 4)
            loss = tf.reduce_sum(y * 2.0)
        return (y, *tape.gradient(loss, [x, gamma, beta]))

    fn = RUNNERS[runner](step)
    y, dx, dgamma, dbeta = fn(tf.zeros([0, 5, 5, 8]))
    assert y.shape == (0, 5, 5, 8) and dx.shape == (0, 5, 5, 8)
    np.testing.assert_array_equal(dgamma.numpy(), np.zeros(8))
    np.testing.assert_array_equal(dbeta.numpy(), np.zeros(8))
    # The same function still computes GN on a batch that is not empty.
    x = np.random.default_rng(4).normal(size=(2, 5, 5, 8)).astype(np.float32)
    y, *_ = fn(tf.constant(x))
    np.testing.assert_allclose(y.numpy(), reference.group_norm(x, gamma.numpy(), beta.numpy(), 4), atol=2e-5)


def test_empty_batch_through_a_model():
    # A box head on no RoIs: GN, then a Dense layer. (No convolution: TF
    # 2.20's CPU Conv2D hands an empty batch back with the input's channels,
    # with Keras's own normalization layers too.)
    inputs = keras.Input((7, 7, 16))
    h = GroupNormalization(groups=4)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Flatten()(h)))
    empty = np.zeros((0, 7, 7, 16), np.float32)
    for fn in (model, tf.function(model), tf.function(model, jit_compile=True)):
        assert fn(empty).shape == (0, 5)
