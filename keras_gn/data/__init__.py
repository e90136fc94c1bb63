"""tf.data input pipelines."""

from keras_gn.data.images import DatasetInfo, dataset_info, image_dataset

__all__ = ["DatasetInfo", "dataset_info", "image_dataset"]
