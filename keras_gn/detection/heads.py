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
- `weight_standardization=True`: the head's convolutions (the box head's 4
  and the mask head's 4; not the class, box and mask predictors nor the
  mask deconvolution) are Weight Standardization ones, as mmdetection's
  "gn+ws-all" heads (`keras_gn.legacy.WSConv2D`, the same configuration).
"""

import tensorflow as tf
import tf_keras
from official.vision.modeling.heads import dense_prediction_heads, instance_heads

from keras_gn.norms import normalization

__all__ = ["RPNHead", "DetectionHead", "MaskHead", "C4DetectionHead", "C4MaskHead", "res5", "HEAD_NORMS"]

HEAD_NORMS = ("gn", "none")


class _SwapNorms:
    """Mixin: `norm`/`groups`/`weight_standardization` arguments, config
    round trip, and the factory.

    The heads below replace, after the Model Garden's `build`, the lists of
    normalization layers that build made (`_norms`, `_conv_norms`,
    `_fc_norms`, `_deconv_bn`): private attributes of
    `official.vision.modeling.heads` that the `tf-models-official==2.20.*`
    pin keeps stable (tests/test_detection.py counts the layers each head
    ends with, so a release that renames them fails there, not silently)."""

    def __init__(self, norm="gn", groups=32, weight_standardization=False, **kwargs):
        if norm not in HEAD_NORMS:
            raise ValueError(f"Head norm must be one of {HEAD_NORMS}; got {norm!r}.")
        super().__init__(**kwargs)
        self._head_norm = (norm, groups)
        self._weight_standardization = bool(weight_standardization)

    def _standardize_convs(self):
        """With weight_standardization, the head's own convolutions
        (`_convs`, before anything has run) become their WS twins."""
        if not self._weight_standardization:
            return
        from keras_gn.legacy import WS_TWINS

        for conv in self._convs:
            if type(conv) not in WS_TWINS:
                raise ValueError(
                    f"weight_standardization needs plain convolutions; {conv.name} is {type(conv).__name__}."
                )
        self._convs = [WS_TWINS[type(conv)].from_config(conv.get_config()) for conv in self._convs]

    def _norm(self, name):
        norm, groups = self._head_norm
        make = normalization(norm, framework="tf_keras", groups=groups)
        return make(axis=-1, name=name)

    def _identity(self, name):
        return tf_keras.layers.Identity(name=name)

    def get_config(self):
        return {
            **super().get_config(),
            "norm": self._head_norm[0],
            "groups": self._head_norm[1],
            "weight_standardization": self._weight_standardization,
        }


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class RPNHead(_SwapNorms, dense_prediction_heads.RPNHead):
    def build(self, input_shape):
        super().build(input_shape)
        self._norms = [
            [self._norm(f"rpn-conv-{self._head_norm[0]}_{level}_{i}") for i in range(len(per_level))]
            for level, per_level in enumerate(self._norms)
        ]
        self._standardize_convs()


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class DetectionHead(_SwapNorms, instance_heads.DetectionHead):
    def build(self, input_shape):
        super().build(input_shape)
        self._conv_norms = [
            self._norm(f"detection-conv-{self._head_norm[0]}_{i}") for i in range(len(self._conv_norms))
        ]
        self._fc_norms = [self._identity(f"detection-fc-identity_{i}") for i in range(len(self._fc_norms))]
        self._standardize_convs()


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class MaskHead(_SwapNorms, instance_heads.MaskHead):
    def build(self, input_shape):
        super().build(input_shape)
        self._conv_norms = [self._norm(f"mask-conv-{self._head_norm[0]}_{i}") for i in range(len(self._conv_norms))]
        self._deconv_bn = self._identity("mask-deconv-identity")
        self._standardize_convs()


# C4: the original Mask R-CNN's ResNet head (He et al. 2017, Figure 4 left).


def res5(
    depth=50, norm="gn", groups=32, crop_size=14, in_channels=1024, weight_decay=0.0, name="res5",
    weight_standardization=False, padding="symmetric",
):  # fmt: skip
    """ResNet's 4th stage (res5: 3 bottleneck blocks, the first of stride 2)
    as a tf_keras model on [RoIs, crop, crop, in_channels] RoI features; the
    same definition and layer names (`stage4_block*`) as the backbone, so
    ImageNet weights copy into it by name; WS convolutions with
    `weight_standardization` and `padding` as the backbone's."""
    from keras_gn.models.resnet import resnet

    return resnet(
        depth=depth,
        norm=norm,
        include_top=False,
        input_shape=(crop_size, crop_size, in_channels),
        stages=(4,),
        weight_decay=weight_decay,
        decay_norms=False,
        framework="tf_keras",
        name=name,
        groups=groups,
        weight_standardization=weight_standardization,
        padding=padding,
    )


def _run_per_roi(model, roi_features, training):
    """[B, R, h, w, c] -> model on [B * R, h, w, c] -> [B, R, h', w', c']."""
    _, num_rois, height, width, channels = roi_features.get_shape().as_list()
    x = model(tf.reshape(roi_features, [-1, height, width, channels]), training=training)
    _, height, width, channels = x.get_shape().as_list()
    return tf.reshape(x, [-1, num_rois, height, width, channels])


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class C4DetectionHead(DetectionHead):
    """The C4 box head: res5 on each 14x14 RoI (stride 2: 7x7x2048), global
    average pooling, then the Model Garden's own class and box layers (its
    DetectionHead with no conv or fc layers of its own).

    `backbone_norm`/`backbone_groups`/`backbone_weight_standardization`/
    `backbone_padding`: res5's normalization (gn, frozen_bn, bn, syncbn),
    convolutions and padding, the backbone's. `depth`: the ResNet's (res5 has 3 blocks in
    ResNet-50 and -101 alike). `res5` is built here and shared with the mask
    head (`C4MaskHead(res5=box_head.res5)`), as in the original design."""

    def __init__(
        self,
        depth=50,
        backbone_norm="gn",
        backbone_groups=32,
        crop_size=14,
        in_channels=1024,
        weight_decay=0.0,
        backbone_weight_standardization=False,
        backbone_padding="symmetric",
        **kwargs,
    ):
        kwargs.update(num_convs=0, num_fcs=0)
        super().__init__(**kwargs)
        self._c4 = dict(
            depth=depth,
            backbone_norm=backbone_norm,
            backbone_groups=backbone_groups,
            crop_size=crop_size,
            in_channels=in_channels,
            weight_decay=weight_decay,
            backbone_weight_standardization=backbone_weight_standardization,
            backbone_padding=backbone_padding,
        )
        self.res5 = res5(
            depth, backbone_norm, backbone_groups, crop_size, in_channels, weight_decay,
            weight_standardization=backbone_weight_standardization, padding=backbone_padding,
        )  # fmt: skip

    def call(self, inputs, training=None):
        x = _run_per_roi(self.res5, inputs, training)
        return super().call(tf.reduce_mean(x, axis=[2, 3], keepdims=True), training=training)

    def get_config(self):
        return {**super().get_config(), **self._c4}


@tf_keras.utils.register_keras_serializable(package="keras_gn")
class C4MaskHead(MaskHead):
    """The C4 mask head: res5 on each RoI (7x7x2048 from 14x14 crops), then
    the Model Garden's MaskHead with no convolutions of its own: a 2x2
    stride-2 deconvolution (`num_filters`=256) with ReLU and a 1x1
    convolution per class, giving 14x14 masks (the original's resolution).

    `res5`: the box head's res5, whose weights this head shares."""

    def __init__(self, res5=None, **kwargs):
        # res5 halves the crop and the deconvolution doubles it back: masks
        # have the crop's resolution. (The C4 config sets the Model Garden's
        # upsample_factor to 1, from which it derives that target size.)
        kwargs.update(num_convs=0, upsample_factor=2)
        super().__init__(**kwargs)
        if res5 is None:
            raise ValueError("C4MaskHead needs the box head's res5: C4MaskHead(res5=box_head.res5, ...).")
        self.res5 = res5

    def call(self, inputs, training=None):
        roi_features, roi_classes = inputs
        return super().call([_run_per_roi(self.res5, roi_features, training), roi_classes], training=training)

    def get_config(self):
        return {**super().get_config(), "res5": tf_keras.utils.serialize_keras_object(self.res5)}

    @classmethod
    def from_config(cls, config):
        # A head rebuilt from its config gets its own res5 (the same
        # architecture; its weights come from the checkpoint): the sharing
        # with the box head is made by the task (`task.with_c4_heads`).
        config = dict(config)
        res5 = config.pop("res5", None)
        if isinstance(res5, dict):
            res5 = tf_keras.utils.deserialize_keras_object(res5)
        return cls(res5=res5, **config)
