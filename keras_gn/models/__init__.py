"""Model builders that take a normalization (and `weight_standardization=`):
`resnet`, `resnet50`, `resnet101` (ResNet v1, bottleneck or basic blocks),
`bit_resnet` (Big Transfer's GN + WS ResNetV2), `i3d_resnet` (video) and
`inflate` (2-D weights into I3D); `load_pretrained` and `preprocess` (the
published ImageNet GN weights, BiT's `.npz` included)."""

from keras_gn.models.bit import bit_resnet
from keras_gn.models.i3d import i3d_resnet, inflate
from keras_gn.models.pretrained import load_pretrained, preprocess
from keras_gn.models.resnet import STAGE_SIZES, resnet, resnet50, resnet101

__all__ = [
    "resnet",
    "resnet50",
    "resnet101",
    "STAGE_SIZES",
    "bit_resnet",
    "i3d_resnet",
    "inflate",
    "load_pretrained",
    "preprocess",
]
