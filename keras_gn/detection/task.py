"""The Model Garden task that builds the GN Mask R-CNN, registered for
`keras_gn.detection.configs.MaskRCNNTask`."""

import tf_keras
from official.core import task_factory
from official.vision.modeling import factory, maskrcnn_model
from official.vision.tasks import maskrcnn as maskrcnn_task

from keras_gn.detection import configs, heads

__all__ = ["MaskRCNNTask", "with_heads", "count_layers", "PARTS"]

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


@task_factory.register_task_cls(configs.MaskRCNNTask)
class MaskRCNNTask(maskrcnn_task.MaskRCNNTask):
    """The Model Garden's Mask R-CNN task with our backbone, FPN and heads."""

    def build_model(self):
        model_config = self.task_config.model
        input_specs = tf_keras.layers.InputSpec(shape=[None] + model_config.input_size)
        wd = self.task_config.losses.l2_weight_decay
        l2 = tf_keras.regularizers.l2(wd / 2.0) if wd else None  # as the Model Garden's task
        model = factory.build_maskrcnn(input_specs=input_specs, model_config=model_config, l2_regularizer=l2)
        model = with_heads(model, model_config.head_norm, model_config.head_groups, model_config.rpn_norm)
        if self.task_config.freeze_backbone:
            model.backbone.trainable = False
        # Builds the variables, as the Model Garden's task does.
        model(tf_keras.Input(model_config.input_size), image_shape=tf_keras.layers.Input([2]), training=False)
        return model
