"""tf.data input pipelines."""

from keras_gn.data.images import DatasetInfo, check_prepared, dataset_info, image_dataset

__all__ = ["DatasetInfo", "check_prepared", "dataset_info", "image_dataset"]
