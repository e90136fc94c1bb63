"""experiments/batch_size_sweep.py: the --quick run end to end, and the step
counts and learning rates it trains with."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_gn.train import batch_size_study as study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "experiments.batch_size_sweep", "--quick", f"--output_dir={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_quick_run_writes_table_plot_and_json(quick_run):
    out, stdout = quick_run
    runs = json.loads((out / "results.json").read_text())
    norms, batches = ("bn", "gn"), study.QUICK["images_per_replica"]
    assert sorted((r["norm"], r["images_per_replica"]) for r in runs) == sorted((n, b) for n in norms for b in batches)
    for r in runs:
        assert {"norm", "images_per_replica", "seed", "val_error"} <= set(r)
        assert 0.0 <= r["val_error"] <= 1.0
    table = (out / "results.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    for label in ("BN", "GN", "GN − BN"):
        cells = [c.strip() for c in rows[label].split("|")[2:-1]][: len(batches)]
        assert len(cells) == len(batches) and all(cells), rows[label]
    png = (out / "error_vs_batch.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "[6/6]" in stdout  # a progress line per run


def test_quick_run_trains_with_the_flags_step_counts_and_learning_rates(quick_run):
    out, _ = quick_run
    for r in json.loads((out / "results.json").read_text()):
        b = r["images_per_replica"]
        # The same epochs at every batch: 1 epoch of 1000 images, last partial batch dropped.
        assert r["optimizer_steps"] == 1 * (1000 // b)
        # Linear scaling from 0.1 at 32 images, /10 at 30, 60 and 90% of training.
        np.testing.assert_allclose(r["learning_rate"], 0.1 * b / 32, rtol=1e-6)
        np.testing.assert_allclose(r["final_learning_rate"], 0.1 * b / 32 / 1000, rtol=1e-5)


def test_markdown_table_shape_from_known_results():
    config = study.StudyConfig()
    results = [
        {"norm": n, "images_per_replica": b, "seed": s, "val_error": e}
        for n, b, s, e in [("bn", 32, 0, 0.10), ("bn", 32, 1, 0.12), ("gn", 32, 0, 0.11), ("gn", 32, 1, 0.11), ("bn", 2, 0, 0.3), ("gn", 2, 0, 0.2)]
    ]
    table = study.markdown_table(results, config)
    assert "| BN | 11.00 ± 1.41 | 30.00 ± 0.00 |" in table
    assert "| GN | 11.00 ± 0.00 | 20.00 ± 0.00 |" in table
    assert "| GN − BN | +0.00 | -10.00 |" in table
