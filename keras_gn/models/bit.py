"""Big Transfer (BiT; Kolesnikov et al. 2020): the GN + Weight
Standardization ResNetV2, and its published `.npz` weights.

    model = keras_gn.models.bit_resnet(depth=50, width_factor=1)   # random weights
    model = keras_gn.models.load_pretrained("BiT-M-R50x1.npz")     # the BiT authors' weights
    logits = model(keras_gn.models.preprocess(uint8_rgb_images, model))

The architecture, as the BiT authors' code and timm's `resnetv2_*_bit`
build it:

- the root: a 7x7 stride-2 standardized convolution (padding 3), then zero
  padding of 1 and a 3x3 stride-2 max pool without padding (no norm: the
  units normalize their inputs);
- pre-activation bottleneck units: GN + ReLU on the unit's input (a), a
  1x1 convolution, GN + ReLU (b), a 3x3 convolution carrying the stride
  (padding 1), GN + ReLU (c), a 1x1 convolution to 4x its width; the
  shortcut is the input itself, or, in each stage's first unit, a 1x1
  strided convolution of the pre-activated input (no norm);
- a final GN + ReLU, global average pooling (the pre-logits features) and
  the head, a 1x1 convolution with a bias on them (a Dense layer here);
- GN with 32 groups and epsilon 1e-5 everywhere; every convolution
  standardized, `(w - mean) / sqrt(var + epsilon)` with the biased variance
  (`WSConv2D`'s default convention) and epsilon 1e-8 as timm has it (the
  BiT authors' code: 1e-10; the two agree to float32's precision for
  kernels whose variance is not near zero);
- widths 64, 256, 512, 1024, 2048 (root, stage outputs) times the width
  factor (1 to 4), depths 50, 101, 152.

The published files (`BiT-S-R50x1.npz`, `BiT-M-R101x3.npz`, ... from the
authors' bucket; Apache-2.0, github.com/google-research/big_transfer) are
NumPy archives named `resnet/root_block/standardized_conv2d/kernel`,
`resnet/block{s}/unit{u:02d}/{a,b,c}/group_norm/{gamma,beta}`,
`.../{a,b,c}/standardized_conv2d/kernel`,
`.../a/proj/standardized_conv2d/kernel`, `resnet/group_norm/{gamma,beta}`
and `resnet/head/conv2d/{kernel,bias}`, kernels in TensorFlow's
[kh, kw, in, out]. They are read with `allow_pickle=False`: nothing in them
runs. Input: RGB scaled to [-1, 1] (`preprocess(images, "bit")`).
"""

import os
import zipfile

import keras
import numpy as np

from keras_gn.conv import WSConv2D
from keras_gn.layers import GroupNormalization
from keras_gn.models.blocks import BuiltModel, pad

__all__ = ["bit_resnet", "BiTResNet", "BIT_STAGE_SIZES", "BIT_EPSILON", "load_bit"]

BIT_STAGE_SIZES = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
BIT_EPSILON = 1e-8  # WS's epsilon (timm's; the BiT authors' code has 1e-10)
_PREFIX = "resnet/"


@keras.saving.register_keras_serializable(package="keras_gn")
class BiTResNet(BuiltModel):
    """The functional model `bit_resnet()` builds, keeping its arguments
    (`arguments`, `get_config`; see `BuiltModel`)."""

    SAVED_BEFORE = {}


@BiTResNet.builder
def bit_resnet(
    depth=50, width_factor=1, include_top=True, num_classes=1000, input_shape=(None, None, 3), name=None, dtype=None
):
    """A BiT ResNetV2 (the module docstring) as a functional `keras.Model`
    (`BiTResNet`, which keeps these arguments in its config).

    Args:
      depth: 50, 101 or 152.
      width_factor: 1 to 4 (BiT's R50x1 ... R152x4); every width times it.
      include_top: end in the head's logits; False ends in the pre-logits
        features (global average pooling after the final GN + ReLU).
      num_classes: the head's classes (1000 for ImageNet-1k, 21843 for
        BiT-M's ImageNet-21k weights).
      input_shape: channels-last image shape without the batch; default any
        size.
      name: the model's name (default "bit_r{depth}x{width_factor}").
      dtype: the layers' dtype policy (None: the global one).
    """
    if depth not in BIT_STAGE_SIZES:
        raise ValueError(f"depth must be one of {sorted(BIT_STAGE_SIZES)}; got {depth}.")
    if isinstance(width_factor, bool) or not isinstance(width_factor, int) or width_factor < 1:
        raise ValueError(f"width_factor must be a positive integer (BiT's are 1 to 4); got {width_factor!r}.")
    args = {"dtype": dtype} if dtype is not None else {}

    def conv(x, filters, kernel, strides, layer_name):
        # PyTorch's symmetric padding, kernel // 2 on each side (the builders' "symmetric").
        x, padding = pad(x, keras, 2, kernel, strides, "symmetric", layer_name, layer_args=args)
        return WSConv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, epsilon=BIT_EPSILON,
                        name=layer_name, **args)(x)  # fmt: skip

    def preact(x, layer_name):
        x = GroupNormalization(groups=32, epsilon=1e-5, name=f"{layer_name}_norm", **args)(x)
        return keras.layers.ReLU(name=f"{layer_name}_relu", **args)(x)

    inputs = keras.Input(input_shape, name="images")
    x = conv(inputs, 64 * width_factor, 7, 2, "root_conv")
    x = keras.layers.ZeroPadding2D(1, name="root_pool_pad", **args)(x)
    x = keras.layers.MaxPooling2D(3, 2, name="root_pool", **args)(x)
    for stage, units in enumerate(BIT_STAGE_SIZES[depth], start=1):
        out = 256 * width_factor * 2 ** (stage - 1)
        for unit in range(1, units + 1):
            prefix = f"block{stage}_unit{unit:02d}"
            strides = 2 if stage > 1 and unit == 1 else 1
            y = preact(x, f"{prefix}_a")
            shortcut = conv(y, out, 1, strides, f"{prefix}_a_proj") if unit == 1 else x
            y = conv(y, out // 4, 1, 1, f"{prefix}_a_conv")
            y = conv(preact(y, f"{prefix}_b"), out // 4, 3, strides, f"{prefix}_b_conv")
            y = conv(preact(y, f"{prefix}_c"), out, 1, 1, f"{prefix}_c_conv")
            x = keras.layers.Add(name=f"{prefix}_add", **args)([shortcut, y])
    x = keras.layers.GlobalAveragePooling2D(name="pre_logits", **args)(preact(x, "final"))
    if include_top:
        x = keras.layers.Dense(num_classes, name="head", **args)(x)
    return inputs, x, name or f"bit_r{depth}x{width_factor}"


def _file_names(layer_name):
    """The published file's names for our layer's weights, in `get_weights`
    order (kernel; gamma, beta; kernel, bias)."""
    if layer_name == "root_conv":
        return [f"{_PREFIX}root_block/standardized_conv2d/kernel"]
    if layer_name == "final_norm":
        return [f"{_PREFIX}group_norm/gamma", f"{_PREFIX}group_norm/beta"]
    if layer_name == "head":
        return [f"{_PREFIX}head/conv2d/kernel", f"{_PREFIX}head/conv2d/bias"]
    block, unit, part, kind = layer_name.split("_")  # block1_unit01_a_conv
    base = f"{_PREFIX}{block}/{unit}/{part}/"
    if kind == "norm":
        return [base + "group_norm/gamma", base + "group_norm/beta"]
    return [base + ("proj/" if kind == "proj" else "") + "standardized_conv2d/kernel"]


def load_bit(path, include_top=True, input_shape=(None, None, 3), dtype=None):
    """A `BiTResNet` holding a published BiT `.npz` (see the module): depth,
    width factor and classes read from the file. Raises
    `keras_gn.models.pretrained.WeightFileError` naming the first missing or
    unused arrays when the file does not fit."""
    from keras_gn.models.pretrained import WeightFileError

    if not os.path.isfile(path):
        raise WeightFileError(f"{path}: no such file.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            weights = {k: np.asarray(archive[k], np.float32) for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise WeightFileError(
            f"{path}: not a NumPy .npz archive of arrays ({type(error).__name__}: {error})."
        ) from None
    root = weights.get(f"{_PREFIX}root_block/standardized_conv2d/kernel")
    if root is None:
        raise WeightFileError(f"{path}: no {_PREFIX}root_block/standardized_conv2d/kernel; is it a BiT ResNetV2?")
    units = [sum(1 for k in weights if k.startswith(f"{_PREFIX}block{s}/") and k.endswith("/a/group_norm/gamma"))
             for s in range(1, 5)]  # fmt: skip
    depth = next((d for d, sizes in BIT_STAGE_SIZES.items() if sizes == units), None)
    if depth is None:
        raise WeightFileError(f"{path}: units per block {units} are no BiT ResNet's ({sorted(BIT_STAGE_SIZES)}).")
    head = weights.get(f"{_PREFIX}head/conv2d/kernel")
    if include_top and head is None:
        raise WeightFileError(f"{path}: no classifier ({_PREFIX}head/conv2d/kernel); load it with include_top=False.")
    model = bit_resnet(depth, root.shape[-1] // 64, include_top, head.shape[-1] if head is not None else 1000,
                       input_shape, dtype=dtype)  # fmt: skip
    used, missing = set(), []
    for layer in model.layers:
        if not layer.weights:
            continue
        names = _file_names(layer.name)
        missing += [n for n in names if n not in weights]
        if missing:
            break
        used.update(names)
        arrays = [weights[n] for n in names]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        arrays = [a.reshape(e) if a.size == int(np.prod(e)) else a for a, e in zip(arrays, expected)]
        if [a.shape for a in arrays] != expected:
            raise WeightFileError(
                f"{path}: layer {layer.name} expects {expected}, the file has {[a.shape for a in arrays]}."
            )
        layer.set_weights(arrays)
    if missing:
        raise WeightFileError(f"{path}: missing {missing[0]} (read as BiT R{depth}x{root.shape[-1] // 64}).")
    unused = sorted(set(weights) - used - ({f"{_PREFIX}head/conv2d/kernel", f"{_PREFIX}head/conv2d/bias"}
                                           if not include_top else set()))  # fmt: skip
    if unused:
        raise WeightFileError(f"{path}: {len(unused)} arrays not used by BiT R{depth}, first {unused[:3]}.")
    model.pretrained = {"source": "bit", "file": os.path.basename(str(path))}
    return model
