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


# A stand-in for TensorFlow Addons' GroupNormalization (which does not
# install beside TensorFlow 2.20), written in a process without keras_gn:
# its registered name, config keys, defaults and weights (gamma, beta) as
# Addons saved them, and the plain GN formula.
_ADDONS_WRITER = """
import numpy as np, tensorflow as tf, tf_keras

@tf_keras.utils.register_keras_serializable(package="Addons")
class GroupNormalization(tf_keras.layers.Layer):
    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.groups, self.axis, self.epsilon, self.center, self.scale = groups, axis, epsilon, center, scale
        self.beta_initializer = tf_keras.initializers.get(beta_initializer)
        self.gamma_initializer = tf_keras.initializers.get(gamma_initializer)

    def build(self, input_shape):
        c = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(c,), initializer=self.gamma_initializer)
        self.beta = self.add_weight(name="beta", shape=(c,), initializer=self.beta_initializer)

    def call(self, x):
        shape = tf.shape(x)
        g = tf.reshape(x, [shape[0], shape[1], shape[2], self.groups, -1])
        mean, var = tf.nn.moments(g, [1, 2, 4], keepdims=True)
        y = tf.reshape((g - mean) * tf.math.rsqrt(var + self.epsilon), shape)
        return y * self.gamma + self.beta

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": tf_keras.initializers.serialize(self.beta_initializer),
                "gamma_initializer": tf_keras.initializers.serialize(self.gamma_initializer),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None}

tf_keras.utils.set_random_seed(0)
inputs = tf_keras.Input((6, 6, 3))
h = tf_keras.layers.Conv2D(8, 3, padding="same")(inputs)
h = GroupNormalization(groups=4, gamma_initializer="random_normal", beta_initializer="random_normal")(h)
model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(h))
x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
np.save(FOLDER + "/x.npy", x)
np.save(FOLDER + "/y.npy", model(x).numpy())
model.save(FOLDER + "/addons.h5")
import h5py, json
config = json.loads(h5py.File(FOLDER + "/addons.h5")["/"].attrs["model_config"])
assert config["config"]["layers"][2]["class_name"] == "Addons>GroupNormalization", config["config"]["layers"][2]
"""

_ADDONS_READER = """
import numpy as np, keras, tf_keras
import keras_gn, keras_gn.legacy
x, y = np.load(FOLDER + "/x.npy"), np.load(FOLDER + "/y.npy")
for load in (keras.models.load_model, tf_keras.models.load_model):
    model = load(FOLDER + "/addons.h5")
    gn = model.layers[2]
    assert type(gn).__name__ == "AddonsGroupNormalization" and gn.num_groups == 4 and gn.epsilon == 1e-3, gn
    np.testing.assert_allclose(np.asarray(model(x)), y, rtol=0, atol=1e-5)
print("LOADED")
"""


def test_a_file_with_addons_group_normalization_loads(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_USE_LEGACY_KERAS="0")
    for script in (_ADDONS_WRITER, _ADDONS_READER):
        code = f"FOLDER = {str(tmp_path)!r}\n" + script
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED" in result.stdout
