"""Config classes and the registered experiments of the GN paper's Mask R-CNN
rows (Tables 4-7: C4 and FPN), on the Model Garden's `maskrcnn_resnetfpn_coco`.

    from official.core import exp_factory
    import keras_gn.detection  # registers what is below
    config = exp_factory.get_exp_config("maskrcnn_r50fpn_gn_coco")

Schedules are our reading of Detectron's GN configs, scaled from 16 to the
paper's 8 images per step (linear scaling): "1x" is 180k steps at lr 0.01 with
/10 at 120k and 160k; "long" (Table 6) 2x that; "scratch" (Table 7) 540k with
/10 at 420k and 500k; 1k steps of linear warm-up. Weight decay 1e-4 on
kernels only: our normalization layers carry no regularizer, so gamma and
beta are not decayed (the paper: this matters for detection). The Model
Garden pads images to a fixed square `input_size` (1024 x 1024 here) where
Detectron resizes to 800 on the short side and at most 1333 on the long one.
"""

import dataclasses

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams, optimization
from official.vision.configs import backbones, decoders
from official.vision.configs import maskrcnn as maskrcnn_cfg

__all__ = [
    "GNResNet",
    "GNFPN",
    "Backbone",
    "Decoder",
    "MaskRCNN",
    "MaskRCNNTask",
    "EXPERIMENTS",
    "experiment",
    "experiment_c4",
]


@dataclasses.dataclass
class GNResNet(hyperparams.Config):
    model_id: int = 50
    norm: str = "gn"  # gn, frozen_bn, bn, syncbn
    groups: int = 32
    freeze_at: int = 2  # freeze the stem and res2 (Detectron's FREEZE_AT); 0 from scratch
    stages: int = 4  # residual stages built: 4 = res2..res5 (FPN), 3 = res2..res4 (C4)
    min_output_level: int = 2  # the lowest level output; C4 outputs level 4 only
    weight_standardization: bool = False  # WS in every convolution (GN+WS)
    ws_convention: str = "variance"  # its formula: "variance" (ours, timm's) or "std" (the WS authors' weights)
    padding: str = "symmetric"  # as PyTorch/Caffe2 (published weights); "same" for models trained before it


@dataclasses.dataclass
class GNFPN(hyperparams.Config):
    num_filters: int = 256
    norm: str = "gn"  # gn or none
    groups: int = 32
    weight_standardization: bool = False  # WS in the lateral and output convolutions


@dataclasses.dataclass
class Backbone(backbones.Backbone):
    keras_gn_resnet: GNResNet = dataclasses.field(default_factory=GNResNet)


@dataclasses.dataclass
class Decoder(decoders.Decoder):
    keras_gn_fpn: GNFPN = dataclasses.field(default_factory=GNFPN)


@dataclasses.dataclass
class MaskRCNN(maskrcnn_cfg.MaskRCNN):
    backbone: Backbone = dataclasses.field(default_factory=lambda: Backbone(type="keras_gn_resnet"))
    decoder: Decoder = dataclasses.field(default_factory=lambda: Decoder(type="keras_gn_fpn"))
    heads: str = "fpn"  # "fpn": 4conv1fc box and 4conv mask heads; "c4": res5 heads (see experiment_c4)
    # Anchor sizes in pixels at the single level min_level == max_level, one
    # per anchor.num_scales (C4: 32-512); empty: the Model Garden's anchors.
    anchor_sizes: list[float] = dataclasses.field(default_factory=list)
    head_norm: str = "gn"  # in the box (4conv1fc) and mask (4conv) heads: gn or none
    head_groups: int = 32
    head_weight_standardization: bool = False  # WS in the box and mask heads' convolutions
    rpn_norm: str = "none"  # Detectron's RPN head has no normalization


@dataclasses.dataclass
class MaskRCNNTask(maskrcnn_cfg.MaskRCNNTask):
    model: MaskRCNN = dataclasses.field(default_factory=MaskRCNN)


def _schedule(steps, boundaries, batch=8):
    lr = 0.02 * batch / 16
    return optimization.OptimizationConfig(
        {
            "optimizer": {"type": "sgd", "sgd": {"momentum": 0.9}},
            "learning_rate": {
                "type": "stepwise",
                "stepwise": {"boundaries": boundaries, "values": [lr, lr / 10, lr / 100]},
            },
            "warmup": {"type": "linear", "linear": {"warmup_steps": 1000, "warmup_learning_rate": lr / 3}},
        }
    ), steps


SCHEDULES = {
    "1x": _schedule(180_000, [120_000, 160_000]),
    "long": _schedule(360_000, [240_000, 320_000]),
    "scratch": _schedule(540_000, [420_000, 500_000]),
}


def experiment(
    depth=50, backbone_norm="gn", fpn_norm="gn", head_norm="gn", schedule="1x", scratch=False, design="fpn",
    weight_standardization=False,
):  # fmt: skip
    """An ExperimentConfig for one row of the paper: 8 replicas x 1 image.
    `design="c4"` gives `experiment_c4(depth, backbone_norm, schedule,
    weight_standardization)`. `weight_standardization`: WS in every
    convolution of the backbone, the FPN and the box and mask heads (not the
    RPN nor the predictors: mmdetection's "gn+ws-all"), from a GN+WS ImageNet
    backbone (`runs/r{depth}_gn_ws_backbone/ckpt`)."""
    if design == "c4":
        return experiment_c4(depth, backbone_norm, schedule, weight_standardization)
    if design != "fpn":
        raise ValueError(f"design must be 'fpn' or 'c4'; got {design!r}.")
    base = exp_factory.get_exp_config("maskrcnn_resnetfpn_coco")
    optimizer, steps = SCHEDULES[schedule]
    ws = "_ws" if weight_standardization else ""
    task = MaskRCNNTask(
        init_checkpoint="" if scratch else f"runs/r{depth}_{backbone_norm.replace('frozen_', '')}{ws}_backbone/ckpt",
        init_checkpoint_modules="" if scratch else "backbone",
        annotation_file=base.task.annotation_file,
        model=MaskRCNN(
            num_classes=91,
            input_size=[1024, 1024, 3],
            include_mask=True,
            backbone=Backbone(
                type="keras_gn_resnet",
                keras_gn_resnet=GNResNet(
                    model_id=depth,
                    norm=backbone_norm,
                    freeze_at=0 if scratch else 2,
                    weight_standardization=weight_standardization,
                ),
            ),
            decoder=Decoder(
                type="keras_gn_fpn", keras_gn_fpn=GNFPN(norm=fpn_norm, weight_standardization=weight_standardization)
            ),
            head_norm=head_norm,
            head_weight_standardization=weight_standardization,
        ),
        losses=maskrcnn_cfg.Losses(l2_weight_decay=1e-4),
        train_data=base.task.train_data.replace(global_batch_size=8),
        validation_data=base.task.validation_data.replace(global_batch_size=8),
    )
    trainer = base.trainer.replace(train_steps=steps, optimizer_config=optimizer, validation_steps=5000 // 8)
    return cfg.ExperimentConfig(
        runtime=cfg.RuntimeConfig(mixed_precision_dtype="float32"),
        task=task,
        trainer=trainer,
        restrictions=base.restrictions,
    )


def experiment_c4(depth=50, norm="gn", schedule="1x", weight_standardization=False):
    """The original Mask R-CNN's C4 design (He et al. 2017; the GN paper's
    Table 4) on the Model Garden: the backbone is res2-res4 (stride 16) and
    outputs level 4 only; no decoder (identity); the RPN (one 3x3 conv of
    1024 channels, 15 anchors per position: 32-512 pixels x 3 aspect ratios)
    and RoIAlign (14x14) work on level 4; the box head is res5 (3 bottleneck
    blocks, the first of stride 2, with the backbone's normalization) on each
    RoI, global average pooling, and the class and box layers; the mask head
    runs res5 (the same
    layer, so the same weights) on the mask RoIs, then a 2x2 stride-2
    deconvolution (256 channels, ReLU) and a per-class 1x1 convolution: 14x14
    masks. `norm`: "gn" (GN, G = 32, everywhere in res2-res5, the mask head's
    res5 included) or "frozen_bn" (the paper's BN*). Weights of the whole
    ImageNet ResNet come from `init_checkpoint` (the converter's backbone
    checkpoint): res2-res4 into the backbone, res5 into the box head.

    Where the Model Garden's structure forces a difference, and its cost:

    - res5 is computed twice on mask RoIs. The MaskRCNNModel crops features
      for its mask head itself and gives it no access to the box head's
      activations, so the mask head cannot reuse the box head's res5 output
      as the original does. It shares the layer instead: the same weights,
      and since the mask RoIs are the sampled foreground box RoIs cropped the
      same way, and GN and frozen BN do not depend on the batch, the same
      activations and gradients as sharing. The cost is compute: res5 on up
      to 128 mask RoIs per image on top of its 512 box RoIs in training
      (about 25% more res5 work). At inference the original also reruns res5
      on the final boxes, so nothing differs there.
    - Anchors. The Model Garden's anchor generator places `num_scales`
      sizes within one octave per level (2^(i/num_scales)), so one level
      cannot hold the original's 32-512 pixel anchors. `anchor_sizes` makes
      our task replace the parser's anchors and RPN targets with anchors of
      those sizes (5 sizes x 3 aspect ratios, 15 per position), labelled by
      the Model Garden's own RpnAnchorLabeler with the parser's thresholds.
      Cost: the parser still labels its own anchors first, so the input
      pipeline labels twice (CPU work, no effect on what is learned).
    - Mask target size. The Model Garden derives it as the mask crop size
      times `mask_head.upsample_factor`, assuming the mask head keeps the
      crop's resolution before upsampling; res5 halves it, so the config
      says upsample_factor=1 (the 14x14 target) while the head's
      deconvolution always doubles (7 -> 14). Masks of 28x28 need
      `mask_roi_aligner.crop_size=28`, which runs res5 on 28x28 crops (4x
      its cost on mask RoIs).
    - The RPN and detection settings not named above (proposal counts, NMS,
      sampling) are the Model Garden's defaults, not Detectron's C4 ones, and
      images are padded to a fixed 1024x1024 square as in our FPN rows.
    """
    config = experiment(
        depth,
        backbone_norm=norm,
        fpn_norm="none",
        head_norm="none",
        schedule=schedule,
        weight_standardization=weight_standardization,
    )
    model = config.task.model
    model.min_level = model.max_level = 4
    model.anchor = maskrcnn_cfg.Anchor(num_scales=5, aspect_ratios=[0.5, 1.0, 2.0], anchor_size=2.0)
    model.anchor_sizes = [32.0, 64.0, 128.0, 256.0, 512.0]
    model.backbone.keras_gn_resnet.stages = 3
    model.backbone.keras_gn_resnet.min_output_level = 4
    model.decoder = Decoder(type="identity")
    model.rpn_head = maskrcnn_cfg.RPNHead(num_convs=1, num_filters=1024)
    model.detection_head = maskrcnn_cfg.DetectionHead(num_convs=0, num_fcs=0)
    model.roi_aligner = maskrcnn_cfg.ROIAligner(crop_size=14)
    model.mask_head = maskrcnn_cfg.MaskHead(num_convs=0, num_filters=256, upsample_factor=1)
    model.mask_roi_aligner = maskrcnn_cfg.MaskROIAligner(crop_size=14)
    model.heads = "c4"
    return config


# name -> (experiment arguments, the paper's box AP / mask AP; for GN+WS, the
# Weight Standardization authors' R-50 2x ("long") figures)
EXPERIMENTS = {
    "maskrcnn_r50c4_frozenbn_coco": (dict(design="c4", backbone_norm="frozen_bn"), (37.7, 32.8)),
    "maskrcnn_r50c4_gn_coco": (dict(design="c4"), (38.8, 33.6)),
    "maskrcnn_r50fpn_frozenbn_coco": (dict(backbone_norm="frozen_bn", fpn_norm="none", head_norm="none"), (38.6, 34.2)),
    "maskrcnn_r50fpn_gn_coco": (dict(), (40.0, 34.8)),
    "maskrcnn_r101fpn_gn_coco": (dict(depth=101, schedule="long"), (41.8, 36.8)),
    "maskrcnn_r50fpn_gn_scratch_coco": (dict(schedule="scratch", scratch=True), (39.5, 35.2)),
    "maskrcnn_r50fpn_gn_ws_coco": (dict(schedule="long", weight_standardization=True), (40.8, 36.5)),
}

for _name, (_kwargs, _) in EXPERIMENTS.items():
    exp_factory.register_config_factory(_name)(lambda kwargs=_kwargs: experiment(**kwargs))
