"""Config classes and the registered experiments of the GN paper's Mask R-CNN
rows (Tables 5-7), on the Model Garden's `maskrcnn_resnetfpn_coco`.

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

__all__ = ["GNResNet", "GNFPN", "Backbone", "Decoder", "MaskRCNN", "MaskRCNNTask", "EXPERIMENTS", "experiment"]


@dataclasses.dataclass
class GNResNet(hyperparams.Config):
    model_id: int = 50
    norm: str = "gn"  # gn, frozen_bn, bn, syncbn
    groups: int = 32
    freeze_at: int = 2  # freeze the stem and res2 (Detectron's FREEZE_AT); 0 from scratch


@dataclasses.dataclass
class GNFPN(hyperparams.Config):
    num_filters: int = 256
    norm: str = "gn"  # gn or none
    groups: int = 32


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
    head_norm: str = "gn"  # in the box (4conv1fc) and mask (4conv) heads: gn or none
    head_groups: int = 32
    rpn_norm: str = "none"  # Detectron's RPN head has no normalization


@dataclasses.dataclass
class MaskRCNNTask(maskrcnn_cfg.MaskRCNNTask):
    model: MaskRCNN = dataclasses.field(default_factory=MaskRCNN)


def _schedule(steps, boundaries, batch=8):
    lr = 0.02 * batch / 16
    return optimization.OptimizationConfig(
        {
            "optimizer": {"type": "sgd", "sgd": {"momentum": 0.9}},
            "learning_rate": {"type": "stepwise", "stepwise": {"boundaries": boundaries, "values": [lr, lr / 10, lr / 100]}},
            "warmup": {"type": "linear", "linear": {"warmup_steps": 1000, "warmup_learning_rate": lr / 3}},
        }
    ), steps


SCHEDULES = {
    "1x": _schedule(180_000, [120_000, 160_000]),
    "long": _schedule(360_000, [240_000, 320_000]),
    "scratch": _schedule(540_000, [420_000, 500_000]),
}


def experiment(depth=50, backbone_norm="gn", fpn_norm="gn", head_norm="gn", schedule="1x", scratch=False):
    """An ExperimentConfig for one row of the paper: 8 replicas x 1 image."""
    base = exp_factory.get_exp_config("maskrcnn_resnetfpn_coco")
    optimizer, steps = SCHEDULES[schedule]
    task = MaskRCNNTask(
        init_checkpoint="" if scratch else f"runs/r{depth}_{backbone_norm.replace('frozen_', '')}_backbone/ckpt",
        init_checkpoint_modules="" if scratch else "backbone",
        annotation_file=base.task.annotation_file,
        model=MaskRCNN(
            num_classes=91,
            input_size=[1024, 1024, 3],
            include_mask=True,
            backbone=Backbone(type="keras_gn_resnet", keras_gn_resnet=GNResNet(model_id=depth, norm=backbone_norm, freeze_at=0 if scratch else 2)),
            decoder=Decoder(type="keras_gn_fpn", keras_gn_fpn=GNFPN(norm=fpn_norm)),
            head_norm=head_norm,
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


# name -> (experiment arguments, the paper's box AP / mask AP)
EXPERIMENTS = {
    "maskrcnn_r50fpn_frozenbn_coco": (dict(backbone_norm="frozen_bn", fpn_norm="none", head_norm="none"), (38.6, 34.2)),
    "maskrcnn_r50fpn_gn_coco": (dict(), (40.0, 34.8)),
    "maskrcnn_r101fpn_gn_coco": (dict(depth=101, schedule="long"), (41.8, 36.8)),
    "maskrcnn_r50fpn_gn_scratch_coco": (dict(schedule="scratch", scratch=True), (39.5, 35.2)),
}

for _name, (_kwargs, _) in EXPERIMENTS.items():
    exp_factory.register_config_factory(_name)(lambda kwargs=_kwargs: experiment(**kwargs))
