"""Mask R-CNN with Group Normalization on the TensorFlow Model Garden.

Importing this package registers, through the Model Garden's own extension
points, the "keras_gn_resnet" backbone, the "keras_gn_fpn" decoder, the task
for `configs.MaskRCNNTask` and the experiments of `configs.EXPERIMENTS`.
Needs `pip install keras-gn[detection]`.
"""

from keras_gn.detection import backbone, configs, heads, task  # noqa: F401 - registrations
from keras_gn.detection.convert import convert

__all__ = ["backbone", "configs", "heads", "task", "convert"]
