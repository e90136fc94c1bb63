"""From the ImageNet binary's Keras 3 checkpoint to a tf_keras (Model Garden)
backbone: the two are built by the same `keras_gn.models.resnet` definition,
so every layer has the same name in both and the weights copy by name."""

from keras_gn.models.transfer import copy_by_name

__all__ = ["convert", "write_backbone_checkpoint", "whole_backbone", "backbone_arguments", "detector_overrides"]


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
    """The detection backbone's `resnet()` arguments for `source` (a model or
    its path), a dict of depth, norm, groups, weight_standardization and
    padding, and the model: depth, norm and groups are each given value,
    else the source model's own (a `keras_gn.models.ResNet` keeps its
    builder's arguments), with BN read as "frozen_bn" (the paper's detection
    baseline, BN*); else 50, "gn", 32. Weight standardization (False, or its
    convention) and padding are always the source's own: its kernels mean
    what they mean in its convolutions, with its padding."""
    from keras_gn.conv import WeightStandardized
    from keras_gn.errors import load_model

    model = (
        load_model(source, "Give --keras_model a model.keras written by keras-gn-imagenet.")
        if isinstance(source, str)
        else source
    )
    kept = getattr(model, "arguments", {})
    source_norm = kept.get("norm")
    layers = list(model._flatten_layers(include_self=False))
    padded = any(layer.name.endswith("_pad") for layer in layers)
    return {
        "depth": depth or kept.get("depth") or 50,
        "norm": norm or ("frozen_bn" if source_norm == "bn" else source_norm) or "gn",
        "groups": groups or kept.get("groups") or 32,
        "weight_standardization": next((l.convention for l in layers if isinstance(l, WeightStandardized)), False),
        "padding": kept.get("padding") or ("symmetric" if padded else "same"),
    }, model


def write_backbone_checkpoint(source, output_prefix, depth=None, norm=None, groups=None, input_size=1024):
    """Converts a Keras 3 ImageNet ResNet into the Model Garden backbone and
    writes it as a TF checkpoint that a Mask R-CNN experiment loads with
    `init_checkpoint=output_prefix`, `init_checkpoint_modules="backbone"`.

    Args:
      source: the Keras 3 model or its `model.keras` path.
      output_prefix: checkpoint path prefix, e.g. "runs/r50_gn_backbone/ckpt".
      depth, norm, groups: of the backbone ("frozen_bn" for a BN model that
        detection keeps frozen); None reads them from the source model
        (`backbone_arguments`), as weight standardization and padding
        always are.
      input_size: the detector's square input side (only shapes the graph).

    Returns:
      (the path written, the backbone's arguments): an experiment whose
      backbone config differs from them (WS, its convention, padding) needs
      them as overrides (`detector_overrides`).
    """
    import tensorflow as tf

    arguments, model = backbone_arguments(source, depth, norm, groups)
    backbone = whole_backbone(input_size=input_size, **arguments)
    convert(model, backbone)
    return tf.train.Checkpoint(backbone=backbone).write(output_prefix), arguments


def detector_overrides(arguments):
    """The `--params_override` items that make a Mask R-CNN experiment's
    backbone config match a converted backbone's `arguments`."""
    prefix = "task.model.backbone.keras_gn_resnet"
    ws = arguments["weight_standardization"]
    items = [f"{prefix}.model_id={arguments['depth']}", f"{prefix}.norm={arguments['norm']}"]
    items += [f"{prefix}.groups={arguments['groups']}", f"{prefix}.padding={arguments['padding']}"]
    items += [f"{prefix}.weight_standardization={str(bool(ws)).lower()}"]
    if ws:
        items += [f"{prefix}.ws_convention={ws}"]
    return ",".join(items)


def whole_backbone(depth=50, norm="gn", groups=32, input_size=1024, weight_standardization=False, padding="symmetric"):
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
        padding=padding,
    )
