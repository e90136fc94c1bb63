"""Running a training binary in a subprocess, killing it mid-run and restarting it."""

import json
import os
import signal
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")


def kill_and_resume(command, model_dir, epochs, steps_per_epoch, kill_after=2):
    """Starts `command` (which trains `epochs` epochs into `model_dir`), kills
    it with SIGKILL once `kill_after` epochs are backed up, runs it again and
    checks that the second run resumes there. Returns (epochs done before the
    kill, the second run's stdout, results.json)."""
    metadata = model_dir / "backup" / "training_metadata.json"
    first = subprocess.Popen(command, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        try:
            if json.loads(metadata.read_text() or "{}").get("epoch", 0) >= kill_after:
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.1)
    assert first.poll() is None, "the first run ended before it could be killed:\n" + first.stdout.read()[-3000:]
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = json.loads(metadata.read_text())["epoch"]
    assert kill_after <= done < epochs

    second = subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"Resumed from the last backup at optimizer step {done * steps_per_epoch}." in second.stdout
    assert "Epoch 1/" not in second.stdout and f"Epoch {done + 1}/{epochs}" in second.stdout
    results = json.loads((model_dir / "results.json").read_text())
    assert results["epochs_run_in_this_process"] == epochs - done
    return done, second.stdout, results
