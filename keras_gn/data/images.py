"""Image-classification input pipelines: TFDS data sets and synthetic data.

The training pipeline is the standard ImageNet one the paper used: a random
crop of 8%-100% of the area with aspect ratio 3/4-4/3 resized to
`image_size`, and a random horizontal flip. Evaluation resizes the shorter
side to `image_size / 0.875` (256 for 224) and takes the center crop. Pixels
are scaled to [0, 1] and standardised with the data set's channel mean and
standard deviation (ImageNet's for RGB data).
"""

import dataclasses
import os

import tensorflow as tf

__all__ = ["DatasetInfo", "dataset_info", "image_dataset", "load_tfds", "SYNTHETIC"]

SYNTHETIC = "synthetic"
# ImageNet's RGB mean and standard deviation, for images and clips in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model builder and a training loop need to know of a data set."""

    num_classes: int
    channels: int
    train_examples: "int | None"
    eval_examples: "int | None"
    train_split: str = "train"
    eval_split: str = "validation"


def dataset_info(name, data_dir=None, synthetic_examples=1024, synthetic_classes=1000):
    """Classes, channels and split sizes of a TFDS data set, or of `synthetic`.

    Reads the prepared data set's metadata from `data_dir`; does not download.
    """
    if name == SYNTHETIC:
        return DatasetInfo(synthetic_classes, 3, synthetic_examples, max(synthetic_examples // 4, 1))
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # noqa: BLE001 - turn TFDS's many errors into one clear message
        raise ValueError(
            f"TFDS has no data set {name!r} ({error}); use e.g. imagenet2012, cifar10 or synthetic."
        ) from None
    info = builder.info
    if "image" not in info.features or "label" not in info.features:
        raise ValueError(f"{name!r} is not an image-classification data set (needs 'image' and 'label' features).")
    splits = info.splits
    # Split sizes are known once the data set is prepared (and unknown under
    # tfds.testing.mock_data): None then, and the caller needs step counts.
    eval_split = "validation" if "validation" in splits or not splits else "test"
    return DatasetInfo(
        num_classes=info.features["label"].num_classes,
        channels=info.features["image"].shape[-1] or 3,
        train_examples=splits["train"].num_examples if "train" in splits else None,
        eval_examples=splits[eval_split].num_examples if eval_split in splits else None,
        eval_split=eval_split,
    )


def check_prepared(name, data_dir=None):
    """A ValueError, naming the flag, unless the TFDS data set `name` is
    prepared in `data_dir` (TFDS's default folder when None); nothing is
    downloaded. "synthetic" always passes."""
    if name == SYNTHETIC:
        return
    if data_dir and "://" not in data_dir and not os.path.isdir(data_dir):
        raise ValueError(
            f"--data_dir={data_dir} does not exist; it should hold the prepared TFDS data set {name!r} "
            f"(`tfds build {name} --data_dir={data_dir}`), or use --dataset=synthetic."
        )
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # noqa: BLE001 - TFDS raises many kinds here
        raise ValueError(f"--dataset={name}: TFDS has no such data set ({error}).") from None
    if not builder.is_prepared():
        raise ValueError(
            f"--dataset={name}: could not find data in {builder.data_dir} (--data_dir={data_dir or 'TFDS default'}). "
            f"Prepare it first (`tfds build {name} --data_dir=...`; ImageNet and Kinetics need their manual "
            f"downloads), or use --dataset=synthetic."
        )


def load_tfds(name, split, data_dir=None, **kwargs):
    """`tfds.load` of a prepared data set (never downloads), with one clear
    error when it is not there."""
    import tensorflow_datasets as tfds

    try:
        return tfds.load(name, split=split, data_dir=data_dir, download=False, **kwargs)
    except (AssertionError, FileNotFoundError, ValueError) as error:
        raise ValueError(
            f"Could not read split {split!r} of TFDS data set {name!r} from "
            f"{data_dir or 'the default TFDS folder'}: {error}. Prepare it first "
            f"(e.g. `tfds build {name} --data_dir=...`), or use --dataset=synthetic."
        ) from None


def _standardize(image, channels):
    image = tf.cast(image, tf.float32) / 255.0
    if channels == 3:
        return (image - IMAGENET_MEAN) / IMAGENET_STD
    return (image - 0.5) / 0.25


def _train_crop(image, image_size, seed=None):
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.zeros([1, 0, 4]),
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
        seed=seed or 0,
    )
    image = tf.slice(image, begin, size)
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    return tf.image.random_flip_left_right(image)


def _eval_crop(image, image_size):
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    resize = image_size / 0.875
    scale = resize / tf.reduce_min(shape)
    new = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(image, new, antialias=True)
    top = (new[0] - image_size) // 2
    left = (new[1] - image_size) // 2
    return tf.image.crop_to_bounding_box(image, top, left, image_size, image_size)


def image_dataset(
    name,
    split,
    batch_size,
    training,
    image_size=224,
    data_dir=None,
    input_context=None,
    channels=3,
    num_classes=1000,
    num_examples=1024,
    drop_remainder=False,
    seed=None,
    shuffle_buffer=10_000,
    data_format="channels_last",
    repeat=None,
):
    """A batched `tf.data.Dataset` of (images, labels) for one replica.

    Args:
      name: a TFDS image-classification name (e.g. "imagenet2012", "cifar10")
        or "synthetic" (random images and labels, for smoke runs).
      split: TFDS split ("train", "validation", ...); ignored for synthetic.
      batch_size: images per batch (per replica when `input_context` is given).
      training: shuffle, repeat and augment; otherwise one pass, center crops.
      image_size: side of the square crops, in pixels.
      input_context: the `tf.distribute.InputContext` of
        `distribute_datasets_from_function`: each input pipeline reads its own
        shard of the files.
      channels, num_classes, num_examples: of the synthetic data.
      drop_remainder: drop the last partial batch (static shapes for TPU).
      data_format: "channels_first" transposes the images to [C, H, W].
      repeat: repeat the data forever (default: when training).
    """
    if name == SYNTHETIC:
        # Evaluation images differ from the training ones (another seed).
        ds = _synthetic(num_examples, image_size, channels, num_classes, (seed or 0) + (0 if training else 1))
        ds = shard_and_cache(ds, input_context)
    else:
        ds = read_tfds(name, split, data_dir, training, input_context, seed, as_supervised=True, try_autocache=False)

        def prepare(image, label):
            image = _train_crop(image, image_size, seed) if training else _eval_crop(image, image_size)
            return _standardize(image, channels), label

        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if data_format == "channels_first":
        ds = ds.map(lambda image, label: (tf.transpose(image, [2, 0, 1]), label), num_parallel_calls=tf.data.AUTOTUNE)
    return batches(ds, batch_size, training, repeat, seed, shuffle_buffer, drop_remainder)


def read_tfds(name, split, data_dir, training, input_context, seed, as_supervised=False, **read_config):
    """A prepared TFDS split for one input pipeline: its shard of the files
    (`input_context`), shuffled file order when training."""
    import tensorflow_datasets as tfds

    return load_tfds(
        name,
        split,
        data_dir,
        as_supervised=as_supervised,
        shuffle_files=training,
        read_config=tfds.ReadConfig(input_context=input_context, shuffle_seed=seed, **read_config),
    )


def shard_and_cache(ds, input_context):
    """Generated data: each input pipeline keeps its own shard, cached."""
    if input_context is not None:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds.cache()


def batches(ds, batch_size, training, repeat, seed, shuffle_buffer, drop_remainder):
    """The end of every pipeline here: shuffled when training, repeated
    (default: when training), batched (the last partial batch dropped when
    training or asked) and prefetched."""
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    if training if repeat is None else repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=drop_remainder or training).prefetch(tf.data.AUTOTUNE)


def _synthetic(num_examples, image_size, channels, num_classes, seed):
    # Deterministic images whose label is learnable: the class shifts the mean.
    def make(index):
        label = tf.cast(index % num_classes, tf.int64)
        rng = tf.random.stateless_normal([image_size, image_size, channels], seed=[seed or 0, tf.cast(index, tf.int32)])
        image = rng + tf.cast(label, tf.float32) / num_classes
        return image, label

    return tf.data.Dataset.range(num_examples).map(make, num_parallel_calls=tf.data.AUTOTUNE)
