"""`VirtualReplicaBatchNormalization`: BN as on several GPUs, on one device.

The paper's "images per GPU" is the batch of BN's statistics; each SGD step
uses the images of all 8 GPUs. On one device this layer gives a global batch
of R x B images the statistics of R replicas of B images each:

    layer = VirtualReplicaBatchNormalization(virtual_replicas=8, momentum=0.9, epsilon=1e-5)
    y = layer(x, training=True)   # x: 8 x B images; each slice of B normalized by its own moments

In training, the batch is cut into `virtual_replicas` equal, consecutive
slices (the slices `tf.distribute.MirroredStrategy` gives its replicas), and
each is normalized by its own mean and variance (Batch Renormalization's r
and d too, with `renorm=True`). The gradient is that of R replicas summed.
The moving averages follow the first slice's statistics, as they do under
MirroredStrategy in Keras 3 (each replica updates its own copy; the first
is the one read, evaluated on one device and saved), under PyTorch's
DistributedDataParallel (rank 0's buffers are broadcast) and in Caffe2
(GPU 0's). In inference it is `keras.layers.BatchNormalization`.
"""

import keras
from keras import ops

__all__ = ["VirtualReplicaBatchNormalization", "check_virtual_replicas"]


def check_virtual_replicas(virtual_replicas):
    """Raises ValueError unless `virtual_replicas` is a positive int."""
    if isinstance(virtual_replicas, bool) or not isinstance(virtual_replicas, int) or virtual_replicas < 1:
        raise ValueError(f"virtual_replicas must be a positive integer; got {virtual_replicas!r}.")


@keras.saving.register_keras_serializable(package="keras_gn")
class VirtualReplicaBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with the training statistics of each
    of `virtual_replicas` equal slices of the batch (see the module).

    Args:
      virtual_replicas: slices per batch; the batch must divide into them.
        1 is `keras.layers.BatchNormalization`.
      **kwargs: BatchNormalization's arguments (`renorm=True` included;
        `synchronized=True` is refused: its statistics are the whole batch's).
    """

    def __init__(self, virtual_replicas=1, **kwargs):
        check_virtual_replicas(virtual_replicas)
        if kwargs.get("synchronized"):
            raise ValueError(
                "synchronized=True takes the statistics over the whole batch; it cannot be combined with "
                "virtual_replicas (use BatchNormalization(synchronized=True), the 'syncbn' normalization)."
            )
        super().__init__(**kwargs)
        self.virtual_replicas = virtual_replicas

    def get_config(self):
        return {**super().get_config(), "virtual_replicas": self.virtual_replicas}

    def call(self, inputs, training=None, mask=None):
        replicas = self.virtual_replicas
        if not (training and self.trainable) or replicas == 1:
            return super().call(inputs, training=training, mask=mask)
        if mask is not None:
            raise ValueError("VirtualReplicaBatchNormalization does not take a mask when virtual_replicas > 1.")
        batch = inputs.shape[0]
        if batch is not None and batch % replicas:
            raise ValueError(
                f"A batch of {batch} does not divide into virtual_replicas={replicas} equal slices; give a "
                f"multiple of {replicas} (a dataset batched with drop_remainder=True)."
            )
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, compute_dtype)
        ndim = len(inputs.shape)
        axis = self.axis % ndim
        channels = inputs.shape[axis]
        # (R, B, ...): slice r is images r*B ... (r+1)*B - 1, as a
        # distributed dataset splits a global batch over replicas.
        shape = ops.shape(x)
        sliced = ops.reshape(x, (replicas, -1, *shape[1:]))
        reduce = [1] + [a + 1 for a in range(1, ndim) if a != axis]
        mean, variance = ops.moments(sliced, axes=reduce, keepdims=True)
        # Per slice and channel, as (R, C) for the statistics' updates.
        mean_rc, variance_rc = ops.reshape(mean, (replicas, channels)), ops.reshape(variance, (replicas, channels))
        broadcast = [1] * (ndim + 1)
        broadcast[axis + 1] = channels
        gamma = ops.reshape(ops.cast(self.gamma, compute_dtype), broadcast) if self.scale else None
        beta = ops.reshape(ops.cast(self.beta, compute_dtype), broadcast) if self.center else None
        if self.renorm:
            r, d, _, _ = self._renorm_correction_and_moments(mean_rc, variance_rc)
            # (x_hat * r + d) * gamma + beta, slice by slice: Keras's own
            # composition, on r and d of shape (R, 1, ..., C, ...).
            r = ops.reshape(r, (replicas, *broadcast[1:]))
            d = ops.reshape(d, (replicas, *broadcast[1:]))
            gamma, beta = self._compose_transforms(r, d, gamma, beta, compute_dtype)
            self._update_renorm_statistics(mean_rc[0], variance_rc[0])
        else:
            momentum = self.momentum
            self.moving_mean.assign(
                ops.cast(self.moving_mean, compute_dtype) * momentum + mean_rc[0] * (1.0 - momentum)
            )
            self.moving_variance.assign(
                ops.cast(self.moving_variance, compute_dtype) * momentum + variance_rc[0] * (1.0 - momentum)
            )
        outputs = (sliced - mean) * ops.rsqrt(variance + self.epsilon)
        if gamma is not None:
            outputs = outputs * gamma
        if beta is not None:
            outputs = outputs + beta
        return ops.cast(ops.reshape(outputs, shape), self.compute_dtype)
