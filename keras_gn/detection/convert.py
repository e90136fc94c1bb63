"""From the ImageNet binary's Keras 3 checkpoint to a tf_keras (Model Garden)
backbone: the two are built by the same `keras_gn.models.resnet` definition,
so every layer has the same name in both and the weights copy by name."""

from keras_gn.models.transfer import copy_by_name

__all__ = ["convert", "write_backbone_checkpoint", "whole_backbone", "backbone_arguments"]


def convert(source, target):
    """Copies the weights of a Keras 3 ResNet into a tf_keras one.

    Args:
      source: a Keras 3 model from `keras_gn.models.resnet`, or the path of
        one saved with `model.save` (`model.keras` from
        `keras-gn-imagenet`).
      target: a tf_keras model built with `resnet(..., framework="tf_keras")`
        of the same depth, width and normalization (the top may be missing).

    Returns:
      The names of the layers copied. Raises ValueError when a layer of
      `target` has no twin in `source`, or weights of other shapes.
    """
    return copy_by_name(source, target)


def backbone_arguments(source, depth=None, norm=None, groups=None):
    """(depth, norm, groups, weight_standardization) of the detection
    backbone for `source` (a model or its path): each given value, else the
    source model's own (a `keras_gn.models.ResNet` keeps its builder's
    arguments), with BN read as "frozen_bn" (the paper's detection baseline,
    BN*); else 50, "gn", 32. Weight standardization is the source's own
    (whether its convolutions are WS ones): its kernels mean something else
    in a plain convolution."""
    from keras_gn.conv import WeightStandardized
    from keras_gn.errors import load_model

    model = (
        load_model(source, "Give --keras_model a model.keras written by keras-gn-imagenet.")
        if isinstance(source, str)
        else source
    )
    kept = getattr(model, "arguments", {})
    source_norm = kept.get("norm")
    return (
        depth or kept.get("depth") or 50,
        norm or ("frozen_bn" if source_norm == "bn" else source_norm) or "gn",
        groups or kept.get("groups") or 32,
        any(isinstance(layer, WeightStandardized) for layer in model._flatten_layers(include_self=False)),
    ), model


def write_backbone_checkpoint(source, output_prefix, depth=None, norm=None, groups=None, input_size=1024):
    """Converts a Keras 3 ImageNet ResNet into the Model Garden backbone and
    writes it as a TF checkpoint that a Mask R-CNN experiment loads with
    `init_checkpoint=output_prefix`, `init_checkpoint_modules="backbone"`.

    Args:
      source: the Keras 3 model or its `model.keras` path.
      output_prefix: checkpoint path prefix, e.g. "runs/r50_gn_backbone/ckpt".
      depth, norm, groups: of the backbone ("frozen_bn" for a BN model that
        detection keeps frozen); None reads them from the source model
        (`backbone_arguments`), as weight standardization always is.
      input_size: the detector's square input side (only shapes the graph).

    Returns:
      The path written.
    """
    import tensorflow as tf

    (depth, norm, groups, weight_standardization), model = backbone_arguments(source, depth, norm, groups)
    backbone = whole_backbone(depth, norm, groups, input_size, weight_standardization)
    convert(model, backbone)
    return tf.train.Checkpoint(backbone=backbone).write(output_prefix)


def whole_backbone(depth=50, norm="gn", groups=32, input_size=1024, weight_standardization=False):
    """The tf_keras ResNet (res2-res5, levels "2".."5") that
    `write_backbone_checkpoint` writes as `backbone`; the C4 task reads the
    checkpoint into one to copy res2-res4 and res5 apart."""
    from keras_gn.models.resnet import resnet

    return resnet(
        depth=depth,
        norm=norm,
        input_shape=(input_size, input_size, 3),
        framework="tf_keras",
        endpoints=True,
        groups=groups,
        weight_standardization=weight_standardization,
    )
