"""The classification study (experiments/batch_size_sweep.py over
keras_gn.study): its protocol as unit tests that train nothing, the
report's tables and claims from known results, resume, and the --quick run
end to end in a subprocess."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from binaries import ROOT, env

from keras_gn import GroupNormalization, study
from keras_gn.models.resnet import normalized_channels, resnet

TINY = dict(
    train_examples=96,
    eval_examples=32,
    epochs=1,
    depth=8,
    width=8,
    groups=4,
    seeds=1,
    jit_compile=False,
    workers=1,
    replicas=2,
    renorm_images_per_replica=(),
)


def _config(**overrides):
    return dataclasses.replace(study.StudyConfig(), **overrides)


# ------------------------------------------------------------ the protocol


def test_same_epochs_at_every_batch_hence_steps_scale_inversely():
    config = _config(train_examples=6000, epochs=10, replicas=8)
    for batch in (32, 16, 8, 4, 2):
        # Each step takes 8 replicas x `batch` images.
        assert study.global_batch(config, batch) == 8 * batch
        assert study.steps_per_epoch(config, batch) == 6000 // (8 * batch)
    # The last partial batch is dropped: a BN batch of one image has no variance.
    assert study.steps_per_epoch(_config(train_examples=1000, replicas=8), 32) == 3
    assert study.steps_per_epoch(_config(train_examples=100, replicas=1), 32) == 3
    # The replicas given override the config's.
    assert study.steps_per_epoch(config, 4, replicas=2) == 6000 // 8


@pytest.mark.parametrize("batch", [32, 16, 8, 4, 2])
@pytest.mark.parametrize("replicas", [1, 8])
def test_learning_rate_scales_with_the_global_batch_and_drops_at_30_60_90_percent(batch, replicas):
    config = _config(train_examples=6000, epochs=10, base_learning_rate=0.1, base_batch=256, replicas=replicas,
                     warmup_epochs=0.0)  # fmt: skip
    values, boundaries = study.learning_rates(config, batch)
    peak = 0.1 * replicas * batch / 256
    np.testing.assert_allclose(values, [peak, peak / 10, peak / 100, peak / 1000], rtol=1e-6)
    total = 10 * (6000 // (replicas * batch))
    assert boundaries == [round(0.3 * total), round(0.6 * total), round(0.9 * total)]
    # The schedule a run trains with is that one, step by step.
    lr = study.schedule(config, batch)
    # (Keras's PiecewiseConstantDecay: the next value from the step after a boundary.)
    assert float(lr(0)) == pytest.approx(peak) and float(lr(boundaries[0])) == pytest.approx(peak)
    assert float(lr(boundaries[0] + 1)) == pytest.approx(peak / 10)
    assert float(lr(boundaries[2] + 1)) == pytest.approx(peak / 1000) and float(lr(total - 1)) == pytest.approx(
        peak / 1000
    )


def test_learning_rate_follows_the_global_batch_under_replicas():
    config = _config(base_learning_rate=0.1, base_batch=32)
    assert study.learning_rates(config, 4, replicas=8)[0][0] == pytest.approx(0.1)
    assert study.learning_rates(config, 4, replicas=1)[0][0] == pytest.approx(0.0125)


def test_plan_trains_each_shared_run_once():
    config = _config(seeds=3, table3_seeds=1, groups=8, table3_group_sizes=(1, 2, 4, 8),
                     exhibits=("table2", "table1", "table3"))  # fmt: skip
    runs = study.plan(config)
    assert len(runs) == len(set(runs))
    cells = {(r.method, r.images_per_replica, r.groups, r.group_size) for r in runs}
    # Table 2: BN, GN and GN+WS at every batch, Batch Renorm at 4; Table 1
    # adds LN and IN at 32; Table 3's G = 1 is LN, 1 channel per group IN,
    # G = 8 the default GN.
    assert {("bn", b, None, None) for b in (32, 16, 8, 4, 2)} <= cells
    assert {("gn", b, 8, None) for b in (32, 16, 8, 4, 2)} <= cells
    assert {("gn+ws", b, 8, None) for b in (32, 16, 8, 4, 2)} <= cells
    assert ("brn", 4, None, None) in cells and not any(c[0] == "brn" and c[1] != 4 for c in cells)
    assert {("ln", 32, None, None), ("in", 32, None, None)} <= cells
    assert {("gn", 32, g, None) for g in (2, 4, 16)} <= cells
    assert {("gn", 32, None, s) for s in (2, 4, 8)} <= cells
    # Tables 1 and 2 with 3 seeds; Table 3's own 6 cells with one.
    assert len(cells) == 15 + 1 + 2 + 3 + 3 and len(runs) == 3 * (len(cells) - 6) + 6
    table3_only = {(r.groups, r.group_size) for r in runs if r.norm == "gn" and (r.groups, r.group_size) != (8, None)}
    assert len(table3_only) == 6 and all(r.seed == 0 for r in runs if (r.groups, r.group_size) in table3_only)
    # Seed by seed: a partial study has every cell early.
    assert {r.seed for r in runs[: len(cells)]} == {0}
    more = study.plan(dataclasses.replace(config, table3_seeds=2))
    assert len(more) == len(runs) + 6
    only_table2 = study.plan(_config(exhibits=("table2",), seeds=1, norms=("bn", "gn"), renorm_images_per_replica=()))
    assert {r.method for r in only_table2} == {"bn", "gn"} and len(only_table2) == 10
    # Batch Renorm at a batch Table 2 does not sweep, and any norm with +ws.
    extra = study.plan(_config(exhibits=("table2",), seeds=1, norms=("syncbn", "bn+ws"), images_per_replica=(8,),
                               renorm_images_per_replica=(4,)))  # fmt: skip
    assert [(r.method, r.images_per_replica) for r in extra] == [("syncbn", 8), ("bn+ws", 8), ("brn", 4)]


def test_every_table3_setting_divides_every_layer():
    config = _config()
    # The channels of the normalized layers of the model itself, and the
    # list the checks use (normalized_channels) agrees with them.
    model = resnet(config.depth, norm="gn", groups=1, width=config.width, stem="small", input_shape=(8, 8, 1))
    channels = sorted({layer.input.shape[-1] for layer in model.layers if isinstance(layer, GroupNormalization)})
    assert normalized_channels(config.depth, config.width) == channels
    for g in config.table3_groups:
        assert all(c % g == 0 for c in channels)
    for s in config.table3_group_sizes:
        assert all(c % s == 0 for c in channels)
    assert max(config.table3_groups) == max(d for d in range(1, 65) if all(c % d == 0 for c in channels))


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"norms": ("bn", "gnn")}, "unknown norm 'gnn'"),
        ({"table3_groups": (1, 7), "exhibits": ("all",)}, r"table3_groups: \[7\] do not divide every layer's channels"),
        ({"exposure_norms": ("bn", "gnn")}, "unknown norm 'gnn'"),
        ({"exposure_exhibit": (2.5,)}, r"exposure_exhibit is GAIN,OFFSET"),
        ({"groups": 32}, r"groups: \[32\] do not divide"),
        ({"exhibits": ("table9",)}, "unknown exhibit 'table9'"),
        ({"images_per_replica": (64,), "train_examples": 200}, r"\[64\] x 4 replicas is more than the 200 training"),
        ({"norms": ("gn+wss",)}, "unknown norm 'gn\\+wss'"),
    ],
)
def test_bad_settings_fail_before_training(overrides, message):
    with pytest.raises(ValueError, match=message):
        study.plan(_config(**overrides))


# ------------------------------------------------------------ the report


def _result(norm, batch, seed, val, train=None, groups=None, group_size=None, epochs=3, ws=False):
    curve = list(np.linspace(val + 0.3, val, epochs))
    train = val - 0.02 if train is None else train
    return {
        "norm": norm,
        "ws": ws,
        "images_per_replica": batch,
        "seed": seed,
        "groups": groups,
        "group_size": group_size,
        "val_error": val,
        "train_error": train,
        "val_error_per_epoch": curve,
        "train_error_per_epoch": list(np.linspace(train + 0.3, train, epochs)),
        "wall_seconds": 1.0,
        "optimizer_steps": 10,
    }


def _paper_like_results():
    """Results shaped like the paper's numbers (fractions), two seeds."""
    out = []
    for seed, noise in ((0, -0.002), (1, 0.002)):
        for b, e in {32: 0.236, 16: 0.237, 8: 0.248, 4: 0.273, 2: 0.347}.items():
            out.append(_result("bn", b, seed, e + noise, train=0.20))
        for b, e in {32: 0.241, 16: 0.242, 8: 0.240, 4: 0.242, 2: 0.241}.items():
            out.append(_result("gn", b, seed, e + noise, groups=8, train=0.19))
        # Beyond the paper's Table 2: Batch Renorm at 4 (its Section 4.1) and GN+WS.
        out.append(_result("brn", 4, seed, 0.263 + noise))
        for b, e in {32: 0.238, 16: 0.239, 8: 0.237, 4: 0.239, 2: 0.238}.items():
            out.append(_result("gn", b, seed, e + noise, groups=8, train=0.18, ws=True))
        out.append(_result("ln", 32, seed, 0.253 + noise))
        out.append(_result("in", 32, seed, 0.284 + noise))
        for g, e in {2: 0.247, 4: 0.246, 16: 0.246}.items():
            out.append(_result("gn", 32, seed, e + noise, groups=g))
        for s, e in {2: 0.256, 4: 0.245, 8: 0.244}.items():
            out.append(_result("gn", 32, seed, e + noise, group_size=s))
    return out


def test_report_tables_and_claims_from_known_results(tmp_path):
    config = _config(output_dir=str(tmp_path), groups=8, exhibits=("table2", "table1", "table3"))
    results = _paper_like_results()
    report = study.report_markdown(results, config)
    assert "| BN | 23.60 ± 0.28 | 23.70 ± 0.28 | 24.80 ± 0.28 | 27.30 ± 0.28 | 34.70 ± 0.28 |" in report
    assert "| GN − BN | +0.50 | +0.50 | -0.80 | -3.10 | -10.60 |" in report
    assert "| validation error | 23.60 ± 0.28 | 25.30 ± 0.28 | 28.40 ± 0.28 | 24.10 ± 0.28 |" in report
    assert "| paper, validation error | 23.6 | 25.3 | 28.4 | 24.1 |" in report
    assert "| error | 25.30 ± 0.28 | 24.70 ± 0.28 | 24.60 ± 0.28 | 24.10 ± 0.28 | 24.60 ± 0.28 |" in report
    # Batch Renorm's one cell, next to the paper's 26.3; GN+WS's row and Table 1 column.
    assert "| BRN |  |  |  | 26.30 ± 0.28 |  |" in report and "| paper BRN |  |  |  | 26.3 |  |" in report
    assert "| GN+WS | 23.80 ± 0.28 | 23.90 ± 0.28 | 23.70 ± 0.28 | 23.90 ± 0.28 | 23.80 ± 0.28 |" in report
    assert "| validation error | 23.60 ± 0.28 | 25.30 ± 0.28 | 28.40 ± 0.28 | 24.10 ± 0.28 | 23.80 ± 0.28 |" in report
    # LN and IN (Table 1's runs at 32 images) are not rows of Table 2.
    table2 = report[report.index("## Table 2") : report.index("## Table 1")]
    assert "| LN |" not in table2 and "| IN |" not in table2 and "| BRN |" in table2
    verdicts = {(e, c): h for e, c, h, _ in study.claims(results, config)}
    # The paper's own numbers satisfy every claim (and these GN+WS numbers the new ones).
    assert all(verdicts.values()) and len(verdicts) == 12
    study.write_report(results, config)
    for name in ("figure1.png", "figure4.png", "table3.png"):
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_claims_fail_where_the_numbers_say_so():
    config = _config(groups=8, exhibits=("table2", "table1", "table3"))
    results = _paper_like_results()
    for r in results:
        if r["norm"] == "gn" and r["groups"] == 8 and r["images_per_replica"] == 32:
            r["val_error"] += 0.03  # GN 3 points behind BN at 32
            r["train_error"] = 0.25  # and training worse
        if r["norm"] == "bn" and r["images_per_replica"] == 4:
            r["val_error"] = 0.40  # BN worse at 4 than at 2
        if r["norm"] == "brn":
            r["val_error"] = 0.45  # Batch Renorm worse than BN at 4
        if r["ws"] and r["images_per_replica"] == 2:
            r["val_error"] = 0.30  # GN+WS falls apart at 2
    verdicts = {c: h for _, c, h, _ in study.claims(results, config)}
    assert verdicts["GN − BN at 32 images within +1.5 points"] is False
    assert verdicts["BN's error rises as the batch falls from 16 to 2"] is False
    assert verdicts["GN's spread over 32…2 images at most 1.5 points"] is False
    assert verdicts["BN and GN within 1.5 points at 32 images"] is False
    assert verdicts["GN's final training error at or below BN's"] is False
    assert verdicts["BN at 2 images at least 5 points worse than at 32"] is True
    assert verdicts["at 4 images, GN below Batch Renorm below BN"] is False
    assert verdicts["GN+WS's spread over 32…2 images at most 1.5 points"] is False
    # GN+WS at 32 (23.8) is now nearer BN than GN (26.6) is.
    assert verdicts["GN+WS's gap to BN at 32 images smaller than GN's"] is True


def test_exposure_and_bn_error_from_known_results(tmp_path):
    config = _config(
        output_dir=str(tmp_path), groups=8, exhibits=("table2", "exposure"), exposure_images_per_replica=(32, 2)
    )
    results = [r for r in _paper_like_results() if r["images_per_replica"] in (32, 16, 8, 4, 2)]
    for r in results:
        if r["norm"] in ("bn", "brn"):  # moving averages as deployed; precise 1 point better; batch statistics as at 32
            r["bn_error"] = {"moving_averages": r["val_error"], "precise": r["val_error"] - 0.01,
                             "batch_statistics": 0.24 + (0.02 if r["images_per_replica"] == 2 else 0.0)}  # fmt: skip
    exposed = []
    for seed in (0, 1):
        for b, (bn, gn) in {32: (0.25, 0.26), 2: (0.45, 0.265)}.items():
            exposed += [dict(_result("bn", b, seed, bn), exposure=[2.5, 1.0]),
                        dict(_result("gn", b, seed, gn, groups=8), exposure=[2.5, 1.0])]  # fmt: skip
    report = study.report_markdown(results + exposed, config)
    assert "| BN, moving averages (as deployed) | 23.60 ± 0.28 |" in report
    assert "| BN, precise statistics | 22.60 ± 0.28 |" in report
    assert "| BN, each validation batch's statistics | 24.00 ± 0.00 |" in report
    # BN's loss 32 -> 2: 11.1 points with moving averages, 2 with batch statistics: 9.1 the mismatch.
    assert "is +11.10 points with the moving averages, +11.10 with precise statistics and +2.00" in report
    assert "the train/test mismatch, is +9.10 points (of which +0.00 is the moving averages' own error)" in report
    assert (
        "| BN, exposed | 25.00 ± 0.00 | 45.00 ± 0.00 |" in report
        and "| BN, plain | 23.60 ± 0.28 | 34.70 ± 0.28 |" in report
    )
    verdicts = {c: (h, n) for e, c, h, n in study.claims(results + exposed, config) if e.startswith("exposure")}
    assert verdicts["BN loses more from 32 to 2 images on exposed images than on plain ones"] == (
        True, "BN's loss: plain +11.10, exposed +20.00 points")  # fmt: skip
    assert verdicts["GN's change from 32 to 2 images on exposed images at most 1.5 points"] == (True, "+0.50 points")
    # Without the exposed runs the claim is not measured; the plain ones alone do not make it hold.
    assert [h for e, _, h, _ in study.claims(results, config) if e.startswith("exposure")] == [None]
    study.write_report(results + exposed, config)
    for name in ("bn_error.png", "exposure.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_seed_shows_no_spread():
    config = _config(groups=8, exhibits=("table2",), epochs=1)
    results = [r for r in _paper_like_results() if r["seed"] == 0]
    report = study.report_markdown(results, config)
    assert "| BN | 23.40 | 23.50 |" in report
    assert "±" not in report and "one seed (no spread)" in report and "1 epoch at every batch" in report


# ------------------------------------------------------------ resume


def test_interrupted_study_skips_finished_runs(tmp_path, monkeypatch):
    config = _config(output_dir=str(tmp_path), exhibits=("table2",), images_per_replica=(8, 4), norms=("bn",), **TINY)
    trained = []
    real = study.train_one

    def train_then_stop(config, data, run, strategy=None):
        trained.append(run)
        if len(trained) == 2:
            raise KeyboardInterrupt  # killed during the second run
        return real(config, data, run, strategy)

    monkeypatch.setattr(study.run, "train_one", train_then_stop)
    with pytest.raises(KeyboardInterrupt):
        study.run_study(config, log=lambda line: None)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(r["norm"], r["images_per_replica"]) for r in saved] == [("bn", 8)]

    trained.clear()
    monkeypatch.setattr(study.run, "train_one", real)
    lines = []
    results = study.run_study(config, log=lines.append)
    assert "2 runs, 1 already in" in lines[0]
    assert sorted(r["images_per_replica"] for r in results) == [4, 8]
    assert lines[1].startswith("[2/2] bn") and "min left" in lines[1]
    # The finished run was kept as it was, not retrained.
    assert results[0] == saved[0]

    # A folder of another protocol is refused, not mixed.
    with pytest.raises(ValueError, match="holds runs of another protocol .*epochs"):
        study.run_study(dataclasses.replace(config, epochs=2), log=lambda line: None)


@pytest.mark.parametrize(
    "protocol,differs",
    [
        ("one_replica", r".*replicas"),  # one replica per step
        ("three_stages", r"depth, .*stem, warmup_epochs\)"),  # three stages, no warm-up
    ],
)
def test_a_results_folder_of_an_earlier_protocol_is_refused(tmp_path, protocol, differs):
    """A committed study of an earlier protocol, as the results folder of
    the current one: refused, naming what differs, not mixed in."""
    old = os.path.join(ROOT, "docs", "classification_study", protocol, "results.json")
    (tmp_path / "results.json").write_text(open(old).read())
    config = _config(output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"holds runs of another protocol \(different " + differs):
        study.run_study(config, log=lambda line: None)


def test_run_records_per_epoch_curves_and_its_schedule(tmp_path):
    config = _config(output_dir=str(tmp_path), **dict(TINY, epochs=2))
    data = study.load_data(config)
    result = study.train_one(config, data, study.Run("gn", 8, 0, groups=4))
    assert len(result["train_error_per_epoch"]) == len(result["val_error_per_epoch"]) == 2
    assert result["val_error"] == result["val_error_per_epoch"][-1]
    assert result["optimizer_steps"] == 2 * (96 // (2 * 8))
    assert result["global_batch"] == 16 and result["replicas"] == 2 and result["method"] == "gn"
    # Its network (depth 8: two stages, 14 and 7 pixels after the strided stem) and one epoch of warm-up.
    assert result["protocol"]["network"] == {"stages": 2, "map_sizes": [[14, 14], [7, 7]]}
    assert result["protocol"]["stem"] == "strided" and result["warmup_steps"] == 96 // 16
    assert "bn_error" not in result  # GN has no batch statistics
    values, _ = study.learning_rates(config, 8)
    assert result["learning_rate"] == pytest.approx(values[0])
    assert result["final_learning_rate"] == pytest.approx(values[-1])
    json.dumps(result)


# ------------------------------------------------------------ the binary


def _sweep(*flags, timeout=600):
    """The study's binary with `flags`, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "experiments.batch_size_sweep", *flags],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    result = _sweep("--quick", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


@pytest.mark.large
def test_quick_run_fills_every_exhibit(quick_run):
    out, stdout = quick_run
    runs = json.loads((out / "results.json").read_text())
    config = dataclasses.replace(study.StudyConfig(), **study.QUICK)
    assert sorted(
        str((r["method"], r["images_per_replica"], r["groups"], r["group_size"], r["exposure"])) for r in runs
    ) == sorted(
        str((r.method, r.images_per_replica, r.groups, r.group_size, list(r.exposure))) for r in study.plan(config)
    )
    # GN+WS at every batch, Batch Renorm at 4, each with its replicas, global batch and learning rate.
    assert {r["images_per_replica"] for r in runs if r["method"] == "gn+ws"} == {32, 2}
    assert [r["images_per_replica"] for r in runs if r["method"] == "brn"] == [4]
    for r in runs:
        assert r["replicas"] == 4 and r["global_batch"] == 4 * r["images_per_replica"]
        assert r["learning_rate"] == pytest.approx(0.1 * r["global_batch"] / 64)
    for r in runs:
        assert {
            "norm",
            "images_per_replica",
            "groups",
            "seed",
            "train_error_per_epoch",
            "val_error_per_epoch",
            "val_error",
            "wall_seconds",
        } <= set(r)
        assert len(r["val_error_per_epoch"]) == config.epochs
    report = (out / "report.md").read_text()
    # Table 2: its columns 32, 4 (Batch Renorm's) and 2; each row filled at
    # its own batches. Tables 1 and 3: every cell.
    table2 = report[report.index("## Table 2") : report.index("### BN's error taken apart")]
    assert "| images per replica | 32 | 4 | 2 |" in table2
    assert "| BRN |  | " in table2 and " |  |\n" in table2.split("| BRN |")[1][:40]
    for label in ("BN", "GN", "GN+WS"):
        row = next(line for line in table2.splitlines() if line.startswith(f"| {label} |"))
        cells = [c.strip() for c in row.split("|")[2:-1]]
        assert cells[0] and not cells[1] and cells[2], row
    rest = report[report.index("## Table 1") : report.index("## The paper's claims here")]
    rows = [line for line in rest.splitlines() if line.startswith("| ") and not line.startswith("| paper")]
    for row in rows:
        cells = [c.strip() for c in row.split("|")[2:-1]]
        assert all(cells) or row.startswith("| |"), row  # every cell filled
    assert "## The paper's claims here" in report and "not measured" in report  # the quick run lacks 16, 8 and 4
    for name in ("figure1.png", "figure4.png", "table3.png", "bn_error.png", "exposure.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # BN's error taken apart for every BN and Batch Renorm run, on plain and exposed images.
    for r in runs:
        assert ("bn_error" in r) == (r["norm"] in ("bn", "brn")), r["method"]
        if "bn_error" in r:
            assert r["bn_error"]["moving_averages"] == pytest.approx(r["val_error"], abs=1e-6)
            assert r["bn_error"]["precise_images"] == 500 and all(
                0 <= r["bn_error"][k] <= 1 for k in ("precise", "batch_statistics")
            )
    decomposition = report[report.index("### BN's error taken apart") : report.index("## Exposure")]
    assert "| images per replica | 32 | 4 | 2 |" in decomposition  # BN's batches and Batch Renorm's
    for row in [line for line in decomposition.splitlines() if line.startswith(("| BN, ", "| BRN, "))]:
        cells = [c.strip() for c in row.split("|")[2:-1]]
        assert (bool(cells[0]), bool(cells[1]), bool(cells[2])) == (
            (False, True, False) if "BRN" in row else (True, False, True)
        ), row
    assert "the train/test mismatch, is" in decomposition
    # The exposure exhibit: BN, GN and GN+WS at 32 and 2, plain and exposed, every cell filled.
    assert {(r["method"], r["images_per_replica"]) for r in runs if r["exposure"]} == {
        (m, b) for m in ("bn", "gn", "gn+ws") for b in (32, 2)
    }
    exposure = report[report.index("## Exposure") : report.index("## Table 1")]
    rows = [line for line in exposure.splitlines() if line.startswith(("| BN,", "| GN,", "| GN+WS,"))]
    assert len(rows) == 6 and all(all(c.strip() for c in row.split("|")[2:-1]) for row in rows)
    assert "BN loses more from 32 to 2 images on exposed images" in report
    n = len(runs)
    assert f"[{n}/{n}]" in stdout and "min left" in stdout


@pytest.mark.large
def test_quick_run_started_again_trains_nothing(quick_run):
    out, _ = quick_run
    before = (out / "results.json").read_text()
    result = _sweep("--quick", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    n = len(json.loads(before))
    assert f"{n} runs, {n} already in" in result.stdout and "[1/" not in result.stdout
    assert (out / "results.json").read_text() == before


def test_bad_flag_is_one_line_before_training(tmp_path):
    result = _sweep("--exhibits=all", "--table3_groups=1,7", f"--output_dir={tmp_path}/x", timeout=120)
    assert result.returncode != 0 and "do not divide every layer's channels" in result.stderr
    assert "Traceback" not in result.stderr and not os.path.exists(tmp_path / "x")


@pytest.mark.large
def test_killed_study_leaves_no_worker_behind(tmp_path):
    psutil = pytest.importorskip("psutil")
    import signal
    import time

    study_process = subprocess.Popen(
        [sys.executable, "-m", "experiments.batch_size_sweep", "--quick", "--workers=2", f"--output_dir={tmp_path}"],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    parent = psutil.Process(study_process.pid)
    deadline = time.time() + 120
    workers = []
    while time.time() < deadline and len(workers) < 2:
        workers = [p for p in parent.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
        time.sleep(0.2)
    assert len(workers) == 2, "the study never started its two workers"
    study_process.send_signal(signal.SIGKILL)
    study_process.wait()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"workers still running after their study was killed: {alive}"


# ------------------------------------------------------------ the four-stage protocol


def test_strided_stem_gives_four_stages_of_14_7_4_2_pixels():
    from keras_gn.study.run import network

    model = resnet(14, norm="gn", groups=4, width=8, stem="strided", num_classes=10, input_shape=(28, 28, 1))
    assert model.get_layer("stem_conv").output.shape[1:3] == (14, 14)
    assert network(model) == {"stages": 4, "map_sizes": [[14, 14], [7, 7], [4, 4], [2, 2]]}
    # The other stems, for comparison: the ImageNet stem's stride 4 leaves 1x1 maps at 28 pixels.
    small = resnet(14, norm="gn", groups=4, width=8, stem="small", num_classes=10, input_shape=(28, 28, 1))
    assert network(small)["map_sizes"] == [[28, 28], [14, 14], [7, 7], [4, 4]]
    imagenet = resnet(14, norm="gn", groups=4, width=8, num_classes=10, input_shape=(28, 28, 1))
    assert network(imagenet)["map_sizes"] == [[7, 7], [4, 4], [2, 2], [1, 1]]
    with pytest.raises(ValueError, match="stem must be one of 'imagenet', 'small', 'strided'; got 'tiny'"):
        resnet(14, stem="tiny")


def test_warmup_ramps_linearly_then_the_steps_follow():
    config = _config(train_examples=6000, epochs=10, replicas=4, base_learning_rate=0.1, base_batch=256,
                     warmup_epochs=1.0)  # fmt: skip
    plan = study.run_schedule(config, 8)
    assert (plan.global_batch, plan.steps_per_epoch, plan.warmup_steps) == (32, 187, 187)
    peak = 0.1 * 32 / 256
    lr = plan.learning_rate()
    rate = lambda step: float(lr(step))
    # Step 0 takes 1/W of the peak, step W - 1 all of it, linearly between.
    assert rate(0) == pytest.approx(peak / 187) and rate(92) == pytest.approx(peak * 93 / 187)
    assert rate(186) == pytest.approx(peak) and rate(187) == pytest.approx(peak)
    assert plan.boundaries == (561, 1122, 1683)
    assert rate(561) == pytest.approx(peak) and rate(562) == pytest.approx(peak / 10)
    # The schedule survives the optimizer's config (a saved model resumes with it).
    config = keras.optimizers.SGD(learning_rate=lr).get_config()["learning_rate"]
    again = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert [float(again(s)) for s in (0, 100, 600)] == pytest.approx([rate(0), rate(100), rate(600)])
    # No warm-up: the piecewise schedule itself.
    assert isinstance(study.schedule(_config(warmup_epochs=0.0), 8), keras.optimizers.schedules.PiecewiseConstantDecay)
    # keras-gn-imagenet's schedule takes the same warm-up.
    from keras_gn.train import learning_rate_schedule

    imagenet = learning_rate_schedule(0.1, 256, (30, 60, 90), 256, 100, warmup_epochs=5)
    assert float(imagenet(0)) == pytest.approx(0.1 / 500) and float(imagenet(499)) == pytest.approx(0.1)


def test_exposure_is_seeded_per_image_the_same_for_every_run_and_on_both_splits():
    from keras_gn.data.arrays import exposed

    config = _config(train_examples=300, eval_examples=200)
    data = study.load_data(config)
    once, twice = exposed(data, (2.5, 1.0)), exposed(data, (2.5, 1.0))
    assert exposed(data, ()) is data
    for split in (0, 1):
        x, x_exposed = data[split][0], once[split][0]
        np.testing.assert_array_equal(x_exposed, twice[split][0])  # deterministic
        np.testing.assert_array_equal(data[split][1], once[split][1])  # labels untouched
        # Each image is g x + o: recover g and o per image by least squares.
        flat, out = x.reshape(len(x), -1).astype(np.float64), x_exposed.reshape(len(x), -1).astype(np.float64)
        g = ((flat - flat.mean(1, keepdims=True)) * (out - out.mean(1, keepdims=True))).sum(1) / (
            (flat - flat.mean(1, keepdims=True)) ** 2
        ).sum(1)
        o = out.mean(1) - g * flat.mean(1)
        np.testing.assert_allclose(out, g[:, None] * flat + o[:, None], atol=1e-4)
        assert 0.4 - 1e-6 <= g.min() and g.max() <= 2.5 + 1e-6 and np.abs(o).max() <= 1.0 + 1e-6
        assert g.max() / g.min() > 4 and np.ptp(o) > 1.5  # the whole range is used
    # Training and validation images get draws of their own seeds.
    assert not np.allclose(once[0][0][:200].mean((1, 2, 3)) - data[0][0][:200].mean((1, 2, 3)),
                           once[1][0].mean((1, 2, 3)) - data[1][0].mean((1, 2, 3)))  # fmt: skip
    # The plan: every method of the exhibit on the same exposure; Table 2 on the plain images.
    runs = study.plan(_config(seeds=1))
    assert {r.exposure for r in runs if r.method in ("bn", "gn", "gn+ws")} == {(), (2.5, 1.0)}
    assert {(r.method, r.images_per_replica) for r in runs if r.exposure} == {
        (m, b) for m in ("bn", "gn", "gn+ws") for b in (32, 8, 2)
    }
    # A result read back from JSON matches its run.
    run = next(r for r in runs if r.exposure)
    assert run.matches(json.loads(json.dumps(dataclasses.asdict(run))))
    assert not run.matches({**json.loads(json.dumps(dataclasses.asdict(run))), "exposure": []})
    with pytest.raises(ValueError, match="exposure is GAIN,OFFSET with GAIN >= 1"):
        study.plan(_config(exposure=(0.5, 1.0)))


def _bn_model(renorm=False):
    """Dense -> BN -> ReLU -> Dense -> BN (two levels), random gammas and betas."""
    from keras_gn import VirtualReplicaBatchNormalization

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8)(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-3, renorm=renorm)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dense(4)(x)
    x = VirtualReplicaBatchNormalization(virtual_replicas=2, epsilon=1e-3)(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
            layer.beta.assign(rng.normal(size=layer.beta.shape))
    return model


def test_precise_statistics_equal_float64_numpy_over_the_same_images():
    from keras_gn.study import bn_error

    model = _bn_model()
    x = (np.random.default_rng(1).normal(size=(1000, 6)) * 3 + 1).astype(np.float32)
    precise = bn_error.precise_statistics(model, x, batch_size=100)
    # The reference, layer after layer in float64: BN 1's population
    # statistics, then BN 2's over features normalized by them.
    (w1, b1), (g1, beta1, *_), (w2, b2) = ([np.float64(v) for v in model.layers[i].get_weights()] for i in (1, 2, 4))
    h1 = x.astype(np.float64) @ w1 + b1
    z1 = np.maximum(g1 * (h1 - h1.mean(0)) / np.sqrt(h1.var(0) + 1e-3) + beta1, 0.0)
    h2 = z1 @ w2 + b2
    first, second = bn_error.bn_layers(precise)
    for layer, h in ((first, h1), (second, h2)):
        np.testing.assert_allclose(layer.moving_mean.numpy(), h.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance.numpy(), h.var(0), rtol=1e-5)
    # The model itself keeps its moving averages; the batch size only bounds memory.
    assert np.all(bn_error.bn_layers(model)[0].moving_mean.numpy() == 0)
    other = bn_error.precise_statistics(model, x, batch_size=250)
    np.testing.assert_allclose(bn_error.bn_layers(other)[1].moving_variance.numpy(), h2.var(0), rtol=1e-5)


@pytest.mark.parametrize("renorm", [False, True])
def test_batch_statistics_evaluation_equals_bn_in_training_mode_on_each_batch(renorm):
    from keras_gn.study import bn_error

    model = _bn_model(renorm)
    x = np.random.default_rng(2).normal(size=(203, 6)).astype(np.float32)
    logits = bn_error.batch_statistics_logits(model, x, images_per_batch=4)
    assert logits.shape == (200, 4)  # the last 3 images make no batch of 4
    # The reference: the model built with plain BN (Batch Renorm's r and d
    # are training-time corrections), in training mode on each batch of 4.
    plain = _bn_model(renorm=False)
    for old, new in zip(model.layers, plain.layers):
        if isinstance(old, keras.layers.BatchNormalization):
            new.set_weights(
                [keras.ops.convert_to_numpy(v) for v in (old.gamma, old.beta, old.moving_mean, old.moving_variance)]
            )
        else:
            new.set_weights(old.get_weights())
    for layer in plain.layers:
        if hasattr(layer, "virtual_replicas"):
            layer.virtual_replicas = 1
    reference = np.concatenate([plain(x[i : i + 4], training=True).numpy() for i in range(0, 200, 4)])
    np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-5)
    # Not the inference outputs (which use the moving averages).
    assert not np.allclose(logits, model.predict(x[:200], verbose=0), atol=1e-2)
    assert bn_error.error(logits, np.argmax(reference, -1)) == 0.0


def test_the_study_runs_on_a_tfds_data_set_of_natural_images(tmp_path):
    """--dataset=cifar10 (a prepared TFDS data set): the same runs, on 32x32
    colour images (TFDS's mock data here: nothing is downloaded)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    config = _config(output_dir=str(tmp_path), dataset="cifar10", exposure=(2.0, 0.5), **dict(TINY, eval_examples=16))
    with tfds.testing.mock_data(num_examples=128):
        data = study.load_data(config)
    (x_train, _), (x_eval, _), classes, source = data
    assert x_train.shape == (96, 32, 32, 3) and x_eval.shape == (16, 32, 32, 3) and classes == 10
    result = study.train_one(config, data, study.Run("bn", 8, 0, exposure=config.exposure))
    assert result["protocol"]["network"]["map_sizes"] == [[16, 16], [8, 8]]
    assert result["protocol"]["dataset"] == "cifar10" and tuple(result["exposure"]) == (2.0, 0.5)
    assert 0 <= result["bn_error"]["precise"] <= 1
