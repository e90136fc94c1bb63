"""keras_gn.apps.runs (one run per folder) and keras_gn._startup (which
processes are binaries), in process."""

import json
import os
import socket
import subprocess
import sys

import pytest

from keras_gn import _startup
from keras_gn.apps import runs
from keras_gn.errors import RunError


def _lock(folder, **owner):
    folder.mkdir(exist_ok=True)
    (folder / runs.LOCK).write_text(json.dumps({"host": socket.gethostname(), "time": 0, **owner}))


def test_claim_holds_the_folder_and_lets_go(tmp_path):
    with runs.claim(str(tmp_path / "run"), outputs=()) as finished:
        assert finished is None
        owner = json.loads((tmp_path / "run" / runs.LOCK).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(RunError, match=f"{tmp_path}/run is in use by another run \\(process {os.getpid()} on "):
            with runs.claim(str(tmp_path / "run"), outputs=()):
                pass
    assert not (tmp_path / "run" / runs.LOCK).exists()


def test_lock_of_a_live_process_or_another_host_is_respected(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path / "a", pid=live.pid)
        with pytest.raises(RunError, match=f"process {live.pid} on "):
            with runs.claim(str(tmp_path / "a"), outputs=()):
                pass
    finally:
        live.kill()
        live.wait()
    _lock(tmp_path / "b", pid=1, host="elsewhere")
    with pytest.raises(RunError, match="process 1 on elsewhere.*delete .*run.lock"):
        with runs.claim(str(tmp_path / "b"), outputs=()):
            pass


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock(tmp_path, pid=dead.pid)
    said = []
    with runs.claim(str(tmp_path), outputs=(), log=said.append):
        assert json.loads((tmp_path / runs.LOCK).read_text())["pid"] == os.getpid()
    expected = f"Taking over {tmp_path}/run.lock from a run that is no longer alive (process {dead.pid} on "
    assert len(said) == 1 and said[0].startswith(expected + f"{socket.gethostname()}, started ")


def test_finished_run_and_overwrite(tmp_path):
    for name in ("results.json", "model.keras", "ckpt-2.index", "ckpt-4.index", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch_001.weights.h5").write_text("x")
    with runs.claim(str(tmp_path), outputs=("results.json",)) as finished:
        assert finished == f"{tmp_path}/results.json"
    said = []
    outputs = ("checkpoints", "model.keras", "ckpt-*", "results.json")
    with runs.claim(str(tmp_path), outputs=outputs, overwrite=True, log=said.append) as finished:
        assert finished is None
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]  # only the run's own outputs went
    assert said == [
        f"--overwrite: removed checkpoints, model.keras, ckpt-2.index, ckpt-4.index, results.json from {tmp_path}."
    ]


def test_check_writable_names_the_flag_and_leaves_nothing(tmp_path):
    runs.check_writable(str(tmp_path / "new" / "run"), "--model_dir")
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=f"--model_dir={tmp_path}/file/run cannot be written: Not a directory"):
        runs.check_writable(str(tmp_path / "file" / "run"), "--model_dir")
    # Remote storage only where it is written through TensorFlow's file systems.
    runs.check_writable("gs://bucket/run", "--model_dir", remote=True)
    with pytest.raises(ValueError, match="--model_dir=gs://bucket/run: remote storage is not supported here"):
        runs.check_writable("gs://bucket/run", "--model_dir")


def test_remote_folder_keeps_a_finished_run_and_overwrites_without_a_lock(tmp_path, monkeypatch):
    import tensorflow as tf

    monkeypatch.chdir(tmp_path)  # a remote path must not become a local folder
    folder = f"ram://runs_test_{os.getpid()}/run"
    for name in ("results.json", "ckpt-2.index", "notes.txt", "train/events"):
        tf.io.gfile.makedirs(os.path.dirname(f"{folder}/{name}"))
        with tf.io.gfile.GFile(f"{folder}/{name}", "w") as f:
            f.write("x")
    said = []
    with runs.claim(folder, outputs=("results.json",), log=said.append) as finished:
        assert finished == f"{folder}/results.json"
    assert said == [f"{folder} is remote storage: no run.lock is taken there; make sure no other run writes into it."]
    said.clear()
    with runs.claim(folder, outputs=("ckpt-*", "train", "results.json"), overwrite=True, log=said.append) as finished:
        assert finished is None
    assert said[1] == f"--overwrite: removed ckpt-2.index, train, results.json from {folder}."
    assert [os.path.basename(p) for p in tf.io.gfile.glob(f"{folder}/*")] == ["notes.txt"]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv0,orig_argv,binary",
    [
        ("/usr/bin/keras-gn-imagenet", ["python", "/usr/bin/keras-gn-imagenet"], True),
        ("-m", ["python", "-m", "experiments.imagenet_resnet", "--epochs=1"], True),
        ("train.py", ["python", "train.py"], False),
        ("-c", ["python", "-c", "import keras_gn"], False),
        ("-m", ["python", "-m", "pytest", "-q"], False),
    ],
)
def test_only_binaries_are_quietened(argv0, orig_argv, binary):
    assert _startup.is_binary(argv0, orig_argv) is binary


def test_quiet_tensorflow_keeps_the_users_choice(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    _startup.quiet_tensorflow([])
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    _startup.quiet_tensorflow(["--verbose"])
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    _startup.quiet_tensorflow(["--epochs=1"])
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("2", "3")


def test_what_main_returns_is_not_the_exit_status():
    # absl's app.run passes main's return value to sys.exit: a dict of
    # metrics (keras-gn-coco's) was printed to stderr with exit status 1.
    code = "from keras_gn.apps import launch; launch.run(lambda argv: {'AP': 0.5}, name='keras-gn-x', doc='x')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "'AP'" not in result.stderr, result.stderr
