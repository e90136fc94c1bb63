"""The residual blocks and the stage that every ResNet here is built from:
the 2-D ResNet (`resnet.py`; bottleneck blocks, or basic blocks for
ResNet-18 and -34), its 3-D I3D inflation (`i3d.py`) and the C4 detector's
res5 head, which all call `stage`.

The builders differ only in their convolutions and normalization, which they
pass in as callables (as flax's and big_vision's ResNets do):

    conv(x, filters, kernel, strides, name) -> tensor
    norm(x, name, zero_init=False) -> tensor

Layer names are a contract: `stage{s}_block{b}_{conv1,norm1,relu1,conv2,
norm2,relu2,conv3,norm3,add,out}` (a basic block has no conv3 and norm3),
plus `_proj_conv`/`_proj_norm` on the first block of a stage that changes
the shape. `inflate`, `detection.convert` and the C4 head copy
weights between models by these names.
"""

import functools
import inspect

import keras

from keras_gn.norms import keras_module

__all__ = [
    "bottleneck",
    "basic",
    "stage",
    "apply_norm",
    "BuiltModel",
    "builder_arguments",
    "EXPANSION",
    "PADDINGS",
    "check_padding",
    "pad",
    "check_weight_standardization",
    "conv_class",
    "conv_initializer",
    "logits",
    "norm_name",
    "model_name",
]

# Output channels of a block over its `filters`, by block type.
EXPANSION = {"bottleneck": 4, "basic": 1}


def bottleneck(x, filters, *, strides, project, kernels, conv, norm, layers, name, dtype=None):
    """One bottleneck residual block (He et al. 2016, v1):
    conv1 (1x1) -> conv2 (3x3, carrying the stride) -> conv3 (1x1, 4 *
    filters), each followed by its normalization, ReLU after the first two;
    the last normalization starts at gamma = 0 so the block starts as the
    identity; the shortcut is a projection (conv + norm) when `project`.

    Args:
      x: the block's input.
      filters: channels of conv1 and conv2; the output has 4 * filters.
      strides: conv2's and the projection's stride (1, 2 or a tuple).
      project: give the shortcut a projection (the first block of a stage).
      kernels: the three convolutions' kernels, e.g. (1, 3, 1) in 2-D or
        ((3, 1, 1), (1, 3, 3), (1, 1, 1)) in I3D; the projection takes the
        third's.
      conv, norm: the builder's convolution and normalization (above).
      layers: the Keras that makes the ReLU and Add layers (`keras.layers` or
        `tf_keras.layers`).
      name: the block's prefix, e.g. "stage2_block1".
      dtype: the ReLU and Add layers' dtype policy, the builder's (None: the
        global policy); `conv` and `norm` apply their own.
    """
    shortcut = x
    if project:
        shortcut = norm(conv(x, filters * 4, kernels[2], strides, f"{name}_proj_conv"), f"{name}_proj_norm")
    y = conv(x, filters, kernels[0], 1, f"{name}_conv1")
    y = layers.ReLU(name=f"{name}_relu1", dtype=dtype)(norm(y, f"{name}_norm1"))
    y = conv(y, filters, kernels[1], strides, f"{name}_conv2")
    y = layers.ReLU(name=f"{name}_relu2", dtype=dtype)(norm(y, f"{name}_norm2"))
    y = conv(y, filters * 4, kernels[2], 1, f"{name}_conv3")
    y = norm(y, f"{name}_norm3", zero_init=True)
    y = layers.Add(name=f"{name}_add", dtype=dtype)([shortcut, y])
    return layers.ReLU(name=f"{name}_out", dtype=dtype)(y)


def basic(x, filters, *, strides, project, conv, norm, layers, name, dtype=None):
    """One basic residual block (He et al. 2016, ResNet-18 and -34): conv1
    (3x3, carrying the stride) -> conv2 (3x3), each followed by its
    normalization, ReLU after the first; the last normalization starts at
    gamma = 0; the shortcut is a projection (1x1 conv with the stride +
    norm) when `project`. Arguments as `bottleneck`'s; the output has
    `filters` channels."""
    shortcut = x
    if project:
        shortcut = norm(conv(x, filters, 1, strides, f"{name}_proj_conv"), f"{name}_proj_norm")
    y = conv(x, filters, 3, strides, f"{name}_conv1")
    y = layers.ReLU(name=f"{name}_relu1", dtype=dtype)(norm(y, f"{name}_norm1"))
    y = conv(y, filters, 3, 1, f"{name}_conv2")
    y = norm(y, f"{name}_norm2", zero_init=True)
    y = layers.Add(name=f"{name}_add", dtype=dtype)([shortcut, y])
    return layers.ReLU(name=f"{name}_out", dtype=dtype)(y)


def stage(
    x, index, blocks, filters, *, strides, conv, norm, layers, kernels=(1, 3, 1), dtype=None, block="bottleneck",
    project=True,
):  # fmt: skip
    """Residual stage `index` (1 for res2 ... 4 for res5): `blocks` blocks of
    type `block` ("bottleneck" or "basic"), the first with the stage's
    `strides` and, when `project`, a projection shortcut (a basic stage whose
    first block keeps the shape has none, as torchvision's). `kernels` (the
    bottleneck's) is one triple for every block or a function of the block's
    index (from 0) returning it (I3D inflates every other block). `dtype`: as
    `bottleneck`'s."""
    if block not in EXPANSION:
        raise ValueError(f"block must be one of {', '.join(EXPANSION)}; got {block!r}.")
    for i in range(blocks):
        common = dict(
            strides=strides if i == 0 else 1,
            project=project and i == 0,
            conv=conv,
            norm=norm,
            layers=layers,
            name=f"stage{index}_block{i + 1}",
            dtype=dtype,
        )
        if block == "basic":
            x = basic(x, filters, **common)
        else:
            x = bottleneck(x, filters, kernels=kernels(i) if callable(kernels) else kernels, **common)
    return x


def apply_norm(make_norm, axis, regularizer, layer_args=None):
    """The `norm(x, name, zero_init=False)` of a builder, from a maker of
    `keras_gn.normalization`: a fresh layer on `axis` with `regularizer` on
    gamma and beta and `layer_args` (e.g. the dtype) applied to x."""
    layer_args = layer_args or {}

    def norm(x, name, zero_init=False):
        return make_norm(axis=axis, zero_init=zero_init, regularizer=regularizer, name=name, **layer_args)(x)

    return norm


class BuiltModel(keras.Model):
    """A functional model that keeps the arguments of the builder that made
    it, as keras-hub's backbones do: `get_config` is those arguments, so a
    config or a saved `.keras` file rebuilds the model by building it again,
    and code that receives the model (a converter) reads them from it.

    A builder is written once, as one function whose signature holds every
    argument and default and whose body returns `(inputs, outputs, name)`;
    `@Subclass.builder` makes it the public builder (same name, signature
    and docstring) and the subclass's `graph`:

        class ResNet(BuiltModel): ...

        @ResNet.builder
        def resnet(depth=50, norm="gn", ..., **norm_args):
            ...
            return inputs, outputs, name

    Where the weights came from is not an argument: `pretrained` (a dict,
    e.g. {"source": "timm", "file": "resnet50_gn.safetensors"}, set by the
    loaders and kept in the config beside the arguments) says it."""

    graph = None
    # Arguments added since models were first saved, with the value a saved
    # config without them was built with: TensorFlow's padding then.
    SAVED_BEFORE = {"padding": "same"}

    def __init__(self, trainable=True, pretrained=None, **arguments):
        if arguments.get("dtype") is None:
            # The policy the layers get (the global one) is part of the model:
            # a model built under mixed precision and saved loads as it was.
            arguments["dtype"] = keras.config.dtype_policy().name
        inputs, outputs, name = type(self).graph(**arguments)
        super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=trainable)
        self._arguments = dict(arguments)
        self.pretrained = dict(pretrained) if pretrained else None

    @property
    def arguments(self):
        """The builder's arguments this model was made from (its architecture)."""
        return dict(self._arguments)

    def get_config(self):
        config = {"trainable": self.trainable, **self.arguments}
        if self.pretrained:
            config["pretrained"] = dict(self.pretrained)
        return config

    @classmethod
    def from_config(cls, config):
        config = {**cls.SAVED_BEFORE, **config}
        if "source" in config:  # saved when the weights' source was a builder argument
            source = config.pop("source")
            if source and not config.get("pretrained"):
                config["pretrained"] = {"source": source}
        return cls(**config)

    @classmethod
    def builder(cls, graph):
        """Decorator: `graph` (the builder written once, returning
        `(inputs, outputs, name)`) becomes this class's graph and the public
        builder, which returns an instance of this class when `keeps` the
        arguments, and a plain functional model of the arguments' framework
        otherwise."""
        cls.graph = staticmethod(graph)
        signature = inspect.signature(graph)

        @functools.wraps(graph)
        def build(*args, **kwargs):
            if "source" in kwargs and "source" not in signature.parameters:
                raise TypeError(
                    f"{graph.__name__}() takes no source: where weights come from is not architecture; "
                    "set model.pretrained = {'source': ...} (load_pretrained does) for preprocess."
                )
            arguments = builder_arguments(signature, args, kwargs)
            if cls.keeps(arguments):
                return cls(**arguments)
            inputs, outputs, name = graph(**arguments)
            return keras_module(arguments.get("framework", "keras")).Model(inputs, outputs, name=name)

        return build

    @staticmethod
    def keeps(arguments):
        """Whether a model of these arguments can keep them in its config: a
        norm given by name (a class or callable has no config), in Keras 3."""
        return isinstance(arguments.get("norm", ""), str) and arguments.get("framework", "keras") == "keras"


def builder_arguments(signature, args, kwargs):
    """Every argument of a call to a builder of `signature`, defaults filled
    in and its `**kwargs` (e.g. a norm's `groups=`) flattened, by name."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        else:
            arguments[name] = value
    return arguments


# Shared by every builder (resnet, i3d_resnet, the detection backbone).
PADDINGS = ("symmetric", "same")


def check_padding(padding):
    if padding not in PADDINGS:
        raise ValueError(
            f"padding must be 'symmetric' (PyTorch's and Caffe2's, for their weights) or 'same' "
            f"(TensorFlow's); got {padding!r}."
        )


def pad(x, K, rank, kernel, strides, padding, name, data_format="channels_last", layer_args=None):
    """(x, the padding for the layer that follows): with `padding="same"`, x
    and "same"; with "symmetric", a strided layer whose window is larger than
    1 gets x padded by (k - 1) // 2 on both sides of each axis (a
    `ZeroPadding{rank}D` named `{name}_pad`) and "valid". Stride-1 layers
    keep "same", which is symmetric for odd windows."""
    kernel = (kernel,) * rank if isinstance(kernel, int) else tuple(kernel)
    strides = (strides,) * rank if isinstance(strides, int) else tuple(strides)
    if padding == "same" or all(s == 1 for s in strides) or all(k == 1 for k in kernel):
        return x, "same"
    widths = tuple((k - 1) // 2 for k in kernel)
    layer = getattr(K.layers, f"ZeroPadding{rank}D")
    return layer(widths, data_format=data_format, name=f"{name}_pad", **(layer_args or {}))(x), "valid"


def check_weight_standardization(weight_standardization):
    if not (isinstance(weight_standardization, bool) or weight_standardization in ("variance", "std")):
        raise ValueError(
            f"weight_standardization must be False, True (or 'variance': sqrt(var + eps)) or 'std' "
            f"(the WS authors' std + eps); got {weight_standardization!r}."
        )


def conv_class(K, rank, weight_standardization):
    """Keras's `Conv{rank}D` of module `K` (`keras` or `tf_keras`), or its
    Weight Standardization twin (with `weight_standardization` "std", a
    factory of it with the WS authors' convention)."""
    if not weight_standardization:
        return getattr(K.layers, f"Conv{rank}D")
    if K is keras:
        from keras_gn import conv as module
    else:
        from keras_gn import legacy as module
    cls = getattr(module, f"WSConv{rank}D")
    if weight_standardization == "std":
        return functools.partial(cls, convention="std")
    return cls


def conv_initializer(K=keras):
    """He-normal over fan-out, truncated: every ResNet convolution's."""
    return K.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal")


def logits(K, num_classes, reg):
    """The top layer: N(0, 0.01) weights, float32 logits under mixed precision."""
    return K.layers.Dense(
        num_classes,
        kernel_initializer=K.initializers.RandomNormal(stddev=0.01),
        kernel_regularizer=reg,
        bias_regularizer=reg,
        dtype="float32",
        name="logits",
    )


def norm_name(norm):
    """The norm's name in a model's default name: "gn", or the class's."""
    return norm if isinstance(norm, str) else getattr(norm, "__name__", "custom")


def model_name(prefix, norm, weight_standardization=False):
    """A builder's default model name: "resnet50_gn", "_ws" added with
    Weight Standardization ("resnet50_gn_ws")."""
    return f"{prefix}_{norm_name(norm)}" + ("_ws" if weight_standardization else "")
