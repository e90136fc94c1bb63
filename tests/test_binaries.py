"""The binaries against a careless user: one run per folder, finished runs
kept, unreadable checkpoints named, every bad flag one line with exit code 2
before anything is written, the console scripts from any folder, quiet logs,
and two workers of MultiWorkerMirroredStrategy on 127.0.0.1.

Tiny models on synthetic data; each binary is a subprocess (about 5 s to
start TensorFlow)."""

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from binaries import ROOT, env

# 2 epochs of 4 steps (32 examples, 8 per step) on a ResNet-8 of width 8.
TINY = [
    "--dataset=synthetic",
    "--depth=8",
    "--width=8",
    "--groups=4",
    "--stem=small",
    "--image_size=8",
    "--synthetic_classes=4",
    "--synthetic_examples=32",
    "--images_per_replica=8",
    "--nojit_compile",
]


def _script(name):
    path = shutil.which(name)
    assert path, f"{name} is not installed: `pip install -e .` installs the console scripts (setup.cfg)."
    return path


def _env(**extra):
    environment = env()
    environment.pop("TF_CPP_MIN_LOG_LEVEL")  # the binaries' own default: quiet
    return dict(environment, **extra)


def _run(command, cwd=ROOT, timeout=300):
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _start(command, **extra_env):
    return subprocess.Popen(
        command, cwd=ROOT, env=_env(**extra_env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _imagenet(model_dir, *flags):
    return [sys.executable, "-m", "experiments.imagenet_resnet", *TINY, f"--model_dir={model_dir}", *flags]


def _wait_for(predicate, process, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        assert process.poll() is None, "the run ended early:\n" + process.communicate()[0][-3000:]
        time.sleep(0.1)
    raise AssertionError("timed out")


def _epochs_backed_up(model_dir):
    try:
        return json.loads((model_dir / "backup" / "training_metadata.json").read_text())["epoch"]
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def test_second_run_into_a_live_folder_stops_and_a_killed_runs_lock_is_taken_over(tmp_path):
    model_dir = tmp_path / "run"
    first = _start(_imagenet(model_dir, "--epochs=200"))
    try:
        _wait_for(lambda: _epochs_backed_up(model_dir) >= 1, first)
        second = _run(_imagenet(model_dir, "--epochs=200"), timeout=120)
        assert second.returncode == 1, second.stderr
        assert f"{model_dir} is in use by another run (process {first.pid} on " in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    done = _epochs_backed_up(model_dir)
    assert (model_dir / "run.lock").exists()  # left behind by the kill
    third = _run(_imagenet(model_dir, f"--epochs={done + 1}"))
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"from a run that is no longer alive (process {first.pid} on " in third.stdout
    assert f"Resumed from the last backup at optimizer step {4 * done}." in third.stdout
    assert not (model_dir / "run.lock").exists()


def test_finished_run_is_kept_and_overwrite_starts_afresh(tmp_path):
    model_dir = tmp_path / "run"
    first = _run(_imagenet(model_dir, "--epochs=1"))
    assert first.returncode == 0, first.stderr[-3000:]
    results = (model_dir / "results.json").read_text()
    events = sorted(p.name for p in (model_dir / "tensorboard").rglob("events.out.tfevents*"))

    again = _run(_imagenet(model_dir, "--epochs=1"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"This run has finished: its results are in {model_dir}/results.json." in again.stdout
    assert "Training resnet8_gn" not in again.stdout and "--overwrite starts afresh" in again.stdout
    assert (model_dir / "results.json").read_text() == results
    assert sorted(p.name for p in (model_dir / "tensorboard").rglob("events.out.tfevents*")) == events

    fresh = _run(_imagenet(model_dir, "--epochs=1", "--overwrite"))
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "--overwrite: removed" in fresh.stdout and "Training resnet8_gn" in fresh.stdout
    new_events = sorted(p.name for p in (model_dir / "tensorboard").rglob("events.out.tfevents*"))
    assert len(new_events) == len(events) and new_events != events  # the old logs went


def test_truncated_backup_is_named_with_what_to_do(tmp_path):
    model_dir = tmp_path / "run"
    killed = _start(_imagenet(model_dir, "--epochs=200"))
    try:
        _wait_for(lambda: _epochs_backed_up(model_dir) >= 1, killed)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    backup = model_dir / "backup"
    for weights in backup.glob("*.weights.h5"):  # the last backup and, when there, the one before
        weights.write_bytes(weights.read_bytes()[:1000])
    result = _run(_imagenet(model_dir, "--epochs=200"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"cannot read the checkpoint {backup}/latest.weights.h5: it looks truncated or corrupt" in result.stderr
    assert f"Delete {backup} to train again" in result.stderr and "--overwrite" in result.stderr


@pytest.mark.parametrize(
    "cut", ["truncated weights", "empty metadata", "weights ahead of metadata"]
)  # fmt: skip
def test_a_kill_while_backing_up_falls_back_to_the_backup_before(tmp_path, cut, capsys):
    import keras
    import numpy as np

    from keras_gn.train.backup import Backup

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    backup_dir = tmp_path / "backup"
    x, y = np.ones((4, 3)), np.zeros((4, 2))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[Backup(str(backup_dir), write=True)])
    assert not backup_dir.exists()  # removed at the end of a finished fit, as Keras does
    # Two epochs backed up (one step each), then a kill while the third was written.
    callback = Backup(str(backup_dir))
    callback.set_model(model)
    for epoch in range(2):
        model.optimizer.iterations.assign_add(1)
        callback.on_epoch_end(epoch)
    weights, metadata = backup_dir / "latest.weights.h5", backup_dir / "training_metadata.json"
    if cut == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif cut == "empty metadata":
        metadata.write_text("")
    else:  # the weights of a third epoch renamed into place, the kill before the metadata's
        model.optimizer.iterations.assign_add(1)
        model.save_weights(str(weights))
    model.optimizer.iterations.assign(0)
    restored = Backup(str(backup_dir))
    restored.set_model(model)
    capsys.readouterr()
    restored.on_train_begin()
    assert model._initial_epoch == 1 and int(model.optimizer.iterations.numpy()) == 3  # the backup before the last
    # One line: the file passed over, why, and the epoch training starts again at.
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    reason = {
        "truncated weights": "(OSError: ",
        "empty metadata": "(JSONDecodeError: ",
        "weights ahead of metadata": "(ValueError: its weights are at step 5",
    }[cut]
    assert lines[0].startswith(f"Passed over the last backup {weights}: it cannot be read {reason}"), lines[0]
    previous = backup_dir / "previous.weights.h5"
    assert lines[0].endswith(f"before it ({previous}): training starts again at epoch 2."), lines[0]


BAD_FLAGS = {
    "count": (["imagenet"], ["--images_per_replica=0"], "--images_per_replica must be at least 1; got 0."),
    "groups": (["imagenet"], ["--groups=7"], "--groups: [7] do not divide every layer's channels [8, 16, 32, 64]"),
    "depth": (["imagenet"], ["--depth=9"], "--depth=9: choose from 8, 11, 14, 18, 26, 34, 50, 101, 152."),
    "basic depth for I3D": (
        ["kinetics"],
        ["--depth=18"],
        "--depth=18: I3D inflates bottleneck blocks; choose from 8, 11, 14, 26, 50, 101, 152.",
    ),
    "norm": (["imagenet"], ["--norm=gnn"], "flag --norm=gnn: value should be one of <bn|syncbn|frozen_bn|"),
    "no data_dir": (
        ["imagenet"],
        ["--dataset=imagenet2012", "--data_dir={tmp}/nothing"],
        "--data_dir={tmp}/nothing does not exist; it should hold the prepared TFDS data set 'imagenet2012'",
    ),
    "no data": (
        ["imagenet"],
        ["--dataset=imagenet2012", "--data_dir={tmp}"],
        "--dataset=imagenet2012: could not find data in {tmp}/imagenet2012/",
    ),
    "model_dir": (["imagenet"], ["--model_dir={tmp}/file/run"], "--model_dir={tmp}/file/run cannot be written"),
    "remote model_dir": (["imagenet"], ["--model_dir=gs://bucket/run"], "--model_dir=gs://bucket/run: remote storage"),
    "jit on cpus": (
        ["imagenet"],
        ["--strategy=mirrored", "--num_gpus=2", "--cpu_devices=2", "--jit_compile"],
        "--jit_compile: XLA cannot compile one training step over several logical CPU devices",
    ),
    "too many replicas": (
        ["imagenet"],
        ["--strategy=mirrored", "--num_gpus=3", "--cpu_devices=2"],
        "--num_gpus=3 replicas asked for, but only 2 CPU devices",
    ),
    "leftover": (["imagenet"], ["run2"], "unexpected argument(s) run2; every setting is a --flag"),
    "video init": (
        ["kinetics"],
        ["--init_checkpoint={tmp}/r50.keras", "--frames=2"],
        "--init_checkpoint={tmp}/r50.keras not found",
    ),
    "study norms": (["study"], ["--norms=bn,gnn"], "unknown norm 'gnn'"),
    "study groups": (["study"], ["--groups=7"], "groups: [7] do not divide every layer's channels"),
    "coco experiment": (["coco"], ["--experiment=maskrcnn_r50"], "Unknown experiment 'maskrcnn_r50'"),
    "coco data": (["coco"], ["--data_dir={tmp}/coco", "--init_checkpoint="], "--data_dir={tmp}/coco does not exist"),
}
BINARIES = {
    "imagenet": ["experiments.imagenet_resnet", *TINY, "--model_dir={tmp}/run"],
    "kinetics": [
        "experiments.kinetics_i3d",
        "--dataset=synthetic",
        "--depth=8",
        "--width=8",
        "--groups=4",
        "--image_size=8",
        "--clips_per_replica=2",
        "--model_dir={tmp}/run",
    ],  # fmt: skip
    "study": ["experiments.batch_size_sweep", "--output_dir={tmp}/run"],
    "coco": ["experiments.coco_mask_rcnn", "--model_dir={tmp}/run"],
}


def test_every_bad_flag_is_one_line_exit_2_and_nothing_written(tmp_path):
    (tmp_path / "file").write_text("")

    def case(name):
        (binary,), flags, message = BAD_FLAGS[name]
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        command = [arg.format(tmp=folder) for arg in [sys.executable, "-m", *BINARIES[binary], *flags]]
        command = [c.replace(f"{folder}/file", f"{tmp_path}/file") for c in command]
        result = _run(command, timeout=180)
        return name, folder, message.format(tmp=folder).replace(f"{folder}/file", f"{tmp_path}/file"), result

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(case, BAD_FLAGS))
    for name, folder, message, result in outcomes:
        lines = [line for line in result.stderr.splitlines() if "has no dataset_info.json" not in line]  # TFDS's
        assert result.returncode == 2, (name, result.stderr[-2000:])
        assert len(lines) == 1 and "Traceback" not in result.stderr, (name, result.stderr[-2000:])
        assert ": error: " in lines[0] and message in lines[0], (name, lines[0])
        assert sorted(os.listdir(folder)) == [], (name, os.listdir(folder))  # nothing written


def test_console_script_runs_from_any_folder_quietly(tmp_path):
    result = _run([_script("keras-gn-imagenet"), *TINY, "--epochs=1", "--model_dir=run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "results.json").exists() and (tmp_path / "run" / "model.keras").exists()
    # Nothing on stderr: no TensorFlow start-up lines (CUDA probing, CPU
    # features, absl's C++ logs, INFO lines), and each of our lines once.
    assert result.stderr == "", result.stderr
    assert "tensorflow" not in result.stdout.lower() and "XLA" not in result.stdout, result.stdout
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), result.stdout
    # --verbose brings TensorFlow's own lines back; --help is the binary's documentation.
    help = _run([_script("keras-gn-imagenet"), "--verbose", "--help"], cwd=tmp_path)
    assert "keras-gn-imagenet: ResNet on ImageNet" in help.stdout and "--overwrite" in help.stdout
    assert "cpu_feature_guard" in help.stderr, help.stderr


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(model_dir, epochs, ports):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(len(ports)):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        command = _imagenet(model_dir, f"--epochs={epochs}", "--strategy=multi_worker_mirrored")
        processes.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=dict(env(), TF_CONFIG=tf_config),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
        )
    return processes


def _finish(processes, timeout=300):
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=timeout)
        assert process.returncode == 0, out[-3000:]
        outputs.append(out)
    return outputs


@pytest.mark.large  # two training processes, killed and restarted: 105 s of CI on its own
def test_two_workers_agree_the_chief_writes_and_a_killed_worker_resumes(tmp_path):
    model_dir = tmp_path / "run"
    chief, worker = _finish(_workers(model_dir, 2, _free_ports(2)))
    top1 = [line for line in chief.splitlines() if line.startswith("top-1 error")]
    assert top1 and top1[0].startswith("top-1 error") and f"results in {model_dir}/results.json" in top1[0]
    assert [line for line in worker.splitlines() if line.startswith("top-1 error")] == [
        top1[0].split(";")[0] + "; the chief writes the results"
    ]
    results = json.loads((model_dir / "results.json").read_text())
    assert results["replicas"] == 2 and results["global_batch"] == 16
    # One writer: one event file per split, the epoch checkpoints, no stray backups.
    assert len(list((model_dir / "tensorboard" / "train").glob("events*"))) == 1
    assert len(list((model_dir / "tensorboard" / "validation").glob("events*"))) == 1
    assert sorted(p.name for p in (model_dir / "checkpoints").iterdir()) == [
        "epoch_001.weights.h5",
        "epoch_002.weights.h5",
    ]
    assert not (model_dir / "backup").exists()

    # Kill one worker mid-run; the other fails (or is stopped); both restart and resume.
    model_dir = tmp_path / "killed"
    ports = _free_ports(2)
    processes = _workers(model_dir, 200, ports)
    try:
        _wait_for(lambda: _epochs_backed_up(model_dir) >= 1, processes[0])
        processes[1].send_signal(signal.SIGKILL)
        processes[1].wait()
        try:
            processes[0].wait(timeout=60)
        except subprocess.TimeoutExpired:
            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    done = _epochs_backed_up(model_dir)
    outputs = _finish(_workers(model_dir, done + 1, _free_ports(2)))
    for out in outputs:
        # 4 steps of 16 (2 workers x 8) per epoch.
        assert f"Resumed from the last backup at optimizer step {2 * done}." in out, out[-3000:]
        assert "Epoch 1/" not in out and f"Epoch {done + 1}/{done + 1}" in out
    assert json.loads((model_dir / "results.json").read_text())["epochs_run_in_this_process"] == 1


# Each binary's own flags, some of each: --help must list them (absl lists
# only the main module's key flags; the binaries define theirs in keras_gn).
OWN_FLAGS = {
    "keras-gn-imagenet": ("--norm", "--virtual_replicas", "--images_per_replica", "--model_dir", "--strategy"),
    "keras-gn-kinetics": ("--norm", "--frames", "--clips_per_replica", "--init_checkpoint", "--model_dir"),
    "keras-gn-study": ("--quick", "--replicas", "--norms", "--exhibits", "--output_dir"),
    "keras-gn-coco": ("--experiment", "--mode", "--init_checkpoint", "--params_override", "--model_dir"),
    "keras-gn-convert-backbone": ("--weights", "--keras_model", "--output", "--source"),
}


def test_help_lists_each_binarys_own_flags_with_defaults():
    def show(name):
        return name, _run([_script(name), "--help"], timeout=180)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(show, OWN_FLAGS))
    for name, result in outcomes:
        # absl's --help exits with status 1.
        assert result.returncode == 1 and "Traceback" not in result.stderr, (name, result.stderr[-2000:])
        listed = {line.split(":")[0].strip().replace("--[no]", "--") for line in result.stdout.splitlines()}
        missing = [flag for flag in OWN_FLAGS[name] if flag not in listed]
        assert not missing, (name, missing, result.stdout[-3000:])
        assert "(default: " in result.stdout, name
        # absl's and TensorFlow's own flags stay behind --helpfull.
        assert "--log_dir" not in listed and "--helpfull" in result.stdout, name
