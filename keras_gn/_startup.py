"""Quiet start-up for keras_gn's binaries, set before TensorFlow loads.

TensorFlow's C++ runtime logs a dozen lines on every start (CUDA probing, CPU
features, XLA service, rendezvous, ...) and, on a machine without a CUDA
driver, an ERROR line ("failed call to cuInit") that means nothing there.
Its level, TF_CPP_MIN_LOG_LEVEL, is read once, at the first message, which
comes while `import tensorflow` runs. So it is set here, first thing in
`keras_gn/__init__.py`, and only when the process is one of keras_gn's
binaries (a `keras-gn-*` console script, or `python -m experiments.NAME`),
never when keras_gn is imported as a library. `--verbose`, or a
TF_CPP_MIN_LOG_LEVEL of one's own, keeps TensorFlow's logs.

Some of TensorFlow's C++ code (XLA, grappler) logs through absl's C++
logging, which does not read that variable: `absl_min_log_level`, called by
the binaries once TensorFlow is loaded, gives it the same level.
"""

import ctypes
import ctypes.util
import os
import sys

__all__ = ["is_binary", "quiet_tensorflow", "absl_min_log_level"]

VERBOSE = ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1")


def is_binary(argv0=None, orig_argv=None):
    """Whether this process is a keras_gn binary."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if os.path.basename(argv0).startswith("keras-gn-"):
        return True
    module = [orig_argv[i + 1] for i, arg in enumerate(orig_argv[:-1]) if arg == "-m"]
    return bool(module) and module[0].startswith("experiments.")


def quiet_tensorflow(argv=None):
    """TensorFlow's C++ logs down to errors (2), or to nothing (3) where no
    CUDA driver is installed: there the one error at start-up is the failed
    probe for a GPU. Left alone under `--verbose` or when the variable is
    set."""
    argv = sys.argv[1:] if argv is None else argv
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or any(arg in VERBOSE for arg in argv):
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2" if ctypes.util.find_library("cuda") else "3"


# absl::SetMinLogLevel in TensorFlow 2.20's libtensorflow_framework (absl LTS
# 2025-01-27); another TensorFlow may name it otherwise: then nothing is done.
_ABSL_SET_MIN_LOG_LEVEL = "_ZN4absl12lts_2025012714SetMinLogLevelENS0_18LogSeverityAtLeastE"


def absl_min_log_level():
    """Gives absl's C++ logging in TensorFlow the level of
    TF_CPP_MIN_LOG_LEVEL (0 info ... 3 fatal only); returns whether it could.
    Call after TensorFlow is imported."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    if not level.isdigit() or int(level) == 0:
        return False
    import tensorflow as tf

    try:
        framework = ctypes.CDLL(os.path.join(os.path.dirname(tf.__file__), "libtensorflow_framework.so.2"))
        getattr(framework, _ABSL_SET_MIN_LOG_LEVEL)(ctypes.c_int(min(int(level), 3)))
    except (OSError, AttributeError):
        return False
    return True


if is_binary():
    quiet_tensorflow()
