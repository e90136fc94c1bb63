"""Model builders that take a normalization: `resnet`, `resnet50`, `resnet101`."""

from keras_gn.models.resnet import STAGE_SIZES, resnet, resnet50, resnet101

__all__ = ["resnet", "resnet50", "resnet101", "STAGE_SIZES"]
