"""Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test images,
28 x 28 grey levels, 10 classes of clothing.

`load_fashion_mnist()` reads all of it from Debian's `dataset-fashion-mnist`
package when it is installed (`/usr/share/datasets/fashion-mnist`, for
machines without internet), from `$FASHION_MNIST_DIR` when set, and from
Keras's downloader otherwise.

`load_bundled_subset()` reads the fixed subset that ships inside this package
(`fashion_mnist_subset.npz`: 10,000 training and 2,000 test images, made by
`make_bundled_subset`; licence and provenance in `FASHION_MNIST.md`), so that
the README's main command needs neither a network nor an extra install.
"""

import gzip
import os

import numpy as np

__all__ = ["load_fashion_mnist", "load_bundled_subset", "make_bundled_subset", "CLASS_NAMES", "LOCAL_DIRS", "BUNDLED"]

LOCAL_DIRS = ("/usr/share/datasets/fashion-mnist",)
BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_subset.npz")
# The subset: these many images of each split, drawn with this seed (sorted
# indices into the original files, kept in the .npz).
BUNDLED_SIZES = {"train": 10_000, "test": 2_000}
BUNDLED_SEED = 20180322
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path):
    """One IDX file (the MNIST format): magic, dimensions, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: the header says {shape}, the file holds {data.size} values.")
    return data.reshape(shape)


def _local_dir():
    candidates = [os.environ.get("FASHION_MNIST_DIR")] + list(LOCAL_DIRS)
    for directory in filter(None, candidates):
        if all(os.path.exists(os.path.join(directory, name)) for files in _FILES.values() for name in files):
            return directory
    return None


def load_fashion_mnist():
    """Returns `((x_train, y_train), (x_test, y_test), source)`: uint8 images
    [N, 28, 28], int labels [N], and where they were read from."""
    directory = _local_dir()
    if directory:
        out = []
        for split in ("train", "test"):
            images, labels = (_read_idx(os.path.join(directory, name)) for name in _FILES[split])
            out.append((images, labels.astype(np.int64)))
        return out[0], out[1], directory
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as error:  # noqa: BLE001 - no network, a proxy, a broken cache...
        raise RuntimeError(
            "Fashion-MNIST is neither installed locally nor downloadable here "
            f"({type(error).__name__}: {error}). Install Debian's copy "
            "(`apt-get install dataset-fashion-mnist`), point $FASHION_MNIST_DIR at a folder "
            "with the four .gz files, or connect to the internet."
        ) from None
    return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64)), "keras.datasets.fashion_mnist"


def load_fashion_mnist_or_subset(log=print):
    """`load_fashion_mnist()`, or where Fashion-MNIST is neither installed nor
    downloadable (no network), the subset that ships with keras_gn, saying so
    with `log`."""
    try:
        return load_fashion_mnist()
    except RuntimeError as error:
        log(f"{error}\nUsing the Fashion-MNIST subset that ships with keras_gn instead (10,000 training images).")
        return load_bundled_subset()


def load_bundled_subset():
    """Returns `((x_train, y_train), (x_test, y_test), source)` from the
    subset shipped in the package: uint8 images [N, 28, 28], int labels."""
    if not os.path.exists(BUNDLED):
        raise FileNotFoundError(
            f"The bundled Fashion-MNIST subset {BUNDLED} is missing from this install of keras_gn; "
            "reinstall the package, or use --dataset=fashion_mnist (all of Fashion-MNIST)."
        )
    with np.load(BUNDLED) as f:
        return (
            (f["x_train"], f["y_train"].astype(np.int64)),
            (f["x_test"], f["y_test"].astype(np.int64)),
            "keras_gn/data/fashion_mnist_subset.npz",
        )


def make_bundled_subset(path=BUNDLED):
    """Writes the bundled subset from the full data set (`load_fashion_mnist`):
    `BUNDLED_SIZES` images of each split, a seeded random draw, in the
    original order, with their indices in the original files."""
    (x_train, y_train), (x_test, y_test), _ = load_fashion_mnist()
    rng = np.random.default_rng(BUNDLED_SEED)
    train = np.sort(rng.permutation(len(x_train))[: BUNDLED_SIZES["train"]])
    test = np.sort(rng.permutation(len(x_test))[: BUNDLED_SIZES["test"]])
    np.savez_compressed(
        path,
        x_train=x_train[train],
        y_train=y_train[train].astype(np.uint8),
        x_test=x_test[test],
        y_test=y_test[test].astype(np.uint8),
        train_index=train.astype(np.int32),
        test_index=test.astype(np.int32),
    )
