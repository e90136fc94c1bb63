"""A training run that can be killed at any moment: the crash-safe backup
Keras's `fit` resumes from, the line saying where it resumed, and the
callbacks every trainer here runs (backup, epoch checkpoints, TensorBoard).
"""

import json
import os
import shutil

import keras

from keras_gn.errors import checkpoint_error, describe

__all__ = ["Backup", "ResumeLog", "callbacks"]


class Backup(keras.callbacks.BackupAndRestore):
    """Keras's `BackupAndRestore` made safe to kill at any moment.

    Keras writes the weights, then `training_metadata.json`, in place: a
    kill between or during the two left a pair that cannot be read (an
    empty JSON file, a truncated HDF5 file) or that disagrees (the weights
    of one epoch, the epoch count of the one before). Here both are written
    to temporary files and renamed into place, the pair before is kept, and
    the metadata records the optimizer's step count: a pair
    that cannot be read or disagrees is passed over for the one before
    (`previous.weights.h5`, `previous_training_metadata.json`), and
    when neither can be read the error names the file and what to do. With
    `write=False` (the non-chief workers) it only restores.

    It relies on these private parts of Keras's `BackupAndRestore` (Keras
    3.14), which a Keras upgrade may change (`tests/test_binaries.py` kills
    and resumes runs through them): the attributes `_weights_path`,
    `_training_metadata_path`, `_current_epoch` and `_last_batch_seen`; the
    method `_save_model`, which Keras calls at each save; and the model's
    `_initial_epoch`, which `fit` starts from."""

    def __init__(self, backup_dir, write=True):
        super().__init__(backup_dir, delete_checkpoint=write)
        self.write = write
        # The pair before the last (Keras's ".bkp" names are not loadable: load_weights wants .weights.h5).
        self._prev_weights_path = os.path.join(backup_dir, "previous.weights.h5")
        self._prev_training_metadata_path = os.path.join(backup_dir, "previous_training_metadata.json")

    def on_train_begin(self, logs=None):
        pairs = [
            (self._weights_path, self._training_metadata_path),
            (self._prev_weights_path, self._prev_training_metadata_path),
        ]
        failures = []
        for weights, metadata in pairs:
            if not (os.path.exists(weights) and os.path.exists(metadata)):
                continue
            try:
                self._restore(weights, metadata)
            except (OSError, ValueError, KeyError) as error:
                failures.append((weights, error))
                continue
            for path, error in failures:  # a kill while backing up: say what is trained again
                epoch = self.model._initial_epoch
                print(
                    f"Passed over the last backup {path}: it cannot be read ({describe(error)}). "
                    f"Resuming from the backup before it ({weights}): training starts again at epoch {epoch + 1}.",
                    flush=True,
                )
            return
        if failures:
            model_dir = os.path.dirname(os.path.normpath(self.backup_dir))
            raise checkpoint_error(
                failures[0][0],
                failures[0][1],
                f"Delete {self.backup_dir} to train again from the first epoch (its epoch checkpoints in "
                f"{os.path.join(model_dir, 'checkpoints')} are weights only), or start afresh with --overwrite.",
            )

    def _restore(self, weights, metadata):
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        with open(metadata) as f:
            state = json.load(f)
        steps = state.get("iterations")
        if optimizer is not None and steps is not None and int(optimizer.iterations.numpy()) != steps:
            raise ValueError(f"its weights are at step {int(optimizer.iterations.numpy())}, {metadata} at {steps}")
        self.model._initial_epoch = state["epoch"]

    def _save_model(self):
        if not self.write:
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        new_weights = os.path.join(self.backup_dir, "new.weights.h5")
        new_metadata = self._training_metadata_path + ".new"
        self.model.save_weights(new_weights, overwrite=True)
        state = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        if self.model.optimizer is not None:
            state["iterations"] = int(self.model.optimizer.iterations.numpy())
        with open(new_metadata, "w") as f:
            json.dump(state, f)
        # The pair before becomes .bkp (copies: the last pair stays whole),
        # then the new pair is renamed into place.
        for path, previous in (
            (self._weights_path, self._prev_weights_path),
            (self._training_metadata_path, self._prev_training_metadata_path),
        ):
            if os.path.exists(path):
                shutil.copyfile(path, previous)
        os.replace(new_weights, self._weights_path)
        os.replace(new_metadata, self._training_metadata_path)


class ResumeLog(keras.callbacks.Callback):
    """One line at the start of training saying where it starts from."""

    def on_train_begin(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step:
            print(f"Resumed from the last backup at optimizer step {step}.", flush=True)


def callbacks(model_dir, chief=True):
    """Backups for resuming on every worker; epoch checkpoints and
    TensorBoard written by the chief alone."""
    backup = [Backup(os.path.join(model_dir, "backup"), write=chief), ResumeLog()]
    if not chief:
        return backup
    os.makedirs(os.path.join(model_dir, "checkpoints"), exist_ok=True)
    return backup + [
        keras.callbacks.ModelCheckpoint(
            os.path.join(model_dir, "checkpoints", "epoch_{epoch:03d}.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "tensorboard")),
    ]
