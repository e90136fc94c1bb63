"""experiments/imagenet_resnet.py end to end, resume after a kill, the TPU
error, and the TFDS input path on tfds.testing.mock_data."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_gn.train import TrainConfig, learning_rate_schedule, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = [
    "--dataset=synthetic", "--depth=8", "--width=8", "--groups=4", "--stem=small", "--image_size=16",
    "--synthetic_classes=4", "--synthetic_examples=128", "--images_per_replica=4",
    "--strategy=mirrored", "--num_gpus=2", "--cpu_devices=2", "--nojit_compile",
]


def _env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")


def _command(model_dir, *extra):
    return [sys.executable, "-m", "experiments.imagenet_resnet", *SMOKE, f"--model_dir={model_dir}", *extra]


def test_killed_run_resumes_from_its_last_epoch(tmp_path):
    model_dir = tmp_path / "run"
    metadata = model_dir / "backup" / "training_metadata.json"
    first = subprocess.Popen(_command(model_dir, "--epochs=8"), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 2:
            break
        time.sleep(0.1)
    assert first.poll() is None, "the first run ended before it could be killed:\n" + first.stdout.read()[-3000:]
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = json.loads(metadata.read_text())["epoch"]
    assert 2 <= done < 8
    assert (model_dir / "checkpoints" / "epoch_002.weights.h5").exists()

    second = subprocess.run(_command(model_dir, "--epochs=8"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    # It starts where the backup stood, optimizer state included (2 replicas
    # x 4 images = 8 per step; 128 examples -> 16 steps per epoch).
    assert f"Resumed from the last backup at optimizer step {done * 16}." in second.stdout
    assert "Epoch 1/8" not in second.stdout and f"Epoch {done + 1}/8" in second.stdout
    results = json.loads((model_dir / "results.json").read_text())
    assert results["epochs_run_in_this_process"] == 8 - done
    assert results["replicas"] == 2 and results["global_batch"] == 8
    assert 0.0 <= results["top1_error"] <= 1.0
    assert results["config"]["norm"] == "gn" and results["config"]["images_per_replica"] == 4
    assert (model_dir / "model.keras").exists()
    assert list((model_dir / "tensorboard").rglob("events.out.tfevents*"))


def test_tpu_without_tpu_fails_fast_with_a_clear_message(tmp_path):
    env = _env()
    env.pop("TPU_NAME", None)
    start = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "experiments.imagenet_resnet", "--strategy=tpu", f"--model_dir={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "--strategy=tpu: no TPU found. Pass --tpu=" in result.stderr
    assert time.time() - start < 60


def test_learning_rate_schedule_follows_the_paper():
    config = TrainConfig()
    paper = (config.base_learning_rate, config.base_batch, config.decay_epochs)
    schedule = learning_rate_schedule(*paper, global_batch=8 * 32, steps_per_epoch=100)
    lr = lambda step: float(schedule(step))
    np.testing.assert_allclose([lr(0), lr(2999), lr(3001), lr(6001), lr(9001)], [0.1, 0.1, 0.01, 0.001, 0.0001], rtol=1e-6)
    schedule = learning_rate_schedule(*paper, global_batch=8 * 2, steps_per_epoch=100)
    np.testing.assert_allclose(float(schedule(0)), 0.1 * 16 / 256, rtol=1e-6)


def test_tfds_pipeline_on_mock_imagenet(tmp_path):
    config = TrainConfig(
        dataset="imagenet2012", depth=8, width=8, groups=4, stem="small", image_size=32, images_per_replica=4,
        epochs=1, steps_per_epoch=2, eval_steps=2, model_dir=str(tmp_path), jit_compile=False, verbose=0,
    )
    with tfds.testing.mock_data(num_examples=8):
        results = train(config)
    assert results["steps_per_epoch"] == 2 and 0.0 <= results["top1_error"] <= 1.0
    with pytest.raises(ValueError, match="give --steps_per_epoch"):
        with tfds.testing.mock_data(num_examples=8):
            train(TrainConfig(dataset="imagenet2012", model_dir=str(tmp_path / "x")))
