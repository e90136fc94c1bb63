"""A run folder (`--model_dir`, the study's `--output_dir`) belongs to one run.

`claim(folder)` holds it for the length of a run:

- a lock file, `run.lock`, records the owner (process id, host, start time).
  A second run into a live folder stops at once, naming the folder and the
  owner; a lock left by a killed run (its process is gone) is taken over, so
  the killed run resumes;
- a finished run (its `results.json` is there) is kept: `claim` says so and
  the binary exits 0 without training, unless `overwrite` clears the run's
  outputs first.

`check_writable` is the check of a folder the binaries make before anything
runs.
"""

import contextlib
import glob
import json
import os
import shutil
import socket
import time

from keras_gn.errors import RunError

__all__ = ["LOCK", "claim", "check_writable", "finished_notice"]

LOCK = "run.lock"


def finished_notice(results):
    """What a binary says when its folder holds a finished run."""
    return f"This run has finished: its results are in {results}. Nothing to train (--overwrite starts afresh)."


def check_writable(folder, flag, remote=False):
    """Checks that `folder` can be created and written in, and leaves
    nothing behind; a `ValueError` naming `flag` otherwise. A remote folder
    (gs://...) is allowed only with `remote=True`, for what writes through
    TensorFlow's file systems (the Model Garden, checkpoints), and is left
    for them to check when they write."""
    if "://" in folder:
        if remote:
            return
        raise ValueError(
            f"{flag}={folder}: remote storage is not supported here (backups and results are written with "
            "Python's file functions); give a local or shared (NFS) folder."
        )
    folder = os.path.abspath(folder)
    first_missing = folder
    while not os.path.exists(os.path.dirname(first_missing)) and os.path.dirname(first_missing) != first_missing:
        first_missing = os.path.dirname(first_missing)
    created = not os.path.exists(first_missing)
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write_test.{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise ValueError(f"{flag}={folder} cannot be written: {error.strerror or error}.") from None
    finally:
        if created and os.path.isdir(first_missing):
            shutil.rmtree(first_missing, ignore_errors=True)


def _process_start(pid):
    """The start time of process `pid` in clock ticks since boot (Linux), to
    tell it from a later process that got the same id; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(owner):
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    started = owner.get("process_start")
    return started is None or _process_start(pid) in (None, started)


def _describe(owner):
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("time", 0)))
    return f"process {owner.get('pid')} on {owner.get('host')}, started {since}"


def _read_owner(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}  # being written, or unreadable: treated as stale below when old enough


def _acquire(folder, log):
    path = os.path.join(folder, LOCK)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
    me["process_start"] = _process_start(me["pid"])
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = _read_owner(path)
            fresh = not owner and time.time() - os.path.getmtime(path) < 10
            if fresh or (owner.get("host") not in (None, me["host"])) or (owner and _alive(owner)):
                who = _describe(owner) if owner else "a run that is starting"
                raise RunError(
                    f"{folder} is in use by another run ({who}). Wait for it to finish, or give another folder; "
                    f"if that run is no longer alive, delete {path}."
                ) from None
            log(f"Taking over {path} from a run that is no longer alive ({_describe(owner)}).")
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise RunError(f"could not take the lock {path}; another run is starting in {folder}.")


def _release(path):
    if _read_owner(path).get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _clear(folder, outputs, log, files=None):
    """Removes `outputs` (names or glob patterns) from `folder`; `files` is
    TensorFlow's `tf.io.gfile` for remote storage, None for a local disk."""
    removed = []
    for pattern in (n for n in outputs if n != LOCK):  # the lock is the running run's own
        if files is None:
            paths = glob.glob(os.path.join(glob.escape(folder), pattern))
        else:
            paths = files.glob(f"{folder.rstrip('/')}/{pattern}")
        for path in sorted(paths):
            if files is not None:
                (files.rmtree if files.isdir(path) else files.remove)(path)
            elif os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path.rstrip("/").rsplit("/", 1)[-1])
    if removed:
        log(f"--overwrite: removed {', '.join(removed)} from {folder}.")


@contextlib.contextmanager
def claim(folder, outputs, *, overwrite=False, results="results.json", log=print):
    """Holds `folder` for one run; yields the path of a finished run's
    results (then there is nothing to train) or None.

    Args:
      folder: the run folder, created if needed.
      outputs: names (or glob patterns, "ckpt-*") of the files and folders
        the run writes in it: what `overwrite` removes; nothing else in the
        folder is touched.
      overwrite: start afresh: remove `outputs` (a finished run's or a killed
        run's) before training.
      results: the file whose presence means the run finished.
      log: where the one-line notices go.

    Raises `RunError` when another live run holds the folder. The lock is
    released when the block ends, however it ends; a killed process leaves
    it behind, and the next run takes it over.

    A remote folder (gs://..., where the Model Garden writes on a TPU) is
    read and cleared through TensorFlow's file systems, and gets no lock:
    they have no exclusive create to build one on, so `claim` says so and
    keeping one run per folder is the user's.
    """
    if "://" in folder:
        yield _claim_remote(folder, outputs, overwrite, results, log)
        return
    os.makedirs(folder, exist_ok=True)
    lock = _acquire(folder, log)
    try:
        if overwrite:
            _clear(folder, outputs, log)
        finished = os.path.join(folder, results)
        yield finished if os.path.exists(finished) else None
    finally:
        _release(lock)


def _claim_remote(folder, outputs, overwrite, results, log):
    import tensorflow as tf  # only here: the local path needs no TensorFlow

    files = tf.io.gfile
    files.makedirs(folder)
    log(f"{folder} is remote storage: no {LOCK} is taken there; make sure no other run writes into it.")
    if overwrite:
        _clear(folder, outputs, log, files)
    finished = f"{folder.rstrip('/')}/{results}"
    return finished if files.exists(finished) else None
