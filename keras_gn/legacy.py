"""`GroupNormalization` for `tf_keras` (Keras 2), the TensorFlow Model Garden's
Keras: the twin of `keras_gn.GroupNormalization`, the same arguments and the
same numbers, a thin wrapper over the same XLA-compiled core
(`keras_gn.ops.group_norm`).

    import tf_keras
    from keras_gn.legacy import GroupNormalization, WSConv2D
    y = GroupNormalization(groups=32)(tf_keras.Input((56, 56, 256)))
    y = WSConv2D(256, 3, padding="same", use_bias=False)(y)   # Weight Standardization

Needs the `tf_keras` package (`pip install keras-gn[legacy]`).
"""

import types

import tensorflow as tf

try:
    import tf_keras
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "keras_gn.legacy needs tf_keras (Keras 2), the Model Garden's Keras: pip install 'keras-gn[legacy]'."
    ) from error

from keras_gn import conv
from keras_gn import ops as gn_ops
from keras_gn.layers import GroupNormArguments

__all__ = ["GroupNormalization", "AddonsGroupNormalization", "WSConv1D", "WSConv2D", "WSConv3D", "WS_TWINS"]


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class GroupNormalization(GroupNormArguments, tf_keras.layers.Layer):
    """Group Normalization for tf_keras; arguments as `keras_gn.GroupNormalization`
    (`groups=32`, `axis`, `epsilon=1e-5`, `center`, `scale`, initializers,
    regularizers and constraints of gamma and beta, in Keras's order; keyword
    only `group_size` and `fit_groups`)."""

    _K = tf_keras
    _autocast_flag = "experimental_autocast"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # No input autocast under mixed precision, as the Keras 3 layer: the
        # statistics are taken in float32 from the input as given.
        self._autocast = False

    def build(self, input_shape):
        self._build_group_norm(tf.TensorShape(input_shape).as_list())
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None):
        gn_ops.check_float(inputs.dtype.name, self.name)
        return tf.cast(self._group_norm(inputs, self.gamma, self.beta), self.compute_dtype)


@tf_keras.utils.register_keras_serializable(package="Addons", name="GroupNormalization")
class AddonsGroupNormalization(GroupNormalization):
    """tf_keras loads models saved with TensorFlow Addons' GroupNormalization
    with this layer (see `keras_gn.layers.AddonsGroupNormalization`)."""

    def __init__(self, *args, epsilon=1e-3, **kwargs):
        super().__init__(*args, epsilon=epsilon, **kwargs)


class _TFWeightStandardized(conv.WeightStandardized):
    """`keras_gn.conv.WeightStandardized` in TensorFlow ops, for tf_keras."""

    _ops = types.SimpleNamespace(mean=tf.reduce_mean, rsqrt=tf.math.rsqrt, sqrt=tf.sqrt)
    _cast = staticmethod(tf.cast)
    _to_numpy = staticmethod(lambda tensor: tensor.numpy())
    _autocast_flag = "experimental_autocast"


_WS_DOC = conv._WS_DOC.replace("keras.layers", "tf_keras.layers")


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class WSConv1D(_TFWeightStandardized, tf_keras.layers.Conv1D):
    __doc__ = _WS_DOC.format(parent="Conv1D")


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class WSConv2D(_TFWeightStandardized, tf_keras.layers.Conv2D):
    __doc__ = _WS_DOC.format(parent="Conv2D")


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class WSConv3D(_TFWeightStandardized, tf_keras.layers.Conv3D):
    __doc__ = _WS_DOC.format(parent="Conv3D")


# The plain tf_keras convolution -> its WS twin.
WS_TWINS = {tf_keras.layers.Conv1D: WSConv1D, tf_keras.layers.Conv2D: WSConv2D, tf_keras.layers.Conv3D: WSConv3D}
