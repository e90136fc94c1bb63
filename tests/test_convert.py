"""Keras 3 ImageNet checkpoint -> tf_keras backbone: the same features."""

import keras
import numpy as np
import pytest

pytest.importorskip("tf_keras")

from keras_gn.detection.convert import convert  # noqa: E402
from keras_gn.models import resnet  # noqa: E402


@pytest.mark.parametrize("norm", ["gn", "bn", "frozen_bn"])
def test_converted_backbone_gives_the_same_features(norm, tmp_path):
    kw = dict(depth=14, norm=norm, width=32, input_shape=(64, 64, 3))
    original = resnet(num_classes=10, **kw)
    rng = np.random.default_rng(0)
    for w in original.weights:  # trained-looking statistics and scales
        w.assign(
            rng.uniform(0.5, 1.5, w.shape)
            if ("gamma" in w.path or "variance" in w.path)
            else w.numpy() + rng.normal(0, 0.01, w.shape)
        )
    path = tmp_path / "model.keras"
    original.save(path)  # what experiments/imagenet_resnet.py writes

    backbone = resnet(framework="tf_keras", endpoints=True, **kw)
    assert type(backbone).__module__.startswith("tf_keras")
    copied = convert(str(path), backbone)
    assert len(copied) == len([l for l in backbone.layers if l.weights])

    x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    loaded = keras.models.load_model(path)
    levels = {str(s + 2): loaded.get_layer(f"stage{s + 1}_block1_out").output for s in range(4)}
    expected = keras.Model(loaded.input, levels)(x)
    got = backbone(x, training=False)
    assert sorted(got) == ["2", "3", "4", "5"]
    assert tuple(got["5"].shape) == (2, 2, 2, 32 * 8 * 4)
    for level in got:
        np.testing.assert_allclose(got[level].numpy(), np.asarray(expected[level]), rtol=1e-4, atol=1e-4, err_msg=level)


def test_mismatched_architecture_is_a_clear_error():
    source = resnet(depth=8, norm="gn", width=32, input_shape=(64, 64, 3))
    target = resnet(depth=14, norm="gn", width=32, input_shape=(64, 64, 3), framework="tf_keras", endpoints=True)
    with pytest.raises(ValueError, match="has no layer 'stage3"):
        convert(source, target)


def test_backbone_arguments_come_from_the_model():
    from keras_gn.detection.convert import backbone_arguments

    bn = resnet(8, norm="bn", width=8, input_shape=(32, 32, 3), num_classes=2)

    def args(model, **kwargs):
        a = backbone_arguments(model, **kwargs)[0]
        return a["depth"], a["norm"], a["groups"], a["weight_standardization"], a["padding"]

    assert args(bn) == (8, "frozen_bn", 32, False, "symmetric")  # BN is detection's frozen BN*
    assert args(bn, norm="syncbn") == (8, "syncbn", 32, False, "symmetric")
    gn = resnet(8, norm="gn", groups=4, width=8, input_shape=(32, 32, 3), num_classes=2)
    assert args(gn) == (8, "gn", 4, False, "symmetric")
    assert gn.arguments["groups"] == 4 and gn.get_config()["depth"] == 8
    ws = resnet(8, norm="gn", groups=4, width=8, input_shape=(32, 32, 3), num_classes=2, weight_standardization="std")
    assert args(ws) == (8, "gn", 4, "std", "symmetric")  # a WS kernel only means what it means in its WS conv
    # A model saved before the padding argument existed was built with TensorFlow's "same".
    config = {k: v for k, v in gn.get_config().items() if k != "padding"}
    assert args(type(gn).from_config(config)) == (8, "gn", 4, False, "same")


def test_unreadable_or_missing_keras_model_is_named(tmp_path):
    from keras_gn.detection.convert import backbone_arguments
    from keras_gn.errors import CheckpointError

    bad = tmp_path / "model.keras"
    bad.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(CheckpointError, match=f"cannot read the checkpoint {bad}: it looks truncated or corrupt"):
        backbone_arguments(str(bad))
    with pytest.raises(CheckpointError, match=f"{tmp_path}/none.keras not found. Give --keras_model a model.keras"):
        backbone_arguments(str(tmp_path / "none.keras"))


def test_truncated_detector_init_checkpoint_is_named(tmp_path):
    import tensorflow as tf

    from keras_gn.detection import run
    from keras_gn.detection.task import MaskRCNNTask
    from keras_gn.errors import CheckpointError

    prefix = str(tmp_path / "ckpt")
    tf.train.Checkpoint(backbone=tf.Module()).write(prefix)
    index = tmp_path / "ckpt.index"
    index.write_bytes(index.read_bytes()[:20])
    task = MaskRCNNTask(run.experiment_params("maskrcnn_r50fpn_gn_coco", init_checkpoint=prefix).task)
    model = type("Model", (), {"backbone": tf.Module(), "decoder": tf.Module()})()
    with pytest.raises(CheckpointError, match=f"cannot read the checkpoint {prefix}: it looks truncated or corrupt"):
        task.initialize(model)
