"""`VirtualReplicaBatchNormalization` and `virtual_replicas=`: BN's statistics
per replica on one device, against float64 NumPy and against one training
step under MirroredStrategy over logical CPU devices."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from binaries import ROOT, env

import keras_gn
from keras_gn import VirtualReplicaBatchNormalization
from keras_gn.models import resnet


def _halves_differ(shape=(8, 5, 5, 3), seed=0):
    x = np.random.default_rng(seed).normal(size=shape)
    x[: shape[0] // 2] = 4.0 * x[: shape[0] // 2] + 2.0
    return x


def _numpy_bn(x, axes, epsilon):
    mean = x.mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + epsilon)


@pytest.mark.parametrize("replicas", [1, 2, 4])
@pytest.mark.parametrize("axis", [-1, 1])
def test_each_slice_is_normalized_by_its_own_moments(replicas, axis):
    x = _halves_differ()
    layer = VirtualReplicaBatchNormalization(virtual_replicas=replicas, axis=axis, epsilon=1e-5)
    out = keras.ops.convert_to_numpy(layer(x.astype("float32"), training=True))
    channel = axis % 4
    axes = tuple(a for a in range(4) if a != channel)
    expected = np.concatenate([_numpy_bn(part, axes, 1e-5) for part in np.split(x, replicas)])
    np.testing.assert_allclose(out, expected, atol=2e-5)
    if replicas > 1:  # not the whole batch's statistics
        assert np.max(np.abs(out - _numpy_bn(x, axes, 1e-5))) > 0.1


def test_moving_statistics_follow_the_first_slice_and_inference_is_batch_norm():
    x = _halves_differ()
    layer = VirtualReplicaBatchNormalization(virtual_replicas=2, momentum=0.9)
    layer(x.astype("float32"), training=True)
    first = x[:4].reshape(-1, 3)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * first.mean(0), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * first.var(0), rtol=1e-5)
    plain = keras.layers.BatchNormalization(momentum=0.9)
    plain.build(x.shape)
    plain.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x, training=False), plain(x, training=False), atol=1e-6)


def test_batch_that_does_not_divide_into_the_replicas_is_refused():
    layer = VirtualReplicaBatchNormalization(virtual_replicas=4)
    with pytest.raises(ValueError, match="batch of 6 does not divide into virtual_replicas=4"):
        layer(np.zeros((6, 3), "float32"), training=True)
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="virtual_replicas must be a positive integer"):
            VirtualReplicaBatchNormalization(virtual_replicas=bad)
    with pytest.raises(ValueError, match="synchronized=True"):
        VirtualReplicaBatchNormalization(virtual_replicas=2, synchronized=True)


def test_factory_gives_per_replica_bn_and_brn_and_leaves_the_others():
    def layer(norm):
        return keras_gn.normalization(norm, virtual_replicas=8)(axis=-1)

    assert layer("bn").virtual_replicas == 8 and not layer("bn").renorm
    assert layer("brn").virtual_replicas == 8 and layer("brn").renorm
    assert type(layer("syncbn")) is keras.layers.BatchNormalization and layer("syncbn").synchronized
    assert type(layer("bn")) is VirtualReplicaBatchNormalization
    assert type(keras_gn.normalization("bn")(axis=-1)) is keras.layers.BatchNormalization
    assert type(layer("gn")) is keras_gn.GroupNormalization
    with pytest.raises(ValueError, match="virtual_replicas needs framework='keras'"):
        keras_gn.normalization("bn", framework="tf_keras", virtual_replicas=2)


def test_resnet_keeps_virtual_replicas_through_save_and_load(tmp_path):
    model = resnet(8, norm="brn", width=8, stem="small", input_shape=(8, 8, 3), num_classes=4, virtual_replicas=4)
    bns = [layer for layer in model.layers if isinstance(layer, VirtualReplicaBatchNormalization)]
    assert bns and all(layer.virtual_replicas == 4 for layer in bns)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = _halves_differ((8, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-5)
    # Training mode: the same per-slice statistics after loading.
    np.testing.assert_allclose(loaded(x, training=True), model(x, training=True), atol=1e-5)


@pytest.mark.parametrize("replicas", [4, pytest.param(8, marks=pytest.mark.large)])
def test_one_step_equals_mirrored_strategy_over_logical_devices(replicas):
    """Loss, every weight's change under SGD at learning rate 1 (minus the
    gradient, weight decay included) and the moving statistics' updates of
    one `fit` step: R virtual replicas on one device against MirroredStrategy
    over R logical CPU devices, 2 images each (R = 4: 55 s; 8, large: 100 s)."""
    script = f"{ROOT}/tests/virtual_replicas_reference.py"
    result = subprocess.run(
        [sys.executable, script, str(replicas)], capture_output=True, text=True, env=env(), timeout=600, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for norm in ("bn", "brn", "gn"):
        assert out[norm]["loss"] < 1e-5 and out[norm]["delta"] < 1e-5 and out[norm]["stats"] < 1e-5, out
    # The per-replica statistics matter: one device without replicas differs.
    assert out["bn"]["vs_one_device"] > 1e-2 and out["brn"]["vs_one_device"] > 1e-2, out
    # GN's step does not depend on the replicas.
    assert out["gn"]["vs_one_device"] < 1e-5, out
