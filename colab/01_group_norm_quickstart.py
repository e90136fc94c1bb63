# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Group Normalization in Keras: a quick start
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/keras-gn/keras_gn/blob/main/colab/01_group_norm_quickstart.ipynb)
#
# Group Normalization (Wu & He, ECCV 2018) divides the channels into groups
# and normalizes each group of each image by its own mean and variance, so
# its result does not depend on the batch. This notebook shows
# `keras_gn.GroupNormalization` in a model; which elements GN, BN, LN and IN
# normalize together (the paper's Figure 2), computed from the layers
# themselves; batch independence; swapping BN for GN in a Keras application
# model; mixed precision; saving and loading; and the layer's speed on this
# runtime.

# %%
# Installs keras_gn from the project's repository (Colab); skipped where it is
# already importable (a checkout with `pip install -e .`, as in the project's CI).
import importlib.util
import os
import subprocess
import sys

REPO_URL = "https://github.com/keras-gn/keras_gn"  # the repository the badge above opens
if importlib.util.find_spec("keras_gn") is None:
    subprocess.run(["git", "clone", "--depth=1", REPO_URL, "/content/keras_gn"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/keras_gn"], check=True)
    sys.path.insert(0, "/content/keras_gn")

# %% tags=["parameters"]
SMALL = False  # CI sets True: fewer images and benchmark shapes, to check that every cell runs

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

import keras_gn
from keras_gn import GroupNormalization, instance_norm, layer_norm, replace_normalization
from keras_gn.train import make_strategy

# A TPU if the runtime has one, else all its GPUs, else the CPU: the same code
# as `--strategy=auto` in the experiment binaries.
strategy = make_strategy("auto")
print(f"keras_gn {keras_gn.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}; "
      f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)")

# %% [markdown]
# ## 1. In a model
#
# `GroupNormalization(groups=32)` goes wherever `BatchNormalization` stood.
# Its defaults are the paper's: G = 32, ε = 1e-5, γ = 1 and β = 0 at start,
# channels last (`axis=-1`; `axis=1` for channels first). A small CNN on
# Fashion-MNIST (from Keras's downloader, or Debian's `dataset-fashion-mnist`;
# without either, and at the SMALL size, the subset that ships with keras_gn):

# %%
from keras_gn.data.fashion_mnist import load_bundled_subset, load_fashion_mnist_or_subset

(x_train, y_train), (x_test, y_test), source = load_bundled_subset() if SMALL else load_fashion_mnist_or_subset()
n_train = 2_000 if SMALL else 60_000
x_train = (x_train[:n_train, ..., None] / 255.0).astype("float32")
x_test = (x_test[:, ..., None] / 255.0).astype("float32")
y_train, y_test = y_train[:n_train], y_test
print(f"Fashion-MNIST from {source}: {len(x_train)} training images")


def small_cnn(norm):
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, padding="same", use_bias=False), norm(), keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", use_bias=False), norm(), keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])


with strategy.scope():
    model = small_cnn(lambda: GroupNormalization(groups=8))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=2)
print("test accuracy: %.3f" % model.evaluate(x_test, y_test, batch_size=500, verbose=0)[1])

# %% [markdown]
# ## 2. What is normalized together (the paper's Figure 2)
#
# Each panel is a feature map of the model above on 8 test images, drawn as
# an N × C grid (rows: images, columns: channels; H and W folded into each
# cell). Adding a constant to one cell (the ★) changes the mean of every
# set it belongs to, so the outputs that move are exactly the elements the
# layer normalizes together. Computed from the layers themselves: Keras's
# BatchNormalization in training mode, and our LayerNorm, InstanceNorm and GN.

# %%
features = np.asarray(model.layers[0](x_test[:8]))  # the first conv's output, [8, 28, 28, 32]
N, C = features.shape[0], features.shape[-1]
n0, c0 = 2, 5


def normalized_with(layer, x, n0=n0, c0=c0):
    """[N, C] bool: which (image, channel) outputs change when the input of
    (n0, c0) moves."""
    bumped = x.copy()
    bumped[n0, ..., c0] += 3.0
    y0, y1 = (np.asarray(layer(v, training=True)) for v in (x, bumped))
    changed = np.abs(y1 - y0).max(axis=(1, 2)) > 1e-4
    changed[n0, c0] = True  # its own output moves in every method
    return changed


methods = {
    "Batch Norm": keras.layers.BatchNormalization(),
    "Layer Norm": layer_norm(),
    "Instance Norm": instance_norm(),
    "Group Norm (G = 4)": GroupNormalization(groups=4),
}


def show(panels, title):
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 1.9))
    for ax, (name, grid) in zip(axes, panels.items()):
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=1.4, aspect="auto")
        ax.plot(c0, n0, "*", color="orange", markersize=10)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("C (channels)")
        ax.set_ylabel("N (images)")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    plt.show()


show({name: normalized_with(layer, features) for name, layer in methods.items()},
     "Blue: normalized with the starred cell")
# GN spans LN (G = 1) to IN (G = C).
show({f"G = {g}": normalized_with(GroupNormalization(groups=g), features) for g in (1, 2, 8, 32)},
     "GN as G grows: from Layer Norm to Instance Norm")

# %% [markdown]
# ## 3. Batch independence
#
# An image's GN output is the same alone or in any batch; BN's (in training)
# depends on the other images. Under a distribution strategy this is why GN
# behaves the same on any number of replicas and images per replica.

# %%
x = features
gn, bn = GroupNormalization(groups=8), keras.layers.BatchNormalization()
for name, layer in (("GN", gn), ("BN", bn)):
    alone = np.asarray(layer(x[:1], training=True))
    in_batch = np.asarray(layer(x, training=True))[:1]
    in_other_batch = np.asarray(layer(np.concatenate([x[:1], x[1:] * 3 + 1]), training=True))[:1]
    print(f"{name}: image 0 alone vs in a batch of {N}: max |difference| {np.abs(alone - in_batch).max():.2e}; "
          f"vs a batch of other images: {np.abs(alone - in_other_batch).max():.2e}")

# %% [markdown]
# ## 4. Replacing BN in an existing model
#
# `replace_normalization` copies a functional model with every
# `BatchNormalization` replaced by GN on the same axis, keeping the other
# layers' weights. Here Keras's ResNet-50 (random weights: nothing is
# downloaded), then one training step.

# %%
size = 64 if SMALL else 224
resnet = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=10)
with strategy.scope():
    resnet_gn = replace_normalization(resnet, groups=32)
count = lambda m, cls: sum(isinstance(l, cls) for l in m.layers)
print(f"BatchNormalization: {count(resnet, keras.layers.BatchNormalization)} -> {count(resnet_gn, keras.layers.BatchNormalization)}; "
      f"GroupNormalization: {count(resnet, GroupNormalization)} -> {count(resnet_gn, GroupNormalization)}")
print("conv weights kept:", np.array_equal(resnet.get_layer("conv1_conv").get_weights()[0], resnet_gn.get_layer("conv1_conv").get_weights()[0]))
with strategy.scope():
    resnet_gn.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=False))
images = np.random.default_rng(0).uniform(size=(4, size, size, 3)).astype("float32")
print("loss after one step:", resnet_gn.train_on_batch(images, np.arange(4)))

# %% [markdown]
# ## 5. Mixed precision
#
# Under a mixed policy GN computes in float16 (GPU) or bfloat16 (TPU, CPU)
# while its statistics are taken in float32 and γ, β stay float32. Inputs near
# float16's largest value (65504) would overflow a float16 sum of squares;
# here they do not:

# %%
policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
layer = GroupNormalization(groups=8, dtype=policy)
x16 = (np.random.default_rng(0).normal(size=(2, 8, 8, 32)) * 2e4 + 3e4).astype(np.float32)
y16 = layer(tf.cast(x16, layer.compute_dtype))
# The paper's formula in float64 NumPy, on the rounded inputs:
xr = np.asarray(tf.cast(tf.cast(x16, layer.compute_dtype), tf.float64)).reshape(2, 64, 8, 4)
ref = ((xr - xr.mean(axis=(1, 3), keepdims=True)) / np.sqrt(xr.var(axis=(1, 3), keepdims=True) + 1e-5)).reshape(2, 8, 8, 32)
print(f"{policy}: output {y16.dtype}, gamma {layer.gamma.dtype}; finite: {bool(np.isfinite(np.asarray(y16, np.float32)).all())}; "
      f"max |error| vs float64: {np.abs(np.asarray(tf.cast(y16, tf.float64)) - ref).max():.3f}")

# %% [markdown]
# ## 6. Save and load
#
# The layer is registered for Keras serialization: `.keras` files load in a
# fresh process without `custom_objects`, and `model.export` writes a
# SavedModel for TF Serving.

# %%
import tempfile

path = os.path.join(tempfile.mkdtemp(), "gn_cnn.keras")
model.save(path)
loaded = keras.models.load_model(path)
print(loaded.layers[1].get_config())
print("same predictions:", np.allclose(model.predict(x_test[:16], verbose=0), loaded.predict(x_test[:16], verbose=0), atol=1e-5))

# %% [markdown]
# ## 7. Speed on this runtime
#
# `benchmarks/layer_speed.py` times our layer against
# `keras.layers.GroupNormalization`, the paper's TensorFlow snippet and a
# one-pass elementwise floor, interleaved in one process (medians; ratios are
# what to read). On a GPU runtime these are your GPU's numbers; on a TPU
# runtime TensorFlow's eager ops run on the host CPU, so the table measures
# the CPU. The project's own CPU run is in `docs/layer_speed.md`.

# %%
from IPython.display import Markdown, display

try:
    from benchmarks import layer_speed
except ImportError:  # keras_gn installed without its repository checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(keras_gn.__file__)))
    from benchmarks import layer_speed

shapes = layer_speed.benchmark_shapes(quick=True) if SMALL else layer_speed.benchmark_shapes(quick=False)[:4]
rows = layer_speed.run(shapes, groups=32, repeats=3 if SMALL else 9)
display(Markdown(layer_speed.markdown(rows, layer_speed.summarize(rows))))
