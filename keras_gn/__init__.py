"""keras_gn: Group Normalization (Wu & He, ECCV 2018) for Keras 3 and TensorFlow.

from keras_gn import GroupNormalization
y = GroupNormalization(groups=32)(x)
y = WSConv2D(64, 3, padding="same")(x)   # Weight Standardization (GN + WS)
"""

# First, before TensorFlow loads: a keras_gn binary turns its C++ logs down.
from keras_gn import _startup  # noqa: F401, I001

from keras_gn import conv, models, ops
from keras_gn.batch_norm import VirtualReplicaBatchNormalization
from keras_gn.conv import WSConv1D, WSConv2D, WSConv3D
from keras_gn.layers import GroupNormalization, instance_norm, layer_norm
from keras_gn.norms import normalization
from keras_gn.replace import fold_weight_standardization, replace_normalization

__version__ = "0.1.0"

__all__ = [
    "GroupNormalization",
    "VirtualReplicaBatchNormalization",
    "WSConv1D",
    "WSConv2D",
    "WSConv3D",
    "fold_weight_standardization",
    "conv",
    "layer_norm",
    "instance_norm",
    "replace_normalization",
    "ops",
    "normalization",
    "models",
]
