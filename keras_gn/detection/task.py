"""The Model Garden task that builds the GN Mask R-CNN, registered for
`keras_gn.detection.configs.MaskRCNNTask`."""

import tensorflow as tf
import tf_keras
from absl import logging
from official.core import task_factory
from official.vision.modeling import factory, maskrcnn_model
from official.vision.tasks import maskrcnn as maskrcnn_task

from keras_gn.detection import configs, heads

__all__ = ["MaskRCNNTask", "with_heads", "with_c4_heads", "count_layers", "PARTS"]

PARTS = ("backbone", "decoder", "rpn_head", "detection_head", "mask_head")


def count_layers(obj, cls):
    """How many layers of class `cls` are inside `obj` (a layer, a model or a
    list of them, as MaskRCNNModel.detection_head is); 0 for None."""
    if obj is None:
        return 0
    if isinstance(obj, (list, tuple)) or type(obj).__name__ == "ListWrapper":
        return sum(count_layers(o, cls) for o in obj)
    return sum(isinstance(layer, cls) for layer in obj._flatten_layers(include_self=False))


def with_heads(model, norm, groups, rpn_norm="none"):
    """A MaskRCNNModel like `model` (from `factory.build_maskrcnn`, not yet
    called) whose box and mask heads use `norm` and whose RPN head uses
    `rpn_norm` (each one of heads.HEAD_NORMS)."""
    parts = dict(model.get_config())
    swap = lambda cls, head, norm=norm: cls(norm=norm, groups=groups, **head.get_config())
    parts["rpn_head"] = swap(heads.RPNHead, parts["rpn_head"], rpn_norm)
    box = parts["detection_head"]  # a list for cascades
    parts["detection_head"] = [swap(heads.DetectionHead, h) for h in box] if isinstance(box, (list, tuple)) else swap(heads.DetectionHead, box)
    if parts.get("mask_head") is not None:
        parts["mask_head"] = swap(heads.MaskHead, parts["mask_head"])
    return maskrcnn_model.MaskRCNNModel(**parts)


def with_c4_heads(model, model_config, weight_decay=0.0):
    """A MaskRCNNModel like `model` (built by `factory.build_maskrcnn` from a
    C4 config: backbone to level 4, identity decoder) with the C4 heads: the
    box head is res5 + pooling + the class and box layers, the mask head
    shares that res5 (see `configs.experiment_c4` for what differs from the
    original design). res5 has the backbone's normalization."""
    parts = dict(model.get_config())
    backbone = model_config.backbone.get()
    box = parts["detection_head"]
    if isinstance(box, (list, tuple)):
        raise ValueError("C4 heads support one box head, not a cascade.")
    parts["rpn_head"] = heads.RPNHead(norm=model_config.rpn_norm, groups=model_config.head_groups, **parts["rpn_head"].get_config())
    box_head = heads.C4DetectionHead(
        depth=backbone.model_id, backbone_norm=backbone.norm, backbone_groups=backbone.groups,
        crop_size=model_config.roi_aligner.crop_size, in_channels=int(model.backbone.output_specs["4"][-1]),
        weight_decay=weight_decay, norm="none", **box.get_config(),
    )
    parts["detection_head"] = box_head
    if parts.get("mask_head") is not None:
        parts["mask_head"] = heads.C4MaskHead(res5=box_head.res5, norm="none", **parts["mask_head"].get_config())
    return maskrcnn_model.MaskRCNNModel(**parts)


@task_factory.register_task_cls(configs.MaskRCNNTask)
class MaskRCNNTask(maskrcnn_task.MaskRCNNTask):
    """The Model Garden's Mask R-CNN task with our backbone, FPN and heads."""

    def build_model(self):
        model_config = self.task_config.model
        input_specs = tf_keras.layers.InputSpec(shape=[None] + model_config.input_size)
        wd = self.task_config.losses.l2_weight_decay
        l2 = tf_keras.regularizers.l2(wd / 2.0) if wd else None  # as the Model Garden's task
        model = factory.build_maskrcnn(input_specs=input_specs, model_config=model_config, l2_regularizer=l2)
        if model_config.heads == "c4":
            model = with_c4_heads(model, model_config, wd)
        else:
            model = with_heads(model, model_config.head_norm, model_config.head_groups, model_config.rpn_norm)
        if self.task_config.freeze_backbone:
            model.backbone.trainable = False
        # Builds the variables, as the Model Garden's task does.
        model(tf_keras.Input(model_config.input_size), image_shape=tf_keras.layers.Input([2]), training=False)
        return model

    def initialize(self, model):
        """Loads `init_checkpoint` as the Model Garden's task does; for C4
        with `init_checkpoint_modules="backbone"`, the checkpoint holds the
        whole ImageNet ResNet (`convert.write_backbone_checkpoint`): its
        res2-res4 go into the backbone and its res5 into the box head."""
        config = self.task_config
        if config.model.heads != "c4" or not config.init_checkpoint or config.init_checkpoint_modules != "backbone":
            return super().initialize(model)
        from keras_gn.models.resnet import resnet
        from keras_gn.models.transfer import copy_by_name

        path = config.init_checkpoint
        if tf.io.gfile.isdir(path):
            path = tf.train.latest_checkpoint(path)
        backbone = config.model.backbone.get()
        whole = resnet(
            depth=backbone.model_id, norm=backbone.norm, input_shape=tuple(config.model.input_size), framework="tf_keras",
            endpoints=True, **({"groups": backbone.groups} if backbone.norm == "gn" else {}),
        )
        tf.train.Checkpoint(backbone=whole).read(path).expect_partial().assert_existing_objects_matched()
        copy_by_name(whole, model.backbone)
        copy_by_name(whole, model.detection_head[0].res5)
        logging.info("Initialised the C4 backbone and res5 head from %s", path)
