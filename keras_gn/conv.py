"""Weight Standardization (Qiao, Wang, Liu, Shen, Yuille 2019, arXiv 1903.10520):
convolutions whose kernel is standardized per output channel before it is
applied, the follow-up that closes most of GN's gap to BN.

    y = conv(x, w_hat) + bias,   w_hat = (w - mean(w)) / sqrt(var(w) + epsilon)

with the mean and the (biased) variance of each output channel's kernel taken
over its fan-in: every kernel axis but the last (kernel positions x input
channels of its group). The standardization is part of the forward pass, so
the gradient of `w` flows through it (a kernel *constraint* would not).

    from keras_gn import WSConv2D
    y = WSConv2D(64, 3, padding="same", use_bias=False)(x)

* `WSConv1D`, `WSConv2D`, `WSConv3D`: subclasses of Keras's convolutions,
  taking every argument the parent takes (padding, strides, dilation, groups,
  data_format, bias, initializers, regularizers, constraints) plus `epsilon`;
  only the kernel handed to the parent's convolution changes, so padding,
  dilation and groups behave exactly as Keras's own. `keras_gn.legacy` has the
  tf_keras twins (the Model Garden's).
* `fold_weight_standardization(model)`: the same model with plain convolutions
  holding the standardized kernels, for serving and export.
* `standardize_kernel(kernel, epsilon)`: the formula above, in `keras.ops`.

Epsilon. The references differ: the authors' code divides by the unbiased
standard deviation plus 1e-5; BiT by sqrt(var + 1e-10); timm's `StdConv2d` by
sqrt(var + 1e-6) (1e-8 for its BiT models). The default here is timm's 1e-6,
inside the square root: at the kernel scales of a trained ResNet (standard
deviations of 0.01-0.05) it changes w_hat by less than 0.5% (the authors' 1e-5
on the standard deviation is of the same order), and it bounds the gradient's
amplification 1/sqrt(var + eps) at 1e3 for a degenerate (constant) kernel,
where 1e-10 allows 1e5. `epsilon=1e-10` reproduces BiT's and `1e-8` timm's
BiT models exactly. The authors' formula differs from any epsilon only by the
factor sqrt(n / (n - 1)) of the unbiased estimate, the same for every channel
of a layer, which the GN after each of their convolutions removes.

Under mixed precision the kernel variable stays float32 (it is not autocast),
the standardization runs in float32, and the standardized kernel is cast to
the compute dtype for the convolution.
"""

import keras

from keras_gn.ops import is_real

__all__ = [
    "WSConv1D",
    "WSConv2D",
    "WSConv3D",
    "EPSILON",
    "standardize_kernel",
    "standardize_with",
    "fold_weight_standardization",
    "check_epsilon",
]

EPSILON = 1e-6  # timm's StdConv2d; see the module docstring for the choice


def standardize_with(kernel, epsilon, mean, rsqrt):
    """`(kernel - mean) * rsqrt(var + epsilon)` per output channel (the last
    axis), the mean and biased variance over every other axis, written with
    the given `mean(x, axis, keepdims)` and `rsqrt`: `keras.ops`'s for the
    Keras 3 layers, TensorFlow's for the tf_keras twins."""
    axes = tuple(range(len(kernel.shape) - 1))
    centered = kernel - mean(kernel, axis=axes, keepdims=True)
    variance = mean(centered * centered, axis=axes, keepdims=True)
    return centered * rsqrt(variance + epsilon)


def standardize_kernel(kernel, epsilon=EPSILON):
    """The standardized kernel w_hat of `kernel` ([*kernel_size, in/groups,
    out], Keras's layout), in `keras.ops` (any backend), in kernel's dtype."""
    return standardize_with(kernel, epsilon, keras.ops.mean, keras.ops.rsqrt)


def check_epsilon(epsilon):
    """Raises ValueError unless `epsilon` is a positive number."""
    if not is_real(epsilon) or not epsilon > 0:
        raise ValueError(
            f"epsilon must be a positive number (added to each output channel's kernel variance, "
            f"default {EPSILON}); got {epsilon!r}."
        )
    return float(epsilon)


class WeightStandardized:
    """Mixin for a Keras convolution class: `epsilon`, a float32 kernel under
    mixed precision, the standardized kernel in the convolution, and the
    config. The tf_keras twins set their Keras's `_standardize(kernel,
    epsilon)`, `_cast`, `_to_numpy` and `_autocast_flag` (the name of
    `add_weight`'s autocast argument)."""

    _standardize = staticmethod(standardize_kernel)
    _cast = staticmethod(keras.ops.cast)
    _to_numpy = staticmethod(keras.ops.convert_to_numpy)
    _autocast_flag = "autocast"

    def __init__(self, *args, epsilon=EPSILON, **kwargs):
        super().__init__(*args, **kwargs)
        self.epsilon = check_epsilon(epsilon)

    def add_weight(self, *args, **kwargs):
        # The kernel stays in the variable dtype (float32) when read under
        # mixed precision: it is standardized in float32, then cast.
        if kwargs.get("name") == "kernel":
            kwargs[self._autocast_flag] = False
        return super().add_weight(*args, **kwargs)

    def _standardized(self, kernel, dtype):
        return self._cast(self._standardize(self._cast(kernel, self.variable_dtype), self.epsilon), dtype)

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self._standardized(kernel, self.compute_dtype))

    def standardized_kernel(self):
        """w_hat as a NumPy array in the variable dtype (float32): the kernel
        the convolution applies, before its cast to the compute dtype."""
        return self._to_numpy(self._standardized(self.kernel, self.variable_dtype))

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _ws_class(parent):
    cls = type(
        f"WS{parent.__name__}",
        (WeightStandardized, parent),
        {
            "__doc__": f"""`keras.layers.{parent.__name__}` with Weight Standardization: the kernel is
    standardized per output channel over its fan-in before the convolution,
    `(w - mean) / sqrt(var + epsilon)` (biased variance, `epsilon` default
    {EPSILON}, timm's), the gradient flowing through it. Arguments: every
    argument of `keras.layers.{parent.__name__}`, plus `epsilon`. See
    `keras_gn.conv`.""",
            "__module__": __name__,
        },
    )
    return keras.saving.register_keras_serializable(package="keras_gn")(cls)


WSConv1D = _ws_class(keras.layers.Conv1D)
WSConv2D = _ws_class(keras.layers.Conv2D)
WSConv3D = _ws_class(keras.layers.Conv3D)

# The plain convolution -> its WS twin (`replace_normalization`), and back (folding).
WS_TWINS = {keras.layers.Conv1D: WSConv1D, keras.layers.Conv2D: WSConv2D, keras.layers.Conv3D: WSConv3D}


def plain_twin(layer):
    """The plain Keras (or tf_keras) convolution class a WS layer subclasses."""
    return next(base for base in type(layer).__mro__[1:] if not issubclass(base, WeightStandardized))


def fold_weight_standardization(model):
    """Returns a copy of `model` in which every WS convolution (of Keras 3 or
    tf_keras) is the plain convolution of its parent class holding the
    standardized kernel w_hat (and the same bias): the same outputs, to
    float32 rounding, without standardizing the kernels at every call (for
    serving, SavedModel and TFLite export). Other layers keep their weights;
    the original is left untouched. Nested models are handled too.

    The folded model is for inference: training it trains plain convolutions.
    """
    from keras_gn.replace import rebuild

    def swap(layer):
        if not isinstance(layer, WeightStandardized):
            return None
        config = layer.get_config()
        config.pop("epsilon")
        return plain_twin(layer).from_config(config)

    def weights(old, new):
        if isinstance(old, WeightStandardized):
            return [old.standardized_kernel()] + old.get_weights()[1:]
        return old.get_weights()

    return rebuild(model, swap, weights)
