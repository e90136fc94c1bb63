"""Mask R-CNN heads with our normalization in place of the Model Garden's BN.

The Model Garden's `RPNHead`, `DetectionHead` (4conv1fc) and `MaskHead`
(4conv) put a BatchNormalization after every layer. These subclasses let the
Model Garden build each head, then swap only the normalization layers, before
anything has run, so no weights are wasted and no head code is repeated:

- `norm="gn"`: GN (G = `groups`) after every convolution of the box and
  mask heads; none after the box head's fc or the mask head's deconvolution,
  as in Detectron's GN heads (the paper's). The RPN head takes the same
  argument; the experiments give it none, as Detectron does.
- `norm="none"`: no normalization at all (the paper's frozen-BN baseline
  "no head norm", Table 5).
"""

import tf_keras
from official.vision.modeling.heads import dense_prediction_heads, instance_heads

from keras_gn.norms import normalization

__all__ = ["RPNHead", "DetectionHead", "MaskHead", "HEAD_NORMS"]

HEAD_NORMS = ("gn", "none")


class _SwapNorms:
    """Mixin: `norm`/`groups` arguments, config round trip, and the factory."""

    def __init__(self, norm="gn", groups=32, **kwargs):
        if norm not in HEAD_NORMS:
            raise ValueError(f"Head norm must be one of {HEAD_NORMS}; got {norm!r}.")
        super().__init__(**kwargs)
        self._head_norm = (norm, groups)

    def _norm(self, name):
        norm, groups = self._head_norm
        make = normalization(norm, framework="tf_keras", **({"groups": groups} if norm == "gn" else {}))
        return make(axis=-1, name=name)

    def _identity(self, name):
        return tf_keras.layers.Identity(name=name)

    def get_config(self):
        return {**super().get_config(), "norm": self._head_norm[0], "groups": self._head_norm[1]}


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class RPNHead(_SwapNorms, dense_prediction_heads.RPNHead):
    def build(self, input_shape):
        super().build(input_shape)
        self._norms = [
            [self._norm(f"rpn-conv-{self._head_norm[0]}_{level}_{i}") for i in range(len(per_level))]
            for level, per_level in enumerate(self._norms)
        ]


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class DetectionHead(_SwapNorms, instance_heads.DetectionHead):
    def build(self, input_shape):
        super().build(input_shape)
        self._conv_norms = [self._norm(f"detection-conv-{self._head_norm[0]}_{i}") for i in range(len(self._conv_norms))]
        self._fc_norms = [self._identity(f"detection-fc-identity_{i}") for i in range(len(self._fc_norms))]


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class MaskHead(_SwapNorms, instance_heads.MaskHead):
    def build(self, input_shape):
        super().build(input_shape)
        self._conv_norms = [self._norm(f"mask-conv-{self._head_norm[0]}_{i}") for i in range(len(self._conv_norms))]
        self._deconv_bn = self._identity("mask-deconv-identity")
