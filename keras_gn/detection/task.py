"""The Model Garden task that builds the GN Mask R-CNN, registered for
`keras_gn.detection.configs.MaskRCNNTask`."""

import math

import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging
from official.core import task_factory
from official.vision.modeling import factory, maskrcnn_model
from official.vision.ops import anchor
from official.vision.tasks import maskrcnn as maskrcnn_task

from keras_gn.detection import configs, heads
from keras_gn.detection.backbone import ws_argument
from keras_gn.errors import checkpoint_error

__all__ = ["MaskRCNNTask", "with_heads", "with_c4_heads", "count_layers", "single_level_anchors", "PARTS"]

PARTS = ("backbone", "decoder", "rpn_head", "detection_head", "mask_head")


def count_layers(obj, cls):
    """How many layers of class `cls` are inside `obj` (a layer, a model or a
    list of them, as MaskRCNNModel.detection_head is); 0 for None."""
    if obj is None:
        return 0
    if isinstance(obj, (list, tuple)) or type(obj).__name__ == "ListWrapper":
        return sum(count_layers(o, cls) for o in obj)
    # tf_keras's private layer walk (no public one reaches nested heads);
    # stable under the tf-models-official==2.20.* / tf-keras~=2.20 pins.
    return sum(isinstance(layer, cls) for layer in obj._flatten_layers(include_self=False))


def with_heads(model, norm, groups, rpn_norm="none", weight_standardization=False):
    """A MaskRCNNModel like `model` (from `factory.build_maskrcnn`, not yet
    called) whose box and mask heads use `norm` and whose RPN head uses
    `rpn_norm` (each one of heads.HEAD_NORMS); with `weight_standardization`
    the box and mask heads' convolutions are WS ones (the RPN's are not, as
    in mmdetection's GN+WS Mask R-CNN)."""
    parts = dict(model.get_config())
    swap = lambda cls, head, norm=norm, ws=weight_standardization: cls(
        norm=norm, groups=groups, weight_standardization=ws, **head.get_config()
    )
    parts["rpn_head"] = swap(heads.RPNHead, parts["rpn_head"], rpn_norm, False)
    box = parts["detection_head"]  # a list for cascades
    parts["detection_head"] = (
        [swap(heads.DetectionHead, h) for h in box]
        if isinstance(box, (list, tuple))
        else swap(heads.DetectionHead, box)
    )
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
    parts["rpn_head"] = heads.RPNHead(
        norm=model_config.rpn_norm, groups=model_config.head_groups, **parts["rpn_head"].get_config()
    )
    box_head = heads.C4DetectionHead(
        depth=backbone.model_id,
        backbone_norm=backbone.norm,
        backbone_groups=backbone.groups,
        crop_size=model_config.roi_aligner.crop_size,
        in_channels=int(model.backbone.output_specs["4"][-1]),
        weight_decay=weight_decay,
        backbone_weight_standardization=ws_argument(backbone),
        backbone_padding=backbone.padding,
        norm="none",
        **box.get_config(),
    )
    parts["detection_head"] = box_head
    if parts.get("mask_head") is not None:
        parts["mask_head"] = heads.C4MaskHead(res5=box_head.res5, norm="none", **parts["mask_head"].get_config())
    return maskrcnn_model.MaskRCNNModel(**parts)


def single_level_anchors(sizes, aspect_ratios, image_size, level):
    """Anchors of the given pixel `sizes` (any spread, e.g. C4's 32-512) at
    one level, laid out as the Model Garden's anchor generator lays out its
    own (per position: sizes outer, aspect ratios inner; y0, x0, y1, x1 in
    pixels; centres on the level's grid): {str(level): [H, W, 4 * A]}."""
    height, width = image_size
    rows, cols = math.ceil(height / 2**level), math.ceil(width / 2**level)
    y = (np.arange(rows) + 0.5) * height / rows
    x = (np.arange(cols) + 0.5) * width / cols
    xv, yv = np.meshgrid(x, y)
    boxes = []
    for size in sizes:
        for ratio in aspect_ratios:
            half_h, half_w = size / math.sqrt(ratio) / 2, size * math.sqrt(ratio) / 2
            boxes.append(np.stack([yv - half_h, xv - half_w, yv + half_h, xv + half_w], axis=-1))
    return {str(level): tf.constant(np.concatenate(boxes, axis=-1), tf.float32)}


@task_factory.register_task_cls(configs.MaskRCNNTask)
class MaskRCNNTask(maskrcnn_task.MaskRCNNTask):
    """The Model Garden's Mask R-CNN task with our backbone, FPN and heads."""

    def build_model(self):
        model_config = self.task_config.model
        if model_config.anchor_sizes:
            self._check_anchor_sizes()
        input_specs = tf_keras.layers.InputSpec(shape=[None] + model_config.input_size)
        wd = self.task_config.losses.l2_weight_decay
        l2 = tf_keras.regularizers.l2(wd / 2.0) if wd else None  # as the Model Garden's task
        model = factory.build_maskrcnn(input_specs=input_specs, model_config=model_config, l2_regularizer=l2)
        if model_config.heads == "c4":
            model = with_c4_heads(model, model_config, wd)
        else:
            model = with_heads(
                model,
                model_config.head_norm,
                model_config.head_groups,
                model_config.rpn_norm,
                model_config.head_weight_standardization,
            )
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
        try:
            self._initialize(model)
        except tf.errors.OpError as error:  # NotFound, DataLoss, ... from reading the files
            raise checkpoint_error(
                self.task_config.init_checkpoint,
                error,
                "Write it again with keras-gn-convert-backbone, give another --init_checkpoint, "
                "or --init_checkpoint= to train from scratch.",
            ) from None

    def _initialize(self, model):
        config = self.task_config
        if config.model.heads != "c4" or not config.init_checkpoint or config.init_checkpoint_modules != "backbone":
            return super().initialize(model)
        from keras_gn.detection.convert import whole_backbone
        from keras_gn.models.transfer import copy_by_name

        path = config.init_checkpoint
        if tf.io.gfile.isdir(path):
            path = tf.train.latest_checkpoint(path)
        backbone = config.model.backbone.get()
        whole = whole_backbone(
            backbone.model_id,
            backbone.norm,
            backbone.groups,
            config.model.input_size[0],
            weight_standardization=ws_argument(backbone),
            padding=backbone.padding,
        )
        tf.train.Checkpoint(backbone=whole).read(path).expect_partial().assert_existing_objects_matched()
        copy_by_name(whole, model.backbone)
        copy_by_name(whole, model.detection_head[0].res5)
        logging.info("Initialised the C4 backbone and res5 head from %s", path)

    def validation_step(self, inputs, model, metrics=None):
        """The Model Garden's, without its placeholder loss: Mask R-CNN's
        evaluation computes no loss, and reported `validation_loss: 0.0`."""
        logs = super().validation_step(inputs, model, metrics)
        logs.pop(self.loss, None)
        return logs

    def _check_anchor_sizes(self):
        model = self.task_config.model
        if model.min_level != model.max_level or len(model.anchor_sizes) != model.anchor.num_scales:
            raise ValueError(
                f"anchor_sizes works on one level with one size per scale: got min_level={model.min_level}, "
                f"max_level={model.max_level}, {len(model.anchor_sizes)} sizes and "
                f"anchor.num_scales={model.anchor.num_scales}."
            )

    def build_inputs(self, params, input_context=None, dataset_fn=None):
        """The Model Garden's input pipeline; with `model.anchor_sizes` (C4),
        its anchors and RPN targets are replaced by anchors of those sizes,
        labelled by the Model Garden's own RpnAnchorLabeler with the
        parser's thresholds. (The parser still labels its own one-octave
        anchors first: wasted input-pipeline work, no effect on training.)"""
        dataset = super().build_inputs(params, input_context, dataset_fn)
        model = self.task_config.model
        if not model.anchor_sizes:
            return dataset
        self._check_anchor_sizes()
        anchors = single_level_anchors(
            model.anchor_sizes, model.anchor.aspect_ratios, model.input_size[:2], model.min_level
        )
        parser = params.parser
        labeler = anchor.RpnAnchorLabeler(
            parser.rpn_match_threshold,
            parser.rpn_unmatched_threshold,
            parser.rpn_batch_size_per_im,
            parser.rpn_fg_fraction,
        )

        def label(boxes_and_classes):
            boxes, classes = boxes_and_classes
            real = classes >= 0  # the parser pads with -1
            boxes = tf.boolean_mask(boxes, real)
            classes = tf.cast(tf.boolean_mask(classes, real)[:, None], tf.float32)
            return labeler.label_anchors(anchors, boxes, classes)

        def relabel(images, labels):
            labels = dict(labels)
            batch = tf.shape(images)[0]
            labels["anchor_boxes"] = {k: tf.tile(v[None], [batch, 1, 1, 1]) for k, v in anchors.items()}
            if params.is_training:
                spec = {k: tf.TensorSpec(v.shape[:2] + [v.shape[2] // 4], tf.int32) for k, v in anchors.items()}
                box_spec = {k: tf.TensorSpec(v.shape, tf.float32) for k, v in anchors.items()}
                scores, boxes = tf.map_fn(
                    label, (labels["gt_boxes"], labels["gt_classes"]), fn_output_signature=(spec, box_spec)
                )
                labels["rpn_score_targets"], labels["rpn_box_targets"] = scores, boxes
            return images, labels

        return dataset.map(relabel, num_parallel_calls=tf.data.AUTOTUNE)
