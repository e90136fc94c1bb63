"""`GroupNormalization` for `tf_keras` (Keras 2), the TensorFlow Model Garden's
Keras: the twin of `keras_gn.GroupNormalization`, the same arguments and the
same numbers, a thin wrapper over the same XLA-compiled core
(`keras_gn.ops.group_norm`).

    import tf_keras
    from keras_gn.legacy import GroupNormalization
    y = GroupNormalization(groups=32)(tf_keras.Input((56, 56, 256)))

Needs the `tf_keras` package (`pip install keras-gn[legacy]`).
"""

import tensorflow as tf

try:
    import tf_keras
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "keras_gn.legacy needs tf_keras (Keras 2), the Model Garden's Keras: pip install 'keras-gn[legacy]'."
    ) from error

from keras_gn import ops as gn_ops
from keras_gn.layers import resolve_groups, validate_arguments

__all__ = ["GroupNormalization"]


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class GroupNormalization(tf_keras.layers.Layer):
    """Group Normalization for tf_keras; arguments as `keras_gn.GroupNormalization`
    (`groups=32` or `group_size`, `axis`, `epsilon=1e-5`, `center`, `scale`,
    initializers, regularizers and constraints of gamma and beta)."""

    def __init__(
        self,
        groups=None,
        group_size=None,
        axis=-1,
        epsilon=1e-5,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validate_arguments(groups, group_size, axis, epsilon)
        self.groups = groups
        self.group_size = group_size
        self.axis = axis
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = tf_keras.initializers.get(beta_initializer)
        self.gamma_initializer = tf_keras.initializers.get(gamma_initializer)
        self.beta_regularizer = tf_keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = tf_keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = tf_keras.constraints.get(beta_constraint)
        self.gamma_constraint = tf_keras.constraints.get(gamma_constraint)
        self.supports_masking = True

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
        # float32 under mixed precision, as the Keras 3 layer.
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma", shape=(channels,), dtype=tf.float32, initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer, constraint=self.gamma_constraint, experimental_autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                name="beta", shape=(channels,), dtype=tf.float32, initializer=self.beta_initializer,
                regularizer=self.beta_regularizer, constraint=self.beta_constraint, experimental_autocast=False,
            )
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None):
        if not inputs.dtype.is_floating:
            raise TypeError(
                f"GroupNormalization ({self.name!r}) needs floating-point inputs; got {inputs.dtype.name}. "
                f"Cast the input to a float dtype first."
            )
        outputs = gn_ops.group_norm(inputs, self.gamma, self.beta, self.num_groups, self.axis, self.epsilon)
        return tf.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "groups": self.groups,
                "group_size": self.group_size,
                "axis": self.axis,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "beta_initializer": tf_keras.initializers.serialize(self.beta_initializer),
                "gamma_initializer": tf_keras.initializers.serialize(self.gamma_initializer),
                "beta_regularizer": tf_keras.regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": tf_keras.regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": tf_keras.constraints.serialize(self.beta_constraint),
                "gamma_constraint": tf_keras.constraints.serialize(self.gamma_constraint),
            }
        )
        return config
