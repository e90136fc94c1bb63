"""keras_gn: Group Normalization (Wu & He, ECCV 2018) for Keras 3 and TensorFlow.

from keras_gn import GroupNormalization
y = GroupNormalization(groups=32)(x)
"""

# First, before TensorFlow loads: a keras_gn binary turns its C++ logs down.
from keras_gn import _startup  # noqa: F401, I001

from keras_gn import models, ops
from keras_gn.layers import GroupNormalization, instance_norm, layer_norm
from keras_gn.norms import normalization
from keras_gn.replace import replace_normalization

__version__ = "0.1.0"

__all__ = [
    "GroupNormalization",
    "layer_norm",
    "instance_norm",
    "replace_normalization",
    "ops",
    "normalization",
    "models",
]
