"""ResNet I3D for video, as the GN paper's Kinetics experiment used it (Table 8).

The variant is the ResNet-50 I3D baseline of the non-local networks paper
(Wang et al. 2018), which the GN paper cites and whose code it extended:

- conv1: 5x7x7, stride (1, 2, 2); pool1: 1x3x3 max, stride (1, 2, 2);
- the four ResNet-50 stages; after res2, a 3x1x1 max pool with temporal
  stride 2 ("pool2"), so 32 input frames become 16 from res3 on;
- inflation: in the blocks marked 1 below, the first 1x1 convolution becomes
  3x1x1 (res2 1,1,1; res3 1,0,1,0; res4 1,0,1,0,1,0; res5 0,1,0: every other
  block, the "I3D 3x1x1" of that paper); every 3x3 stays spatial (1x3x3),
  with the stride on it, as in the 2-D builder;
- normalization over (T, H, W) and the channels of a group for GN; BN's
  statistics over (N, T, H, W); the last norm of each block starts at
  gamma = 0; global average pooling over T, H, W and a fully connected layer.

Why this one: it is the model behind the paper's Table 8 numbers (BN 73.3 /
GN 73.0 at 32 frames and 8 clips per GPU) and its layer names follow
`keras_gn.models.resnet` one to one, so an ImageNet checkpoint inflates into
it by name (`inflate`).
"""

import keras
import numpy as np

from keras_gn.models.blocks import (
    BuiltModel,
    apply_norm,
    check_padding,
    check_weight_standardization,
    conv_class,
    conv_initializer,
    logits,
    model_name,
    pad,
    stage,
)
from keras_gn.models.resnet import BASIC_DEPTHS, STAGE_SIZES
from keras_gn.models.transfer import copy_by_name
from keras_gn.norms import normalization

__all__ = ["i3d_resnet", "I3DResNet", "inflate", "TEMPORAL_KERNELS", "EdgePadding"]

# Per stage, 1 where the block's first convolution is inflated to 3x1x1.
TEMPORAL_KERNELS = {
    50: [[1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]],
    101: [[1, 1, 1], [1, 0, 1, 0], [1, 0] * 11 + [1], [0, 1, 0]],
}


@keras.saving.register_keras_serializable(package="keras_gn")
class EdgePadding(keras.layers.Layer):
    """Repeats the first and last frame `size` times along axis 1 (time)."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, x):
        first, last = x[:, :1], x[:, -1:]
        return keras.ops.concatenate([first] * self.size + [x] + [last] * self.size, axis=1)

    def compute_output_shape(self, shape):
        t = None if shape[1] is None else shape[1] + 2 * self.size
        return (shape[0], t) + tuple(shape[2:])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def _temporal_kernels(depth, stage_sizes):
    if depth in TEMPORAL_KERNELS:
        return TEMPORAL_KERNELS[depth]
    # Small test depths: inflate every other block, starting with the first.
    return [[1 - (b % 2) for b in range(n)] for n in stage_sizes]


@keras.saving.register_keras_serializable(package="keras_gn")
class I3DResNet(BuiltModel):
    """The functional model `i3d_resnet()` builds, keeping its arguments
    (`arguments`, `get_config`; see `BuiltModel`)."""


@I3DResNet.builder
def i3d_resnet(
    depth=50,
    norm="gn",
    include_top=True,
    num_classes=400,
    input_shape=(32, 224, 224, 3),
    width=64,
    weight_decay=0.0,
    temporal_padding="zeros",
    name=None,
    dtype=None,
    weight_standardization=False,
    padding="symmetric",
    **norm_args,
):
    """Builds a ResNet I3D (channels_last `[N, T, H, W, C]`) as a `keras.Model`.

    Args:
      depth: 50 or 101 (the paper's); 8, 11, 14, 26 for tests.
      norm, num_classes, width, weight_decay, dtype, weight_standardization,
        **norm_args: as `keras_gn.models.resnet` (`keras_gn.WSConv3D` in
        every convolution with `weight_standardization=True`).
      padding: "symmetric" (default, as PyTorch and Caffe2 pad: an
        inflated ImageNet model of either gives its features) or "same"
        (TensorFlow's), for every strided convolution and max pool.
      input_shape: `(frames, height, width, channels)`; frames may be None.
      temporal_padding: "zeros" (the non-local code's, default) or "edge"
        (repeat the border frames): with "edge", a clip of identical frames
        gives exactly the 2-D network's features, which is what `inflate`'s
        test checks.

    Returns:
      A `keras.Model` with logits of `num_classes`, or the res5 features.
    """
    bottleneck_depths = sorted(d for d in STAGE_SIZES if d not in BASIC_DEPTHS)
    if depth not in bottleneck_depths:
        raise ValueError(f"depth must be one of {bottleneck_depths} (I3D inflates bottleneck blocks); got {depth}.")
    if temporal_padding not in ("zeros", "edge"):
        raise ValueError(f"temporal_padding must be 'zeros' or 'edge'; got {temporal_padding!r}.")
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (frames, height, width, channels); got {input_shape}.")
    reg = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    layer_args = {"dtype": dtype} if dtype is not None else {}
    check_padding(padding)
    check_weight_standardization(weight_standardization)
    conv = _conv3d(temporal_padding, reg, layer_args, weight_standardization, padding)

    def max_pool(x, size, strides, name):
        # Zeros pad a max pool like -inf here: both follow a ReLU.
        x, pool_padding = pad(x, keras, 3, size, strides, padding, name, layer_args=layer_args)
        return keras.layers.MaxPooling3D(size, strides, padding=pool_padding, name=name, **layer_args)(x)

    norm_layer = apply_norm(normalization(norm, **norm_args), -1, reg, layer_args)

    inputs = keras.Input(input_shape, name="clips")
    x = conv(inputs, width, (5, 7, 7), (1, 2, 2), "stem_conv")
    x = keras.layers.ReLU(name="stem_relu", **layer_args)(norm_layer(x, "stem_norm"))
    x = max_pool(x, (1, 3, 3), (1, 2, 2), "stem_pool")
    stage_sizes = STAGE_SIZES[depth]
    for index, (blocks, inflated) in enumerate(zip(stage_sizes, _temporal_kernels(depth, stage_sizes)), start=1):
        x = stage(
            x,
            index,
            blocks,
            width * 2 ** (index - 1),
            strides=(1, 1, 1) if index == 1 else (1, 2, 2),
            conv=conv,
            norm=norm_layer,
            layers=keras.layers,
            kernels=lambda block, inflated=inflated: ((3 if inflated[block] else 1, 1, 1), (1, 3, 3), (1, 1, 1)),
            dtype=dtype,
        )
        if index == 1:
            x = max_pool(x, (3, 1, 1), (2, 1, 1), "pool2")
    outputs = x
    if include_top:
        x = keras.layers.GlobalAveragePooling3D(name="pool", **layer_args)(x)
        outputs = logits(keras, num_classes, reg)(x)
    return inputs, outputs, name or model_name(f"i3d_resnet{depth}", norm, weight_standardization)


def _conv3d(temporal_padding, reg, layer_args, weight_standardization=False, padding="symmetric"):
    cls = conv_class(keras, 3, weight_standardization)

    def conv(x, filters, kernel, strides, name):
        edge = temporal_padding == "edge" and kernel[0] > 1
        if edge:
            x = EdgePadding((kernel[0] - 1) // 2, name=f"{name}_edge_pad", **layer_args)(x)
        x, conv_padding = pad(x, keras, 3, kernel, strides, padding, name, layer_args=layer_args)
        x = cls(
            filters,
            kernel,
            strides=strides,
            padding=conv_padding,
            use_bias=False,
            kernel_initializer=conv_initializer(),
            kernel_regularizer=reg,
            name=name,
            **layer_args,
        )(x)
        if edge:
            x = keras.layers.Cropping3D(
                (((kernel[0] - 1) // 2,) * 2, (0, 0), (0, 0)), name=f"{name}_crop", **layer_args
            )(x)
        return x

    return conv


def inflate(source, i3d, skip_top=False):
    """Copies a 2-D ResNet's weights into an I3D model of the same depth,
    width and normalization, layer by layer by name: each k x k kernel is
    repeated over the t frames of its 3-D kernel and divided by t, so a clip
    of identical frames gives the 2-D activations (the I3D paper's
    "bootstrapping"); normalization and the top layer copy as they are.

    With Weight Standardization the identity of the bootstrapping is lost:
    a standardized kernel has unit variance whatever its size, so each
    inflated convolution gives t times the 2-D activations on such a clip;
    the normalization after it removes that factor (GN up to its epsilon).

    Args:
      source: a 2-D `keras.Model` from `keras_gn.models.resnet`, or the path of
        one saved with `model.save` (the ImageNet binary's `model.keras`).
      i3d: the model from `i3d_resnet` to fill in place.
      skip_top: leave the top `logits` layer as initialised (different
        classes, e.g. ImageNet's 1000 against Kinetics' 400).

    Returns:
      The names of the layers copied.
    """

    def repeat_over_time(layer, weights):
        if isinstance(layer, keras.layers.Conv3D):
            t = layer.kernel.shape[0]
            weights[0] = np.repeat(weights[0][None], t, axis=0) / t
        return weights

    return copy_by_name(source, i3d, transform=repeat_over_time, skip=("logits",) if skip_top else ())
