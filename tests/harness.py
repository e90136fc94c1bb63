"""One set of checks for every layer and model the package builds, in the
manner of keras-hub's `TestCase` (`run_layer_test`, `run_backbone_test`,
`run_model_saving_test`): given a builder `make(dtype=None)` and an input,

* `config_round_trip`: `get_config()` goes through JSON and `from_config`
  rebuilds an object with the same config and, given the same weights, the
  same outputs;
* `dtype_policies`: under float32, mixed_float16, mixed_bfloat16 and bfloat16
  each layer computes in the policy's compute dtype and keeps its weights in
  the variable dtype (the outputs' dtype is checked by the caller's
  `output_dtype`, since a classifier's logits stay float32);
* `eager_matches_symbolic`: calling on a tensor and predicting through a
  functional model give the same numbers and the declared output shape;
* `fit_step`: one `fit` step changes the weights and gives a finite loss;
* `saved_and_loaded_in_a_fresh_process`: `.keras` save, then load and predict
  in a new Python process that imports only keras_gn;
* `predict_on_tf_data`: `predict` on a `tf.data` dataset equals `predict` on
  the array.

Plain functions of the Keras module they test (Keras 3 on any backend, or
tf_keras), so that `test_harness.py` runs them under pytest and, for the GN
layer, in subprocesses under KERAS_BACKEND=jax and torch.
"""

import json
import os
import subprocess
import sys

import numpy as np
from binaries import ROOT

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16", "bfloat16")


def _to_numpy(K, y):
    if hasattr(K, "ops"):
        return np.asarray(K.ops.convert_to_numpy(y), np.float64)
    return np.asarray(y, np.float64)


def _as_model(K, obj, input_shape):
    if isinstance(obj, K.Model):
        return obj
    inputs = K.Input(input_shape[1:])
    return K.Model(inputs, obj(inputs))


def config_round_trip(K, make, x):
    obj = make()
    model = _as_model(K, obj, x.shape)
    config = json.loads(json.dumps(obj.get_config()))
    clone = type(obj).from_config(json.loads(json.dumps(config)))  # from_config may consume its argument
    clone_model = _as_model(K, clone, x.shape)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    clone_model.set_weights(model.get_weights())
    np.testing.assert_allclose(_to_numpy(K, clone_model(x)), _to_numpy(K, model(x)), rtol=1e-5, atol=1e-5)


def _policy(K, name):
    if hasattr(K, "dtype_policies"):
        return K.dtype_policies.get(name)
    return K.mixed_precision.Policy(name)


def dtype_policies(K, make, x, output_dtype, call=None):
    """`output_dtype(policy)`: the dtype the caller expects of the output;
    `call(obj, x)`: how to call it (default: eagerly)."""
    for name in POLICIES:
        policy = _policy(K, name)
        obj = make(dtype=name)
        y = call(obj, x) if call else obj(x)
        layers = obj.layers if isinstance(obj, K.Model) else [obj]
        checked = 0
        for layer in layers:
            # Every layer computes in the policy (ReLU, Add and pooling too:
            # one float32 layer would upcast the block), but the float32
            # logits and the inputs.
            if layer.name == "logits" or type(layer).__name__ == "InputLayer":
                continue
            assert _name(layer.compute_dtype) == policy.compute_dtype, (name, layer.name, layer.compute_dtype)
            for weight in layer.weights:
                assert _name(weight.dtype) == policy.variable_dtype, (name, layer.name, weight.name, weight.dtype)
            checked += bool(layer.weights)
        assert checked, "no layer with weights was checked"
        assert _name(y.dtype) == output_dtype(policy), (name, y.dtype)
        assert np.all(np.isfinite(_to_numpy(K, y)))


def _name(dtype):
    name = getattr(dtype, "name", None) or str(dtype)  # tf / NumPy / torch dtypes alike
    return name.replace("tf.", "").replace("torch.", "")


def eager_matches_symbolic(K, make, x):
    obj = make()
    eager = _to_numpy(K, obj(x))
    model = _as_model(K, obj, x.shape)
    symbolic = model.predict(x, verbose=0)
    np.testing.assert_allclose(np.asarray(symbolic, np.float64), eager, rtol=1e-5, atol=1e-5)
    if not isinstance(obj, K.Model):
        assert tuple(obj.compute_output_shape(x.shape)) == tuple(x.shape)


def fit_step(K, make, x, num_classes=None):
    obj = make()
    model = _as_model(K, obj, x.shape)
    if num_classes is None:  # a layer: fit the identity through it
        target, loss = x, "mse"
    else:
        target, loss = np.arange(len(x)) % num_classes, K.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=K.optimizers.SGD(0.1), loss=loss)
    x_shift = x + np.linspace(0.0, 1.0, x.shape[-1], dtype=x.dtype)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x_shift, target, batch_size=len(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert any(changed)


def saved_and_loaded_in_a_fresh_process(K, make, x, tmp_path, env=None):
    model = _as_model(K, make(), x.shape)
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    np.save(os.path.join(str(tmp_path), "x.npy"), x)
    # A tf_keras model with the twin needs keras_gn.legacy imported (its
    # registration), as a Keras 3 one needs keras_gn.
    keras_module, package = ("tf_keras", "keras_gn.legacy") if K.__name__ == "tf_keras" else ("keras", "keras_gn")
    x_path, y_path = os.path.join(str(tmp_path), "x.npy"), os.path.join(str(tmp_path), "y.npy")
    script = (
        f"import numpy as np, {package}, {keras_module} as K\n"
        f"m = K.models.load_model({path!r})\n"
        f"np.save({y_path!r}, np.asarray(m.predict(np.load({x_path!r}), verbose=0), np.float64))\n"
    )
    run_env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    done = subprocess.run([sys.executable, "-c", script], env=run_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = np.load(os.path.join(str(tmp_path), "y.npy"))
    np.testing.assert_allclose(loaded, np.asarray(model.predict(x, verbose=0), np.float64), rtol=1e-5, atol=1e-5)


def predict_on_tf_data(K, make, x):
    import tensorflow as tf

    model = _as_model(K, make(), x.shape)
    from_data = model.predict(tf.data.Dataset.from_tensor_slices(x).batch(2), verbose=0)
    np.testing.assert_allclose(
        np.asarray(from_data, np.float64), np.asarray(model.predict(x, verbose=0), np.float64), rtol=1e-5, atol=1e-5
    )


CHECKS = (
    "config_round_trip",
    "dtype_policies",
    "eager_matches_symbolic",
    "fit_step",
    "saved_and_loaded_in_a_fresh_process",
    "predict_on_tf_data",
)
