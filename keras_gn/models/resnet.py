"""ResNet v1 (He et al. 2016) as the GN paper trained it, with the
normalization chosen by `norm`: bottleneck blocks, or basic blocks at depths
18 and 34 (torchvision's ResNet-18 and -34).

    model = keras_gn.models.resnet50(norm="gn")                  # ImageNet, 224 x 224
    model = keras_gn.models.resnet(depth=14, width=16, stem="small",
                                   input_shape=(28, 28, 1), num_classes=10)

- The stride of a downsampling block is on its 3x3 convolution (as in the
  paper's Caffe2 and PyTorch code), not on the first 1x1.
- Padding is symmetric, as PyTorch and Caffe2 pad (3 for the 7x7/2 stem, 1
  for each 3x3 and the 3x3/2 max pool), so that published weights give their
  outputs; `padding="same"` gives TensorFlow's (which pads a stride-2 layer
  (0, 1) or (2, 3) on even sizes).
- Convolutions have no bias and He-normal (fan-out) initialisation.
- The last normalization of every residual block starts with gamma = 0, so
  each block starts as the identity (the paper's recipe).
- `weight_standardization=True` standardizes every convolution's kernel
  (stem and projections included; `keras_gn.WSConv2D`), as the Weight
  Standardization authors' GN+WS ResNets do (BiT's pre-activation
  ResNetV2: `keras_gn.models.bit_resnet`).
- `weight_decay` is L2 on every weight, gamma and beta included (the paper's
  ImageNet recipe); it is applied through Keras regularizers, so it goes
  through the momentum exactly as in the paper's SGD.
"""

import keras

from keras_gn.models.blocks import (
    EXPANSION,
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
from keras_gn.norms import keras_module, normalization

__all__ = [
    "resnet",
    "resnet50",
    "resnet101",
    "ResNet",
    "STAGE_SIZES",
    "BASIC_DEPTHS",
    "block_type",
    "STEMS",
    "normalized_channels",
    "check_groups",
]

# stem -> (kernel, stride) of its convolution; "imagenet" adds a 3x3/2 max pool.
STEMS = {"imagenet": (7, 2), "small": (3, 1), "strided": (3, 2)}

# depth -> blocks per stage. depth = 3 * blocks + 2 with bottleneck blocks,
# 2 * blocks + 2 with the basic blocks of BASIC_DEPTHS.
STAGE_SIZES = {
    8: [1, 1],
    11: [1, 1, 1],
    14: [1, 1, 1, 1],
    18: [2, 2, 2, 2],
    26: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}

BASIC_DEPTHS = (18, 34)


def block_type(depth):
    """ "basic" for ResNet-18 and -34, "bottleneck" for the other depths."""
    return "basic" if depth in BASIC_DEPTHS else "bottleneck"


def normalized_channels(depth, width=64):
    """The channel counts of every normalized layer of `resnet(depth,
    width=width)`, ascending: the stem's, and each stage's bottleneck and
    output widths. GN's groups must divide each of them."""
    if depth not in STAGE_SIZES:
        raise ValueError(f"depth must be one of {sorted(STAGE_SIZES)}; got {depth}.")
    stages = len(STAGE_SIZES[depth])
    return sorted({width} | {m * width * 2**s for s in range(stages) for m in {1, EXPANSION[block_type(depth)]}})


def check_groups(groups, depth, width=64, name="groups"):
    """A ValueError naming `name` unless each of `groups` (numbers of groups,
    or channels per group) divides every normalized layer's channels of
    `resnet(depth, width=width)`; the message lists the values that do."""
    channels = normalized_channels(depth, width)
    bad = [g for g in groups if any(c % g for c in channels)]
    if bad:
        divisors = [d for d in range(1, channels[0] + 1) if all(c % d == 0 for c in channels)]
        raise ValueError(
            f"{name}: {bad} do not divide every layer's channels {channels} "
            f"(ResNet-{depth}, width {width}); use one of {divisors}."
        )


@keras.saving.register_keras_serializable(package="keras_gn")
class ResNet(BuiltModel):
    """The functional model `resnet()` builds, keeping its arguments
    (`arguments`, `get_config`; see `BuiltModel`)."""


@ResNet.builder
def resnet(
    depth=50,
    norm="gn",
    include_top=True,
    num_classes=1000,
    input_shape=None,
    data_format="channels_last",
    width=64,
    stem="imagenet",
    weight_decay=0.0,
    name=None,
    framework="keras",
    endpoints=False,
    decay_norms=True,
    stages=(1, 2, 3, 4),
    dtype=None,
    weight_standardization=False,
    padding="symmetric",
    **norm_args,
):
    """Builds a ResNet v1 as a functional `keras.Model`: bottleneck blocks, or
    basic blocks (two 3x3 convolutions) at depths 18 and 34.

    Args:
      depth: one of `STAGE_SIZES` (bottleneck: 8, 11, 14, 26, 50, 101, 152;
        basic: 18, 34).
      norm: a name for `keras_gn.normalization` ("gn", "bn", "syncbn",
        "frozen_bn", "brn", "ln", "in", "none"), a layer class (Keras 3 or
        tf_keras) or a callable.
      include_top: end in global average pooling and a `num_classes` Dense
        layer giving logits; otherwise the model outputs the last feature map.
      num_classes: classes of the top layer.
      input_shape: image shape without the batch; default (224, 224, 3)
        channels_last or (3, 224, 224) channels_first.
      data_format: "channels_last" (default) or "channels_first" (faster on
        GPU with cuDNN).
      width: channels of the stem and of the first stage's 3x3 convolutions
        (64 in ResNet-50; each stage doubles it; block outputs are 4x).
      stem: one of `STEMS`: "imagenet" (7x7 stride-2 convolution and 3x3
        stride-2 max pool: stride 4), "small" (one 3x3 stride-1 convolution,
        for 28-32 pixel images: stride 1) or "strided" (one 3x3 stride-2
        convolution, no pool: stride 2; 28-pixel images give the four
        stages 14, 7, 4 and 2 pixel maps).
      weight_decay: the SGD weight decay (1e-4 in the paper), as L2 on every
        kernel, bias, gamma and beta; 0 for none.
      name: the model's name (default "resnet{depth}_{norm}").
      framework: "keras" (Keras 3, default) or "tf_keras" (Keras 2, for the
        Model Garden). The layers and their names are the same in both, so
        weights copy across by name (`keras_gn.detection.convert`).
      endpoints: output a dict of every stage's last feature map, keyed by
        level "2".."5" (stride 2**level), as Model Garden backbones do,
        instead of the top. (Detection.)
      decay_norms: apply `weight_decay` to gamma and beta too (the paper's
        ImageNet recipe); False for detection, where the paper finds decay
        on them harmful.
      stages: the residual stages to build, consecutive, from 1 (res2) to 4
        (res5). The stem comes with stage 1; a model that starts later
        takes that stage's input feature map as `input_shape` (e.g.
        `stages=(4,)`, `input_shape=(14, 14, 1024)`: res5 on RoI features,
        the C4 detector's box head). Layer names do not depend on it, so
        weights copy by name from the whole network.
      dtype: the layers' dtype policy, e.g. "mixed_float16"; None for the
        global policy. The logits are float32 in any case.
      weight_standardization: every convolution (stem, blocks, projections)
        a Weight Standardization one (`keras_gn.WSConv2D`, or
        `keras_gn.legacy.WSConv2D` for tf_keras), default epsilon; the top
        Dense layer stays plain. Default False; True or "variance" for the
        default formula, "std" for the WS authors' (`keras_gn.conv`).
      padding: "symmetric" (default: PyTorch's and Caffe2's, what published
        weights were trained with) or "same" (TensorFlow's; it differs at
        stride 2 on even sizes).
      **norm_args: for `keras_gn.normalization`, e.g. `groups=16` (used by
        GN only) or `momentum=0.99` (BN only).

    Returns:
      A `keras.Model`: a `ResNet`, which keeps these arguments in its config,
      when `norm` is a name and `framework` "keras"; a plain functional model
      otherwise (a class or callable norm has no config to keep).
    """
    stages = _check_arguments(depth, data_format, stem, endpoints, stages, input_shape)
    check_padding(padding)
    check_weight_standardization(weight_standardization)
    K = keras_module(framework)
    axis = -1 if data_format == "channels_last" else 1
    if input_shape is None:
        input_shape = (224, 224, 3) if axis == -1 else (3, 224, 224)
    # The paper's decay wd adds wd * w to the gradient, i.e. L2 of wd / 2.
    reg = K.regularizers.L2(weight_decay / 2) if weight_decay else None
    layer_args = {"dtype": dtype} if dtype is not None else {}
    conv = _conv2d(K, data_format, reg, layer_args, weight_standardization, padding)
    norm_layer = apply_norm(
        normalization(norm, framework=framework, **norm_args), axis, reg if decay_norms else None, layer_args
    )

    inputs = K.Input(input_shape, name="images" if stages[0] == 1 else f"stage{stages[0]}_input")
    x = inputs  # a model that starts after the stem takes the previous stage's output
    if stages[0] == 1:
        x = _stem(inputs, stem, width, conv, norm_layer, K, data_format, layer_args, padding)
    levels = {}
    for index in [s for s in stages if s <= len(STAGE_SIZES[depth])]:  # depths 8 and 11 have 2 and 3 stages
        x = stage(
            x,
            index,
            STAGE_SIZES[depth][index - 1],
            width * 2 ** (index - 1),
            strides=1 if index == 1 else 2,
            conv=conv,
            norm=norm_layer,
            block=block_type(depth),
            # A basic stage 1 keeps the stem's shape: no projection (torchvision's).
            project=index != 1 or block_type(depth) == "bottleneck",
            layers=K.layers,
            dtype=dtype,
        )
        levels[str(index + 1)] = x
    outputs = x
    if endpoints:
        outputs = levels
    elif include_top:
        x = K.layers.GlobalAveragePooling2D(data_format=data_format, name="pool", **layer_args)(x)
        outputs = logits(K, num_classes, reg)(x)
    return inputs, outputs, name or model_name(f"resnet{depth}", norm, weight_standardization)


def _check_arguments(depth, data_format, stem, endpoints, stages, input_shape):
    if depth not in STAGE_SIZES:
        raise ValueError(f"depth must be one of {sorted(STAGE_SIZES)}; got {depth}.")
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first'; got {data_format!r}.")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {', '.join(map(repr, STEMS))}; got {stem!r}.")
    if endpoints and stem != "imagenet":
        raise ValueError("endpoints (levels 2..5, stride 2**level) need stem='imagenet'.")
    stages = tuple(stages)
    if not stages or stages != tuple(range(stages[0], stages[0] + len(stages))) or not set(stages) <= {1, 2, 3, 4}:
        raise ValueError(f"stages must be consecutive stages among 1..4, e.g. (1, 2, 3); got {stages}.")
    if stages[0] > 1 and input_shape is None:
        raise ValueError(f"stages={stages} starts after the stem: give the input feature map's input_shape.")
    return stages


def _conv2d(K, data_format, reg, layer_args, weight_standardization=False, padding="symmetric"):
    cls = conv_class(K, 2, weight_standardization)

    def conv(x, filters, kernel, strides, name):
        x, conv_padding = pad(x, K, 2, kernel, strides, padding, name, data_format, layer_args)
        return cls(
            filters,
            kernel,
            strides=strides,
            padding=conv_padding,
            use_bias=False,
            data_format=data_format,
            kernel_initializer=conv_initializer(K),
            kernel_regularizer=reg,
            name=name,
            **layer_args,
        )(x)

    return conv


def _stem(x, stem, width, conv, norm_layer, K, data_format, layer_args, padding="symmetric"):
    """ "imagenet": 7x7/2 conv and 3x3/2 max pool; "small": one 3x3/1 conv;
    "strided": one 3x3/2 conv."""
    kernel, strides = STEMS[stem]
    x = conv(x, width, kernel, strides, "stem_conv")
    x = K.layers.ReLU(name="stem_relu", **layer_args)(norm_layer(x, "stem_norm"))
    if stem == "imagenet":
        # Zeros pad a max pool like -inf here: it follows a ReLU.
        x, pool_padding = pad(x, K, 2, 3, 2, padding, "stem_pool", data_format, layer_args)
        x = K.layers.MaxPooling2D(3, 2, padding=pool_padding, data_format=data_format, name="stem_pool", **layer_args)(
            x
        )
    return x


def resnet50(**kwargs):
    """ResNet-50 (stages of 3, 4, 6, 3 blocks); arguments as `resnet`."""
    return resnet(depth=50, **kwargs)


def resnet101(**kwargs):
    """ResNet-101 (stages of 3, 4, 23, 3 blocks); arguments as `resnet`."""
    return resnet(depth=101, **kwargs)
