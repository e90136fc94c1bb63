"""Video-clip input pipelines for I3D: TFDS video data sets and synthetic clips.

Training takes `frames` frames `sample_rate` apart from a random start (the
paper: 32 frames with stride 2, or 64), resizes the shorter side to a random
size in [256, 320] (scaled with `crop_size`), takes a random `crop_size`
square and flips it at random. Evaluation takes `eval_clips` clips spread
uniformly over the video (10-clip testing), each resized to a shorter side of
crop_size / 0.875 and center-cropped.
"""

import tensorflow as tf

from keras_gn.data.images import IMAGENET_MEAN, IMAGENET_STD, batches, read_tfds, shard_and_cache

__all__ = ["video_dataset"]


def _indices(length, frames, rate, start):
    # Short videos loop, so every clip has `frames` frames.
    return (start + rate * tf.range(frames)) % tf.maximum(length, 1)


def _resize_shorter(video, side):
    shape = tf.cast(tf.shape(video)[1:3], tf.float32)
    scale = tf.cast(side, tf.float32) / tf.reduce_min(shape)
    return tf.image.resize(video, tf.cast(tf.round(shape * scale), tf.int32))


def _train_clip(video, frames, rate, crop, seed):
    length = tf.shape(video)[0]
    span = frames * rate
    start = tf.random.uniform([], 0, tf.maximum(length - span, 0) + 1, tf.int32, seed=seed)
    clip = tf.gather(video, _indices(length, frames, rate, start))
    side = tf.random.uniform([], int(crop * 256 / 224), int(crop * 320 / 224) + 1, tf.int32, seed=seed)
    clip = _resize_shorter(clip, side)
    clip = tf.image.random_crop(clip, [frames, crop, crop, 3], seed=seed)
    return tf.cond(tf.random.uniform([], seed=seed) < 0.5, lambda: tf.reverse(clip, [2]), lambda: clip)


def _eval_clips(video, frames, rate, crop, clips):
    length = tf.shape(video)[0]
    last_start = tf.maximum(length - frames * rate, 0)
    starts = tf.cast(tf.round(tf.linspace(0.0, tf.cast(last_start, tf.float32), clips)), tf.int32)
    index = tf.reshape(tf.map_fn(lambda s: _indices(length, frames, rate, s), starts), [-1])
    video = _resize_shorter(tf.gather(video, index), int(round(crop / 0.875)))
    video = tf.image.resize_with_crop_or_pad(video, crop, crop)
    return tf.reshape(video, [clips, frames, crop, crop, 3])


def video_dataset(
    name,
    split,
    batch_size,
    training,
    frames=32,
    sample_rate=2,
    crop_size=224,
    eval_clips=10,
    data_dir=None,
    input_context=None,
    num_classes=400,
    num_examples=64,
    drop_remainder=False,
    repeat=None,
    seed=None,
):
    """A batched dataset of (clips, labels) for one replica.

    Training batches are `[B, frames, crop, crop, 3]`; evaluation batches are
    `[B, eval_clips, frames, crop, crop, 3]` (`eval_clips=1`: the center
    clip, one per video). `name` is a TFDS video data set with "video" and
    "label" features, or "synthetic".
    """
    clips = 1 if training else eval_clips
    if name == "synthetic":

        def make(index):
            label = index % num_classes
            noise = tf.random.stateless_normal(
                [clips, frames, crop_size, crop_size, 3],
                seed=[(seed or 0) + int(not training), tf.cast(index, tf.int32)],
            )
            clip = noise + tf.cast(label, tf.float32) / num_classes
            return (clip[0] if training else clip), label

        ds = tf.data.Dataset.range(num_examples).map(make, num_parallel_calls=tf.data.AUTOTUNE)
        ds = shard_and_cache(ds, input_context)
    else:
        ds = read_tfds(name, split, data_dir, training, input_context, seed)

        def prepare(example):
            video = tf.cast(example["video"], tf.float32) / 255.0
            if training:
                clip = _train_clip(video, frames, sample_rate, crop_size, seed)
            else:
                clip = _eval_clips(video, frames, sample_rate, crop_size, clips)
            return (clip - IMAGENET_MEAN) / IMAGENET_STD, example["label"]

        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return batches(ds, batch_size, training, repeat, seed, 1024, drop_remainder)
