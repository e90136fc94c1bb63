"""ResNet I3D: structure, model checks, inflation, 10-clip testing, the binary."""

import sys

import keras
import numpy as np
import pytest
from binaries import kill_and_resume

from keras_gn import GroupNormalization
from keras_gn.data import DatasetInfo
from keras_gn.models import i3d_resnet, inflate, resnet
from keras_gn.train.video import VideoConfig, VideoTask


def test_resnet50_i3d_structure():
    model = i3d_resnet(50, norm="gn", include_top=False)
    # 32 frames become 16 after pool2; 224 px become 7.
    assert model.output_shape == (None, 16, 7, 7, 2048)
    convs = {l.name: l.kernel_size for l in model.layers if isinstance(l, keras.layers.Conv3D)}
    assert convs["stem_conv"] == (5, 7, 7)
    inflated = sorted(n for n, k in convs.items() if k == (3, 1, 1))
    # Every other block: res2 1,1,1; res3 1,0,1,0; res4 1,0,1,0,1,0; res5 0,1,0.
    assert len(inflated) == 3 + 2 + 3 + 1
    assert "stage4_block2_conv1" in inflated and "stage4_block1_conv1" not in inflated
    assert all(k[0] == 1 for n, k in convs.items() if n.endswith("conv2"))
    gns = [l for l in model.layers if isinstance(l, GroupNormalization)]
    assert len(gns) == 53 and all(l.groups == 32 for l in gns)


@pytest.mark.parametrize("norm", ["gn", "bn"])
def test_inflated_model_on_identical_frames_gives_the_2d_features(norm, tmp_path):
    kw = dict(norm=norm, width=32, num_classes=5)
    two_d = resnet(14, input_shape=(32, 32, 3), **kw)
    rng = np.random.default_rng(0)
    for w in two_d.weights:  # non-trivial gamma, so that every layer matters
        if "gamma" in w.path:
            w.assign(rng.uniform(0.5, 1.5, w.shape))
    path = tmp_path / "model.keras"
    two_d.save(path)  # as experiments/imagenet_resnet.py writes it
    video = i3d_resnet(14, input_shape=(8, 32, 32, 3), temporal_padding="edge", **kw)
    copied = inflate(str(path), video)
    assert len(copied) == len([l for l in video.layers if l.weights])
    x = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    clip = np.repeat(x[:, None], 8, axis=1)
    np.testing.assert_allclose(video(clip).numpy(), two_d(x).numpy(), rtol=1e-4, atol=1e-5)
    # The inflated kernels are the 2-D ones repeated over time and divided by t.
    k2, k3 = (
        two_d.get_layer("stage1_block1_conv1").kernel.numpy(),
        video.get_layer("stage1_block1_conv1").kernel.numpy(),
    )
    np.testing.assert_allclose(k3, np.repeat(k2[None], 3, axis=0) / 3, rtol=1e-6)


def test_inflate_rejects_a_different_architecture():
    with pytest.raises(ValueError, match="no layer|do not fit"):
        inflate(
            resnet(8, norm="gn", width=32, input_shape=(32, 32, 3)),
            i3d_resnet(14, norm="gn", width=32, input_shape=(4, 32, 32, 3)),
        )


def test_ten_clip_testing_averages_softmax_over_clips():
    config = VideoConfig(
        dataset="synthetic",
        depth=8,
        width=8,
        groups=4,
        frames=2,
        image_size=16,
        clips_per_replica=2,
        eval_clips=3,
        synthetic_classes=4,
        synthetic_examples=16,
    )
    task = VideoTask()
    info = DatasetInfo(4, 3, 16, 6)
    model = task.model(config, info=info)
    import tensorflow as tf

    def dataset_fn(mode):
        return lambda context: task.dataset(config, info=info, mode=mode, batch_size=2, input_context=context)

    got = task.evaluate(model, config, info=info, strategy=tf.distribute.get_strategy(), dataset_fn=dataset_fn)
    evaluation = task.dataset(config, info=info, mode="evaluate", batch_size=2)
    clips, labels = zip(*[(c.numpy(), y.numpy()) for c, y in evaluation])
    clips, labels = np.concatenate(clips), np.concatenate(labels)
    assert clips.shape == (6, 3, 2, 16, 16, 3)
    logits = np.stack([model.predict(clips[:, k], verbose=0) for k in range(3)], axis=1)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs = (probs / probs.sum(-1, keepdims=True)).mean(1)
    assert got["eval_clips"] == 3
    np.testing.assert_allclose(got["top1_accuracy"], np.mean(probs.argmax(-1) == labels))
    np.testing.assert_allclose(got["eval_loss"], -np.mean(np.log(probs[np.arange(6), labels])), rtol=1e-4)


@pytest.mark.large
def test_binary_trains_under_mirrored_and_resumes(tmp_path):
    model_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "experiments.kinetics_i3d",
        "--dataset=synthetic",
        "--depth=8",
        "--width=8",
        "--groups=4",
        "--frames=4",
        "--image_size=16",
        "--synthetic_classes=5",
        "--synthetic_examples=32",
        "--clips_per_replica=2",
        "--eval_clips=2",
        "--epochs=6",
        "--strategy=mirrored",
        "--num_gpus=2",
        "--cpu_devices=2",
        "--nojit_compile",
        f"--model_dir={model_dir}",
    ]
    # 2 replicas x 2 clips = 4 per step; 32 clips -> 8 steps per epoch.
    _, _, results = kill_and_resume(command, model_dir, epochs=6, steps_per_epoch=8)
    assert results["replicas"] == 2 and results["eval_clips"] == 2
    assert results["config"]["frames"] == 4 and results["config"]["clips_per_replica"] == 2


def test_unreadable_init_checkpoint_is_named(tmp_path):
    import keras

    from keras_gn.errors import CheckpointError
    from keras_gn.models.transfer import copy_by_name

    bad = tmp_path / "r50.keras"
    bad.write_bytes(b"not a zip file")
    target = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(CheckpointError, match=f"cannot read the checkpoint {bad}: it looks truncated or corrupt"):
        copy_by_name(str(bad), target)


def test_weight_standardization_in_every_3d_convolution(tmp_path):
    from keras_gn import WSConv3D
    from keras_gn.models.i3d import I3DResNet

    model = i3d_resnet(8, norm="gn", groups=4, width=8, input_shape=(4, 16, 16, 3), num_classes=3,
                       weight_standardization=True)  # fmt: skip
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv3D)]
    assert len(convs) == 9 and all(isinstance(c, WSConv3D) for c in convs)
    assert model.get_config()["weight_standardization"] is True
    assert sum(isinstance(l, WSConv3D) for l in I3DResNet.from_config(model.get_config()).layers) == 9
    x = np.random.default_rng(0).normal(size=(2, 4, 16, 16, 3)).astype(np.float32)
    model.save(tmp_path / "i3d_ws.keras")
    loaded = keras.models.load_model(tmp_path / "i3d_ws.keras")
    assert sum(isinstance(l, WSConv3D) for l in loaded.layers) == 9
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
