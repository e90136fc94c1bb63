"""Model Garden builders for the GN paper's detector: a ResNet backbone whose
normalization is chosen by config, and an FPN with GN after its convolutions;
either with Weight Standardization in every convolution when the config's
`weight_standardization` is set (mmdetection's "gn+ws-all").

Registered with `backbones.factory.register_backbone_builder` and
`decoders.factory.register_decoder_builder` as "keras_gn_resnet" and
"keras_gn_fpn" when `keras_gn.detection` is imported.
"""

import tf_keras
from official.vision.modeling.backbones import factory as backbone_factory
from official.vision.modeling.decoders import factory as decoder_factory

from keras_gn.models.blocks import conv_class
from keras_gn.models.resnet import resnet
from keras_gn.norms import normalization

__all__ = ["build_backbone", "build_fpn", "ws_argument"]


def _weight_decay(l2_regularizer):
    # The Model Garden passes L2(l2_weight_decay / 2); resnet() wants the decay.
    return 2.0 * float(l2_regularizer.l2) if l2_regularizer is not None else 0.0


def ws_argument(cfg):
    """The builders' `weight_standardization` of a `GNResNet` config: False,
    or its convention ("variance" or "std")."""
    return cfg.ws_convention if cfg.weight_standardization else False


def _with_specs(model):
    model.output_specs = {level: tensor.shape for level, tensor in model.output.items()}
    return model


@backbone_factory.register_backbone_builder("keras_gn_resnet")
def build_backbone(input_specs, backbone_config, norm_activation_config, l2_regularizer=None):
    """ResNet-`model_id` from `keras_gn.models.resnet` (tf_keras) with its
    first `stages` stages, returning levels `min_output_level`..`stages + 1`
    ("2".."5" for FPN, "4" alone for C4); gamma and beta get no weight decay.
    The stem and the stages before `freeze_at` are frozen (Detectron's
    FREEZE_AT; 0 for training from scratch)."""
    del norm_activation_config  # the normalization is the backbone config's
    cfg = backbone_config.get()
    model = resnet(
        depth=cfg.model_id,
        norm=cfg.norm,
        input_shape=tuple(input_specs.shape[1:]),
        weight_decay=_weight_decay(l2_regularizer),
        decay_norms=False,
        framework="tf_keras",
        endpoints=True,
        stages=tuple(range(1, cfg.stages + 1)),
        name=f"resnet{cfg.model_id}_{cfg.norm}"
        + ("_ws" if cfg.weight_standardization else "")
        + ("" if cfg.stages == 4 else f"_res2to{cfg.stages + 1}"),
        groups=cfg.groups,
        weight_standardization=ws_argument(cfg),
        padding=cfg.padding,
    )
    if not 2 <= cfg.min_output_level <= cfg.stages + 1:
        raise ValueError(f"min_output_level={cfg.min_output_level} must be among the levels 2..{cfg.stages + 1} built.")
    if cfg.min_output_level > 2:
        levels = {k: v for k, v in model.output.items() if int(k) >= cfg.min_output_level}
        model = tf_keras.Model(model.input, levels, name=model.name)
    frozen = ["stem_"] + [f"stage{s}_" for s in range(1, cfg.freeze_at)]
    for layer in model.layers:
        if cfg.freeze_at and any(layer.name.startswith(p) for p in frozen):
            layer.trainable = False
    return _with_specs(model)


@decoder_factory.register_decoder_builder("keras_gn_fpn")
def build_fpn(input_specs, model_config, l2_regularizer=None):
    """FPN (Lin et al. 2017) with the configured normalization after its
    lateral and output convolutions; P6 by stride-2 subsampling of P5 as in
    Detectron. Levels `min_level`..`max_level` of the model config. With
    `weight_standardization`, every convolution is a WS one."""
    cfg = model_config.decoder.get()
    conv_layer = conv_class(tf_keras, 2, cfg.weight_standardization)
    make_norm = normalization(cfg.norm, framework="tf_keras", groups=cfg.groups)
    min_level, max_level = model_config.min_level, model_config.max_level
    backbone_max = max(int(level) for level in input_specs)
    inputs = {level: tf_keras.Input(shape[1:], name=f"c{level}") for level, shape in input_specs.items()}

    def conv(x, kernel, name):
        return conv_layer(
            cfg.num_filters,
            kernel,
            padding="same",
            use_bias=False,
            kernel_regularizer=l2_regularizer,
            kernel_initializer=tf_keras.initializers.VarianceScaling(1.0, "fan_in", "uniform"),
            name=name,
        )(x)

    laterals = {
        level: make_norm(axis=-1, name=f"fpn_lateral{level}_norm")(conv(inputs[str(level)], 1, f"fpn_lateral{level}"))
        for level in range(min_level, backbone_max + 1)
    }
    merged = {backbone_max: laterals[backbone_max]}
    for level in range(backbone_max - 1, min_level - 1, -1):
        up = tf_keras.layers.UpSampling2D(2, name=f"fpn_up{level}")(merged[level + 1])
        merged[level] = tf_keras.layers.Add(name=f"fpn_add{level}")([laterals[level], up])
    outputs = {
        str(level): make_norm(axis=-1, name=f"fpn_output{level}_norm")(conv(merged[level], 3, f"fpn_output{level}"))
        for level in range(min_level, backbone_max + 1)
    }
    for level in range(backbone_max + 1, max_level + 1):
        outputs[str(level)] = tf_keras.layers.MaxPooling2D(1, 2, name=f"fpn_p{level}")(outputs[str(level - 1)])
    name = f"fpn_{cfg.norm}" + ("_ws" if cfg.weight_standardization else "")
    return _with_specs(tf_keras.Model(inputs, outputs, name=name))
