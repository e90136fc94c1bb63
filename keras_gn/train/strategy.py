"""`tf.distribute` strategies from a name, as the experiment binaries take them."""

import os

import tensorflow as tf
from absl import logging

__all__ = ["STRATEGIES", "make_strategy", "split_cpu", "is_chief"]

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu", "auto")


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices, so that the
    distributed code paths run on a machine without accelerators. Must be
    called before TensorFlow initialises its devices."""
    if num_devices and num_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def make_strategy(name="default", num_gpus=1, tpu=None):
    """Returns the `tf.distribute.Strategy` called `name`.

    Args:
      name: "default" (no distribution), "one_device", "mirrored" (the
        paper's 8 GPUs in one machine), "multi_worker_mirrored" (several
        machines, from TF_CONFIG), "tpu", or "auto": the TPU when this
        machine has one (a Colab or Cloud TPU VM), else "mirrored" over all
        its GPUs, else "default" (the CPU), as the notebooks pick it.
      num_gpus: replicas of "mirrored" and "one_device". On a machine without
        GPUs, "mirrored" uses that many logical CPU devices (see `split_cpu`).
      tpu: the TPU's name or grpc:// address for `TPUClusterResolver`
        ("local" on a TPU VM).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; known: {', '.join(STRATEGIES)}.")
    if name == "auto":
        return _auto_strategy(tpu)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "tpu":
        return _tpu_strategy(tpu)
    if name == "multi_worker_mirrored":
        return MultiWorkerMirroredStrategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0] if gpus else cpus[0])
    devices = gpus or cpus
    if num_gpus > len(devices):
        kind = "GPUs" if gpus else "CPU devices (this machine has no GPU; split the CPU with --cpu_devices)"
        raise ValueError(f"--num_gpus={num_gpus} replicas asked for, but only {len(devices)} {kind} found.")
    if not gpus and len(cpus) == 1:
        logging.warning("No GPU found: MirroredStrategy runs on the CPU alone.")
    return tf.distribute.MirroredStrategy(devices[:num_gpus])


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` whose `reduce` works for
    what Keras 3's `fit` and `evaluate` ask of it (keras-team/keras#20585):

    - a nested structure, reduced item by item as `MirroredStrategy` does:
      Keras reduces the whole first batch, (images, labels), to find its
      shapes, and the multi-worker `reduce` took one value only ("Attempt to
      convert a value (PerReplica...) to a Tensor" at the first step);
    - per-replica scalars with `axis=0`: Keras reduces its metrics that way
      on several workers, which has no axis 0; they are reduced across the
      replicas alone, as on one worker."""

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def one(item):
            local = self.experimental_local_results(item)[0]
            scalar = getattr(local, "shape", None) is not None and local.shape.rank == 0
            return parent.reduce(reduce_op, item, None if scalar else axis)

        if isinstance(value, tf.distribute.DistributedValues):
            return one(value)
        return tf.nest.map_structure(one, value)


def _has_local_tpu():
    return os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio")


def _auto_strategy(tpu):
    if tpu or os.environ.get("TPU_NAME") or _has_local_tpu():
        return _tpu_strategy(tpu or ("local" if _has_local_tpu() else None))
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.get_strategy()


def _tpu_strategy(tpu):
    # Without a name, TPUClusterResolver looks for a TPU in the environment
    # (Cloud TPU VM, TPU_NAME); where there is none it can wait on metadata
    # servers: fail at once instead.
    if not tpu and not os.environ.get("TPU_NAME") and not _has_local_tpu():
        raise RuntimeError(
            "--strategy=tpu: no TPU found. Pass --tpu=NAME_OR_GRPC_ADDRESS (or --tpu=local on a TPU VM), "
            "or choose another --strategy (default, one_device, mirrored, multi_worker_mirrored, auto)."
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # noqa: BLE001 - TF raises many kinds here
        raise RuntimeError(f"--strategy=tpu: could not reach the TPU {tpu!r}: {error}") from error
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on the
    non-chief workers of a multi-worker strategy."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))
