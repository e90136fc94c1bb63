"""A classification data set as NumPy arrays in memory, for the study's
short runs: the Fashion-MNIST subset bundled with keras_gn, all of
Fashion-MNIST, or a prepared TFDS image data set."""

import numpy as np

from keras_gn.data import fashion_mnist
from keras_gn.data.images import dataset_info, load_tfds

__all__ = ["load_arrays"]


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
            return tfds.as_numpy(load_tfds(dataset, split, data_dir, as_supervised=True, batch_size=-1))

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
