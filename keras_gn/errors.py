"""Errors a user can act on, and reading checkpoints with such errors.

The binaries print a `RunError`'s message as one line and exit 1
(keras_gn.apps.launch); a `CheckpointError` names the file that could not be
read, why, and what to do.
"""

import os
import zipfile

import keras

__all__ = ["RunError", "CheckpointError", "checkpoint_error", "load_model"]


class RunError(Exception):
    """A run cannot go on, for a reason the user can act on."""


class CheckpointError(RunError):
    """A checkpoint that cannot be read."""


def describe(error):
    """ "Type: message" of an exception on one line, the message cut at 200
    characters."""
    reason = " ".join(str(error).split())
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return f"{type(error).__name__}: {reason}"


def checkpoint_error(path, error, remedy):
    """A `CheckpointError` naming `path`, the cause `error` and the `remedy`."""
    return CheckpointError(
        f"cannot read the checkpoint {path}: it looks truncated or corrupt ({describe(error)}). {remedy}"
    )


def load_model(path, remedy):
    """`keras.models.load_model(path)`; a missing or unreadable file is a
    `CheckpointError` that names it and ends with `remedy`."""
    if "://" not in path and not os.path.exists(path):
        raise CheckpointError(f"{path} not found. {remedy}")
    try:
        return keras.models.load_model(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise checkpoint_error(path, error, remedy) from None
