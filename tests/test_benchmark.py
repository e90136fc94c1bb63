"""benchmarks/: the StableHLO export of the contenders and the JAX timer that
runs the exported programs without TensorFlow (here on the CPU)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from binaries import ROOT, env


@pytest.mark.large
def test_export_then_time_with_jax_alone(tmp_path):
    pytest.importorskip("jax")
    folder = tmp_path / "hlo"
    export = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.layer_speed",
            "--quick",
            f"--export_stablehlo={folder}",
            "--noexport_resnet",
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    manifest = json.loads((folder / "manifest.json").read_text())
    contenders = {(e["contender"], e["mode"]) for e in manifest}
    assert contenders == {
        (c, m) for c in ("keras_gn", "keras", "paper", "floor") for m in ("forward", "forward_backward")
    }
    for entry in manifest:
        text = (folder / entry["file"]).read_text()
        assert "func.func @main(" in text or "func.func public @main(" in text
        if entry["contender"] == "keras_gn":
            # Exported for an accelerator: plain reductions, no CPU matrix-product sums.
            assert "stablehlo.dot_general" not in text and "stablehlo.reduce" in text
    # The timer imports no TensorFlow: run it with TensorFlow made unimportable.
    blocker = tmp_path / "no_tf"
    blocker.mkdir()
    (blocker / "tensorflow.py").write_text("raise ImportError('TensorFlow is not needed to time StableHLO')\n")
    timer_env = dict(env(), PYTHONPATH=str(blocker))
    timed = subprocess.run(
        [
            sys.executable,
            os.path.join("benchmarks", "time_stablehlo.py"),
            str(folder),
            "--repeats=2",
            f"--output={tmp_path / 'times.json'}",
        ],
        cwd=ROOT,
        env=timer_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert timed.returncode == 0, timed.stderr[-3000:]
    assert "ratios to keras_gn" in timed.stdout and "[2, 14, 14, 64] forward_backward: keras" in timed.stdout
    times = json.loads((tmp_path / "times.json").read_text())["medians_ms"]
    assert set(times) == {e["file"] for e in manifest} and all(t > 0 for t in times.values())


def test_pass_costs_time_every_contender_and_agree_on_the_statistics():
    import numpy as np
    import tensorflow as tf

    from benchmarks import pass_costs

    ms = pass_costs.measure((2, 16, 64), repeats=1)
    assert set(ms) == {
        "floor", "read", "read_square", "shifted", "shifted_matmul", "keras_gn_stats", "keras_gn", "keras",
    }  # fmt: skip
    assert all(v > 0 for v in ms.values())
    # The timed layers compute the same normalization.
    x = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, (2, 16, 64)).astype(np.float32))
    fns = pass_costs._contenders(x)
    np.testing.assert_allclose(fns["keras_gn"](x).numpy(), fns["keras"](x).numpy(), atol=1e-4)


def _quick_run(module, output):
    """Runs `python -m benchmarks.MODULE --quick --output=OUTPUT`; returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--quick", f"--output={output}"],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.large
def test_ws_speed_quick_run_writes_its_ratio(tmp_path):
    output = tmp_path / "ws_speed.json"
    stdout = _quick_run("ws_speed", output)
    result = json.loads(output.read_text())
    assert len(result["ratios"]) == 3 and result["ratio"] == sorted(result["ratios"])[1]
    assert result["gn_ms"] > 0 and result["gn_ws_ms"] > 0 and result["target"] == 1.10
    assert "GN+WS / GN =" in stdout


def test_model_speed_builds_the_same_network_for_every_contender():
    import keras

    from benchmarks import model_speed

    args, shape, _, _ = model_speed.networks(True)["tiny"]
    models = {name: model_speed.build(name, args, shape) for name in model_speed.CONTENDERS}
    kinds = {
        name: [type(l).__name__ for l in m.layers if "Normalization" in type(l).__name__] for name, m in models.items()
    }
    assert set(kinds["keras_gn"]) == {"GroupNormalization"} and len(kinds["keras_gn"]) == len(kinds["keras"])
    norms = [l for l in models["keras"].layers if "Normalization" in type(l).__name__]
    assert norms and all(type(l) is keras.layers.GroupNormalization and l.epsilon == 1e-5 for l in norms)
    # Same weights, same groups and epsilon: the same outputs.
    for name in ("keras", "control"):
        models[name].set_weights(models["keras_gn"].get_weights())
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    y = {name: m.predict(x, verbose=0) for name, m in models.items()}
    np.testing.assert_allclose(y["keras"], y["keras_gn"], atol=1e-4)
    np.testing.assert_array_equal(y["keras"], y["control"])


@pytest.mark.large
def test_model_speed_quick_run_reports_every_case(tmp_path):
    output = tmp_path / "model_speed.json"
    stdout = _quick_run("model_speed", output)
    result = json.loads(output.read_text())["results"]["tiny"]
    cases = {(row["batch"], str(row["jit_compile"])) for row in result["steps"]}
    assert cases == {("None", "auto"), ("static", "auto"), ("None", "True"), ("static", "True")}
    assert all(v > 0 for row in result["steps"] for v in row["ms"].values())
    assert set(result["new_shapes"]["predict"]) == {"keras_gn", "keras", "control"}
    assert "| network | batch | jit_compile |" in stdout and "Targets met:" in stdout
