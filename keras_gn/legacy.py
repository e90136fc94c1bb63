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
from keras_gn.layers import GroupNormArguments, core_mode, resolve_groups

__all__ = ["GroupNormalization", "WSConv1D", "WSConv2D", "WSConv3D", "WS_TWINS"]


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class GroupNormalization(GroupNormArguments, tf_keras.layers.Layer):
    """Group Normalization for tf_keras; arguments as `keras_gn.GroupNormalization`
    (`groups=32` or `group_size`, `axis`, `epsilon=1e-5`, `center`, `scale`,
    initializers, regularizers and constraints of gamma and beta)."""

    _K = tf_keras

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # No input autocast under mixed precision, as the Keras 3 layer: the
        # statistics are taken in float32 from the input as given.
        self._autocast = False

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        rank = input_shape.rank
        channel_axis = gn_ops.normalize_axis(self.axis, rank)
        channels = input_shape[channel_axis]
        try:
            self.num_groups = resolve_groups(channels, self.groups, self.group_size)
        except ValueError as error:
            raise ValueError(f"{error} (layer {self.name!r}, input shape {input_shape})") from None
        self.input_spec = tf_keras.layers.InputSpec(ndim=rank, axes={channel_axis: channels})
        self._compiled = core_mode(input_shape.as_list())
        # The policy's variable dtype (float32 under mixed precision), as the Keras 3 layer.
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma",
                shape=(channels,),
                dtype=self.dtype,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                experimental_autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                name="beta",
                shape=(channels,),
                dtype=self.dtype,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                experimental_autocast=False,
            )
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None):
        gn_ops.check_float(inputs.dtype.name, self.name)
        outputs = gn_ops.group_norm(
            inputs, self.gamma, self.beta, self.num_groups, self.axis, self.epsilon, compiled=self._compiled
        )
        return tf.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask


class _TFWeightStandardized(conv.WeightStandardized):
    """`keras_gn.conv.WeightStandardized` in TensorFlow ops, for tf_keras."""

    _ops = types.SimpleNamespace(mean=tf.reduce_mean, rsqrt=tf.math.rsqrt, sqrt=tf.sqrt)
    _cast = staticmethod(tf.cast)
    _to_numpy = staticmethod(lambda tensor: tensor.numpy())
    _autocast_flag = "experimental_autocast"


WS_TWINS = conv.ws_classes(tf_keras, _TFWeightStandardized, __name__)
WSConv1D, WSConv2D, WSConv3D = WS_TWINS.values()
