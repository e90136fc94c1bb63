"""Config round trip, .keras save/load in a fresh process, SavedModel export."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf
from binaries import ROOT

from keras_gn import GroupNormalization


def _model():
    return keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(16, 3, padding="same"),
            GroupNormalization(groups=4, epsilon=1e-4, gamma_regularizer="l2", gamma_initializer="random_normal"),
            keras.layers.ReLU(),
            GroupNormalization(group_size=2, axis=-1, center=False, beta_initializer="ones"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )


def test_config_round_trip():
    layer = GroupNormalization(group_size=4, axis=1, epsilon=1e-3, center=False, gamma_constraint="non_neg", name="gn")
    config = layer.get_config()
    clone = GroupNormalization.from_config(config)
    assert clone.get_config() == config
    assert (clone.groups, clone.group_size, clone.axis, clone.epsilon, clone.center) == (None, 4, 1, 1e-3, False)
    # Registered under the package name, so Keras finds it by name.
    assert keras.saving.get_registered_object("keras_gn>GroupNormalization") is GroupNormalization


def test_save_and_load_in_fresh_process(tmp_path):
    model = _model()
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 3)).astype(np.float32)
    path = tmp_path / "m.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import keras_gn  # registers the layer
        model = keras.models.load_model({str(path)!r})
        y = model.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0)
        np.testing.assert_array_equal(y, np.load({str(tmp_path / "y.npy")!r}))
        assert type(model.layers[1]).__name__ == "GroupNormalization", model.layers[1]
        print("RELOADED", model.layers[1].num_groups, model.layers[3].num_groups)
        """
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RELOADED 4 8" in result.stdout


def test_export_saved_model(tmp_path):
    model = _model()
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    model.export(str(tmp_path / "exported"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "exported"))
    np.testing.assert_allclose(served.serve(tf.constant(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
