"""Weight Standardization (Qiao, Wang, Liu, Shen, Yuille 2019, arXiv 1903.10520):
convolutions whose kernel is standardized per output channel before it is
applied, the follow-up that closes most of GN's gap to BN.

    y = conv(x, w_hat) + bias,   w_hat = (w - mean(w)) / sqrt(var(w) + epsilon)

with the mean and the (biased) variance of each output channel's kernel taken
over its fan-in: every kernel axis but the last (kernel positions x input
channels of its group). `convention="std"` gives the WS authors' (and
mmcv's `ConvWS`) formula instead, w_hat = (w - mean(w)) / (std(w) + epsilon)
with the unbiased standard deviation and epsilon 1e-5: the one their
published GN+WS weights were trained with. The standardization is part of the forward pass, so
the gradient of `w` flows through it (a kernel *constraint* would not).

    from keras_gn import WSConv2D
    y = WSConv2D(64, 3, padding="same", use_bias=False)(x)

* `WSConv1D`, `WSConv2D`, `WSConv3D`: subclasses of Keras's convolutions,
  taking every argument the parent takes (padding, strides, dilation, groups,
  data_format, bias, initializers, regularizers, constraints) plus `epsilon`;
  only the kernel handed to the parent's convolution changes, so padding,
  dilation and groups behave exactly as Keras's own. `keras_gn.legacy` has the
  tf_keras twins (the Model Garden's).
* `keras_gn.fold_weight_standardization(model)` (in `keras_gn.replace`, with
  the other model rewrites): the same model with plain convolutions holding
  the standardized kernels, for serving and export.

Epsilon. The references differ: the authors' code divides by the unbiased
standard deviation plus 1e-5; BiT by sqrt(var + 1e-10); timm's `StdConv2d` by
sqrt(var + 1e-6) (1e-8 for its BiT models). The default here is timm's 1e-6,
inside the square root: at the kernel scales of a trained ResNet (standard
deviations of 0.01-0.05) it changes w_hat by less than 0.5% (the authors' 1e-5
on the standard deviation is of the same order), and it bounds the gradient's
amplification 1/sqrt(var + eps) at 1e3 for a degenerate (constant) kernel,
where 1e-10 allows 1e5. `epsilon=1e-10` reproduces BiT's and `1e-8` timm's
BiT models exactly. The authors' formula differs from the default by the
factor sqrt(n / (n - 1)) of the unbiased estimate, the same for every channel
of a layer (which the GN after each of their convolutions removes), and by
its epsilon on the standard deviation, which is not the same for every
channel: `convention="std"` reproduces it exactly.

Under mixed precision the kernel variable stays float32 (it is not autocast),
the standardization runs in float32, and the standardized kernel is cast to
the compute dtype for the convolution.
"""

import math
import types

import keras

from keras_gn import ops as gn_ops

__all__ = [
    "WSConv1D",
    "WSConv2D",
    "WSConv3D",
    "WS_TWINS",
    "EPSILON",
    "EPSILONS",
    "WeightStandardized",
    "standardize_with",
    "check_epsilon",
    "plain_twin",
]

EPSILON = 1e-6  # timm's StdConv2d; see the module docstring for the choice
# convention -> default epsilon: "variance" sqrt(var + eps) (timm, BiT), "std" std + eps (the WS authors, mmcv)
EPSILONS = {"variance": EPSILON, "std": 1e-5}
KERAS_OPS = types.SimpleNamespace(mean=keras.ops.mean, rsqrt=keras.ops.rsqrt, sqrt=keras.ops.sqrt)


def standardize_with(kernel, epsilon, ops, convention="variance"):
    """w_hat of `kernel` per output channel (the last axis), the mean and the
    variance over every other axis, written with `ops.mean(x, axis,
    keepdims)`, `ops.rsqrt` and `ops.sqrt` (`keras.ops` for the Keras 3
    layers, TensorFlow's for the tf_keras twins): `(kernel - mean) *
    rsqrt(biased var + epsilon)`, or with `convention="std"` `(kernel -
    mean) / (unbiased std + epsilon)`."""
    axes = tuple(range(len(kernel.shape) - 1))
    centered = kernel - ops.mean(kernel, axis=axes, keepdims=True)
    variance = ops.mean(centered * centered, axis=axes, keepdims=True)
    if convention == "variance":
        return centered * ops.rsqrt(variance + epsilon)
    fan_in = math.prod(kernel.shape[:-1])
    return centered / (ops.sqrt(variance * (fan_in / max(fan_in - 1, 1))) + epsilon)


def check_epsilon(epsilon):
    """`epsilon` as a float, or ValueError unless it is a positive number."""
    return gn_ops.check_epsilon(epsilon, f"added to each output channel's kernel variance, default {EPSILON}")


def check_convention(convention):
    if convention not in EPSILONS:
        raise ValueError(
            f"convention must be 'variance' ((w - mean) / sqrt(var + epsilon), timm and BiT) or 'std' "
            f"((w - mean) / (unbiased std + epsilon), the WS authors'); got {convention!r}."
        )
    return convention


class WeightStandardized:
    """Mixin for a Keras convolution class: `epsilon` and `convention`, a
    float32 kernel under mixed precision, the standardized kernel in the
    convolution, and the config. The tf_keras twins set their Keras's
    `_ops` (mean, rsqrt, sqrt), `_cast`, `_to_numpy` and `_autocast_flag`
    (the name of `add_weight`'s autocast argument)."""

    _ops = KERAS_OPS
    _cast = staticmethod(keras.ops.cast)
    _to_numpy = staticmethod(keras.ops.convert_to_numpy)
    _autocast_flag = "autocast"

    def __init__(self, *args, epsilon=None, convention="variance", **kwargs):
        super().__init__(*args, **kwargs)
        self.convention = check_convention(convention)
        self.epsilon = check_epsilon(EPSILONS[convention] if epsilon is None else epsilon)

    def add_weight(self, *args, **kwargs):
        # The kernel stays in the variable dtype (float32) when read under
        # mixed precision: it is standardized in float32, then cast.
        if kwargs.get("name") == "kernel":
            kwargs[self._autocast_flag] = False
        return super().add_weight(*args, **kwargs)

    def _standardized(self, kernel, dtype):
        kernel = self._cast(kernel, self.variable_dtype)
        return self._cast(standardize_with(kernel, self.epsilon, self._ops, self.convention), dtype)

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self._standardized(kernel, self.compute_dtype))

    def standardized_kernel(self):
        """w_hat as a NumPy array in the variable dtype (float32): the kernel
        the convolution applies, before its cast to the compute dtype."""
        return self._to_numpy(self._standardized(self.kernel, self.variable_dtype))

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "convention": self.convention}


_WS_DOC = """`keras.layers.{parent}` with Weight Standardization: the kernel is
    standardized per output channel over its fan-in before the convolution,
    `(w - mean) / sqrt(var + epsilon)` (biased variance, `epsilon` default
    1e-6, timm's), the gradient flowing through it.

    Arguments: every argument of `keras.layers.{parent}`, plus `epsilon` and
    `convention` ("variance", or "std": `(w - mean) / (unbiased std +
    epsilon)`, epsilon default 1e-5, the WS authors'). See `keras_gn.conv`.
    """


@keras.saving.register_keras_serializable(package="keras_gn")
class WSConv1D(WeightStandardized, keras.layers.Conv1D):
    __doc__ = _WS_DOC.format(parent="Conv1D")


@keras.saving.register_keras_serializable(package="keras_gn")
class WSConv2D(WeightStandardized, keras.layers.Conv2D):
    __doc__ = _WS_DOC.format(parent="Conv2D")


@keras.saving.register_keras_serializable(package="keras_gn")
class WSConv3D(WeightStandardized, keras.layers.Conv3D):
    __doc__ = _WS_DOC.format(parent="Conv3D")


# The plain convolution -> its WS twin (`replace_normalization`).
WS_TWINS = {keras.layers.Conv1D: WSConv1D, keras.layers.Conv2D: WSConv2D, keras.layers.Conv3D: WSConv3D}


def plain_twin(layer):
    """The plain Keras (or tf_keras) convolution class a WS layer subclasses."""
    return next(base for base in type(layer).__mro__[1:] if not issubclass(base, WeightStandardized))
