"""A classification data set as NumPy arrays in memory, for the study's
short runs: the Fashion-MNIST subset bundled with keras_gn, all of
Fashion-MNIST, or a prepared TFDS image data set."""

import numpy as np

from keras_gn.data import fashion_mnist
from keras_gn.data.images import dataset_info, load_tfds

__all__ = ["load_arrays", "apply_exposure", "exposed", "EXPOSURE_SEED"]

# The seed of every per-image exposure: the same images whatever the run.
EXPOSURE_SEED = 20180614


def load_arrays(dataset, train_examples, eval_examples, data_dir=None):
    """(x_train, y_train), (x_eval, y_eval), num_classes, source: float32
    images [N, H, W, C] standardised with the training set's statistics; a
    fixed, class-mixed subset of the sizes asked for."""
    if dataset == "fashion_mnist_subset":
        (x_train, y_train), (x_eval, y_eval), source = fashion_mnist.load_bundled_subset()
        x_train, x_eval, num_classes = x_train[..., None], x_eval[..., None], 10
    elif dataset == "fashion_mnist":
        (x_train, y_train), (x_eval, y_eval), source = fashion_mnist.load_fashion_mnist()
        x_train, x_eval, num_classes = x_train[..., None], x_eval[..., None], 10
    else:
        import tensorflow_datasets as tfds

        info = dataset_info(dataset, data_dir)

        def load(split):
            # In batches, not batch_size=-1: that needs a known size, which
            # data sets made by a generator (TFDS's mock data) do not have.
            batches = list(tfds.as_numpy(load_tfds(dataset, split, data_dir, as_supervised=True).batch(4096)))
            return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])

        (x_train, y_train), (x_eval, y_eval) = load("train"), load(info.eval_split)
        num_classes, source = info.num_classes, f"tfds:{dataset}"
    if len(x_train) < train_examples or len(x_eval) < eval_examples:
        raise ValueError(
            f"{dataset} has {len(x_train)} training and {len(x_eval)} evaluation examples; "
            f"asked for {train_examples} and {eval_examples} (--train_examples, --eval_examples)."
        )
    rng = np.random.default_rng(1234)
    train_index = rng.permutation(len(x_train))[:train_examples]
    eval_index = rng.permutation(len(x_eval))[:eval_examples]
    x_train, y_train = x_train[train_index], y_train[train_index]
    x_eval, y_eval = x_eval[eval_index], y_eval[eval_index]
    mean, std = float(x_train.mean()), float(x_train.std())

    def standardise(x):
        return ((x.astype(np.float32) - mean) / std).astype(np.float32)

    return (
        (standardise(x_train), y_train.astype(np.int64)),
        (standardise(x_eval), y_eval.astype(np.int64)),
        num_classes,
        source,
    )


def apply_exposure(images, gain, offset, seed):
    """Each image x (of `images`, [N, ...]) becomes g x + o: a contrast (and
    exposure) gain g = exp(U(-ln gain, ln gain)) and an offset
    o = U(-offset, offset), drawn once per image from `seed`; float32. The
    images are standardized, so o shifts their brightness by o standard
    deviations of the data set."""
    if gain < 1 or offset < 0:
        raise ValueError(f"exposure needs GAIN >= 1 and OFFSET >= 0; got GAIN={gain}, OFFSET={offset}.")
    rng = np.random.default_rng(seed)
    shape = (len(images),) + (1,) * (np.ndim(images) - 1)
    g = np.exp(rng.uniform(-np.log(gain), np.log(gain), len(images))).reshape(shape)
    o = rng.uniform(-offset, offset, len(images)).reshape(shape)
    return (images * g + o).astype(np.float32)


def exposed(data, exposure):
    """`load_arrays`'s data with `apply_exposure` on both splits, each with its
    own fixed seed; `exposure` is (GAIN, OFFSET), or empty for the data as
    it is."""
    if not exposure:
        return data
    if len(exposure) != 2:
        raise ValueError(f"exposure is GAIN,OFFSET; got {tuple(exposure)}.")
    (x_train, y_train), (x_eval, y_eval), num_classes, source = data
    x_train = apply_exposure(x_train, *exposure, seed=(EXPOSURE_SEED, 0))
    x_eval = apply_exposure(x_eval, *exposure, seed=(EXPOSURE_SEED, 1))
    return (x_train, y_train), (x_eval, y_eval), num_classes, source
