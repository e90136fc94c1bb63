"""One helper that checks every model the same way (config round trip,
forward shape, predict on tf.data, mixed precision, save and load)."""

import keras
import numpy as np
import tensorflow as tf


def check_model(build, input_shape, output_shape, tmp_path):
    """`build(**kwargs)` returns a fresh model; shapes exclude the batch."""
    model = build()
    x = np.random.default_rng(0).normal(size=(2,) + tuple(input_shape)).astype(np.float32)
    y = model(x)
    assert tuple(y.shape) == (2,) + tuple(output_shape)

    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), y.numpy(), rtol=1e-5, atol=1e-6)

    ds = tf.data.Dataset.from_tensor_slices(x).batch(1)
    np.testing.assert_allclose(model.predict(ds, verbose=0), y.numpy(), rtol=1e-4, atol=1e-5)

    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(x).numpy(), y.numpy(), rtol=1e-5, atol=1e-6)

    for policy in ("mixed_float16", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            mixed = build()
            # Through XLA: TensorFlow's CPU kernels lack float16 MaxPool3D.
            out = tf.function(mixed, jit_compile=True)(x)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        compute = policy.split("_")[1]
        assert all(w.dtype == "float32" for w in mixed.weights), policy
        inner = [l for l in mixed.layers if l.weights and l.name != "logits"]
        assert all(l.compute_dtype == compute for l in inner), policy
        assert np.isfinite(np.asarray(out, np.float32)).all()
    return model
