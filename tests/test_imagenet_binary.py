"""experiments/imagenet_resnet.py end to end, resume after a kill, the TPU
error, and the TFDS input path on tfds.testing.mock_data."""

import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from binaries import ROOT, kill_and_resume
from binaries import env as _env

from keras_gn.train import TrainConfig, learning_rate_schedule, train

SMOKE = [
    "--dataset=synthetic",
    "--depth=8",
    "--width=8",
    "--groups=4",
    "--stem=small",
    "--image_size=16",
    "--synthetic_classes=4",
    "--synthetic_examples=128",
    "--images_per_replica=4",
    "--strategy=mirrored",
    "--num_gpus=2",
    "--cpu_devices=2",
    "--nojit_compile",
]


def _command(model_dir, *extra):
    return [sys.executable, "-m", "experiments.imagenet_resnet", *SMOKE, f"--model_dir={model_dir}", *extra]


@pytest.mark.large
def test_killed_run_resumes_from_its_last_epoch(tmp_path):
    model_dir = tmp_path / "run"
    # 2 replicas x 4 images = 8 per step; 128 examples -> 16 steps per epoch.
    done, _, results = kill_and_resume(_command(model_dir, "--epochs=8"), model_dir, epochs=8, steps_per_epoch=16)
    assert (model_dir / "checkpoints" / f"epoch_{done:03d}.weights.h5").exists()
    assert results["replicas"] == 2 and results["global_batch"] == 8
    assert results["config"]["norm"] == "gn" and results["config"]["images_per_replica"] == 4
    assert (model_dir / "model.keras").exists()
    assert list((model_dir / "tensorboard").rglob("events.out.tfevents*"))


def test_tpu_without_tpu_fails_fast_with_a_clear_message(tmp_path):
    env = _env()
    env.pop("TPU_NAME", None)
    start = time.time()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.imagenet_resnet",
            "--dataset=synthetic",
            "--strategy=tpu",
            f"--model_dir={tmp_path}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "--strategy=tpu: no TPU found. Pass --tpu=" in result.stderr
    assert time.time() - start < 60


def test_learning_rate_schedule_follows_the_paper():
    config = TrainConfig()
    paper = (config.base_learning_rate, config.base_batch, config.decay_epochs)
    schedule = learning_rate_schedule(*paper, global_batch=8 * 32, steps_per_epoch=100)
    lr = lambda step: float(schedule(step))
    np.testing.assert_allclose(
        [lr(0), lr(2999), lr(3001), lr(6001), lr(9001)], [0.1, 0.1, 0.01, 0.001, 0.0001], rtol=1e-6
    )
    schedule = learning_rate_schedule(*paper, global_batch=8 * 2, steps_per_epoch=100)
    np.testing.assert_allclose(float(schedule(0)), 0.1 * 16 / 256, rtol=1e-6)


def test_tfds_pipeline_on_mock_imagenet(tmp_path):
    config = TrainConfig(
        dataset="imagenet2012",
        depth=8,
        width=8,
        groups=4,
        stem="small",
        image_size=32,
        images_per_replica=4,
        epochs=1,
        steps_per_epoch=2,
        eval_steps=2,
        model_dir=str(tmp_path),
        jit_compile=False,
        verbose=0,
    )
    with tfds.testing.mock_data(num_examples=8):
        results = train(config)
        # The reported top-1 error, recomputed from the saved model on the
        # same evaluation batches, outside Keras's evaluate.
        import keras

        from keras_gn.train import ImageTask

        task = ImageTask()
        evaluation = task.dataset(config, info=task.info(config), mode="evaluate", batch_size=4).take(2)
        model = keras.models.load_model(tmp_path / "model.keras")
        hits = [np.argmax(model.predict(x, verbose=0), -1) == y.numpy() for x, y in evaluation]
    assert results["steps_per_epoch"] == 2
    np.testing.assert_allclose(results["top1_error"], 1.0 - np.concatenate(hits).mean(), atol=1e-6)
    with pytest.raises(ValueError, match="give --steps_per_epoch"):
        with tfds.testing.mock_data(num_examples=8):
            train(TrainConfig(dataset="imagenet2012", model_dir=str(tmp_path / "x")))


def test_train_restores_the_dtype_policy_it_set(tmp_path):
    import keras

    config = TrainConfig(
        dataset="synthetic", depth=8, width=8, groups=4, stem="small", image_size=8, images_per_replica=4,
        synthetic_examples=8, synthetic_classes=2, epochs=1, eval_steps=1, mixed_precision="bfloat16",
        model_dir=str(tmp_path), jit_compile=False, verbose=0,
    )  # fmt: skip
    before = keras.config.dtype_policy().name
    results = train(config)
    assert keras.config.dtype_policy().name == before == "float32"
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.get_layer("stage1_block1_conv1").compute_dtype == "bfloat16"  # it trained in bfloat16
    assert results["config"]["mixed_precision"] == "bfloat16"


def test_weight_standardization_and_padding_flags_reach_the_model():
    """--weight_standardization and --padding, parsed as the binaries parse
    them, build the model the ImageNet task trains (training itself is the
    same loop as any norm's: test_train_restores_the_dtype_policy_it_set)."""
    import dataclasses

    import keras
    from absl import flags

    from keras_gn import WSConv2D
    from keras_gn.data import DatasetInfo
    from keras_gn.train import ImageTask, cli

    values = flags.FlagValues()
    cli.define_flags(TrainConfig, values)
    values(["keras-gn-imagenet", "--weight_standardization", "--norm=gn", "--padding=same"])
    config = dataclasses.replace(
        TrainConfig(**cli.values(TrainConfig, values)), depth=8, width=8, groups=4, stem="small", image_size=8
    )
    assert config.weight_standardization is True and config.padding == "same"
    model = ImageTask().model(config, info=DatasetInfo(2, 3, 8, 8))
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 9 and all(isinstance(c, WSConv2D) for c in convs)
    assert model.arguments["padding"] == "same" and not any(l.name.endswith("_pad") for l in model.layers)
    assert not any(isinstance(l, WSConv2D) for l in ImageTask().model(TrainConfig(depth=8, width=8, groups=4,
                   stem="small", image_size=8), info=DatasetInfo(2, 3, 8, 8)).layers)  # fmt: skip


def test_virtual_replicas_train_per_replica_bn_at_the_global_batch(tmp_path, capsys):
    """--virtual_replicas=4 on one device: 4 x 4 images per step, the learning
    rate of that global batch, BN's statistics per 4 images, a last partial
    batch dropped (10 examples: no step of 10 - 8 images would divide)."""
    import keras

    from keras_gn import VirtualReplicaBatchNormalization

    config = TrainConfig(
        dataset="synthetic", norm="bn", depth=8, width=8, stem="small", image_size=8, images_per_replica=2,
        virtual_replicas=4, synthetic_examples=20, synthetic_classes=2, epochs=2, eval_steps=1,
        model_dir=str(tmp_path), jit_compile=False, verbose=0, base_batch=8,
    )  # fmt: skip
    results = train(config)
    assert results["global_batch"] == 8 and results["steps_per_epoch"] == 2 and results["replicas"] == 1
    out = capsys.readouterr().out
    assert "1 replica(s) x 4 virtual replicas x 2 = 8 per step, 2 steps per epoch" in out
    assert "peak learning rate 0.1." in out  # 0.1 x 8 / 8
    model = keras.models.load_model(tmp_path / "model.keras")
    bns = [l for l in model.layers if isinstance(l, VirtualReplicaBatchNormalization)]
    assert bns and all(l.virtual_replicas == 4 for l in bns)
    assert results["config"]["virtual_replicas"] == 4


def test_resnet18_smoke_run_with_warmup(tmp_path):
    """keras-gn-imagenet --depth=18 --norm=gn: ResNet-18's basic blocks, with
    warm-up, end to end on synthetic data."""
    import json

    import keras

    command = [
        sys.executable, "-m", "experiments.imagenet_resnet", "--dataset=synthetic", "--depth=18", "--norm=gn",
        "--width=8", "--groups=4", "--stem=strided", "--image_size=16", "--synthetic_classes=4",
        "--synthetic_examples=32", "--images_per_replica=8", "--epochs=2", "--warmup_epochs=1", "--nojit_compile",
        f"--model_dir={tmp_path}",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.arguments["depth"] == 18 and model.arguments["stem"] == "strided"
    assert "stage4_block2_conv2" in [layer.name for layer in model.layers]
    assert not any(layer.name.endswith("_conv3") for layer in model.layers)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["depth"] == 18 and results["config"]["warmup_epochs"] == 1.0
