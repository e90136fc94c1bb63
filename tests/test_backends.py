"""The layer on Keras backends other than TensorFlow, in a subprocess each."""

import os
import subprocess
import sys
import textwrap

import pytest
from binaries import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))

SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras
    import reference
    from keras_gn import GroupNormalization
    assert keras.backend.backend() == "{backend}", keras.backend.backend()
    rng = np.random.default_rng(0)
    for shape, axis, groups in [((4, 16), -1, 4), ((2, 5, 5, 32), -1, 8), ((2, 32, 3, 3, 3), 1, 32)]:
        x = rng.normal(1.0, 2.0, size=shape).astype("float32")
        layer = GroupNormalization(
            groups=groups, axis=axis, gamma_initializer="random_normal", beta_initializer="random_normal"
        )
        y = keras.ops.convert_to_numpy(layer(x))
        gamma, beta = (keras.ops.convert_to_numpy(w) for w in (layer.gamma, layer.beta))
        np.testing.assert_allclose(y, reference.group_norm(x, gamma, beta, groups, axis), rtol=1e-4, atol=3e-5)
    half = GroupNormalization(groups=4, dtype="mixed_float16")
    y = half(np.full((2, 4, 4, 8), 6e4, "float16") + rng.normal(size=(2, 4, 4, 8)).astype("float16"))
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert np.isfinite(keras.ops.convert_to_numpy(y).astype("float32")).all()
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(8, 3), GroupNormalization(groups=2),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(rng.normal(size=(8, 6, 6, 3)), np.arange(8) % 2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    print("OK", keras.backend.backend())
    """
)


@pytest.mark.parametrize("backend", ["jax"])
def test_layer_on_other_backend(backend):
    pytest.importorskip(backend)
    env = dict(
        os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join([ROOT, HERE, os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(backend=backend)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"OK {backend}" in result.stdout
