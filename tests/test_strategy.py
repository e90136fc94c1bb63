"""Strategies from a name (keras_gn.train.make_strategy) and the batch-size
study under a 2-replica MirroredStrategy (logical CPU devices, in a
subprocess)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
from binaries import ROOT

from keras_gn.train import make_strategy


def test_auto_falls_back_to_the_cpu_without_tpu_or_gpu(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    if tf.config.list_logical_devices("GPU") or os.path.exists("/dev/accel0"):
        pytest.skip("this machine has an accelerator")
    strategy = make_strategy("auto")
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1


def test_unknown_strategy_and_missing_tpu_fail_clearly(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ValueError, match="Unknown strategy 'gpu'; known: default, one_device"):
        make_strategy("gpu")
    if not os.path.exists("/dev/accel0") and not os.path.exists("/dev/vfio"):
        with pytest.raises(RuntimeError, match="no TPU found"):
            make_strategy("tpu")


STUDY = textwrap.dedent(
    """
    import json, sys
    from keras_gn.train import make_strategy, split_cpu
    split_cpu(2)
    from keras_gn import study
    config = study.StudyConfig(exhibits=("table2",), norms=("bn", "gn"), images_per_replica=(4,), seeds=1,
                               train_examples=64, eval_examples=32, epochs=1, depth=8, width=8, groups=4,
                               jit_compile=False, output_dir=sys.argv[1], replicas=4, base_batch=32,
                               renorm_images_per_replica=())
    results = study.run_study(config, log=lambda line: None, strategy=make_strategy("mirrored", num_gpus=2),
                              on_result=study.write_report)
    print(json.dumps(results))
    """
)


@pytest.mark.large
def test_study_under_two_replicas_uses_the_global_batch(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", STUDY, str(tmp_path)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["norm"] for r in results] == ["bn", "gn"]
    for r in results:
        # 4 replicas of 4 images, 2 virtual ones on each of 2 devices: global
        # batch 16, 64 // 16 steps, lr 0.1 x 16 / 32.
        assert r["replicas"] == 4 and r["device_replicas"] == 2 and r["global_batch"] == 16
        assert r["optimizer_steps"] == 4
        assert abs(r["learning_rate"] - 0.1 * 16 / 32) < 1e-7
    # BN's error taken apart, from the model the two devices trained.
    assert set(results[0]["bn_error"]) >= {"moving_averages", "precise", "batch_statistics"}
    assert results[0]["bn_error"]["moving_averages"] == results[0]["val_error"]
    assert "4 replicas per step (global batch 4 × images per replica" in (tmp_path / "report.md").read_text()
