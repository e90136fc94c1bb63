"""Mask R-CNN with GN on the Model Garden: registrations, where the
normalization layers are, and weight decay."""

import numpy as np
import pytest

pytest.importorskip("official.vision")

import tf_keras  # noqa: E402
from official.core import exp_factory, task_factory  # noqa: E402

from keras_gn.detection import configs  # noqa: E402
from keras_gn.detection.task import count_layers as _count  # noqa: E402
from keras_gn.legacy import GroupNormalization  # noqa: E402

# experiment -> GN layers in backbone, FPN, RPN, box head, mask head; BN layers in the backbone; BN in the heads
EXPECTED = {
    "maskrcnn_r50fpn_frozenbn_coco": ((0, 0, 0, 0, 0), 53, 0),
    "maskrcnn_r50fpn_gn_coco": ((53, 8, 0, 4, 4), 0, 0),
    "maskrcnn_r101fpn_gn_coco": ((104, 8, 0, 4, 4), 0, 0),
    "maskrcnn_r50fpn_gn_scratch_coco": ((53, 8, 0, 4, 4), 0, 0),
    # C4: res2-res4 in the backbone (1 + 10 + 13 + 19), res5 (10) in the box
    # head and, the same layers, in the mask head; no decoder.
    "maskrcnn_r50c4_frozenbn_coco": ((0, 0, 0, 0, 0), 43, 10),
    "maskrcnn_r50c4_gn_coco": ((43, 0, 0, 10, 10), 0, 0),
    "maskrcnn_r50fpn_gn_ws_coco": ((53, 8, 0, 4, 4), 0, 0),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def built(request):
    config = exp_factory.get_exp_config(request.param)
    config.task.model.input_size = [128, 128, 3]
    task = task_factory.get_task(config.task)
    return request.param, config, task.build_model()


def test_registered_experiment_builds_with_the_paper_normalization(built):
    name, config, model = built
    (backbone, fpn, rpn, box, mask), bn, head_bn = EXPECTED[name]
    gn = GroupNormalization
    assert (
        _count(model.backbone, gn),
        _count(model.decoder, gn),
        _count(model.rpn_head, gn),
        _count(model.detection_head, gn),
        _count(model.mask_head, gn),
    ) == (backbone, fpn, rpn, box, mask)
    bn_layers = [l for l in model.backbone.layers if isinstance(l, tf_keras.layers.BatchNormalization)]
    assert len(bn_layers) == bn
    # The heads hold no BatchNormalization (GN or none), but C4's res5 with frozen BN.
    assert _count(model.rpn_head, tf_keras.layers.BatchNormalization) == 0
    BN = tf_keras.layers.BatchNormalization
    assert _count(model.detection_head, BN) == _count(model.mask_head, BN) == head_bn
    if head_bn:
        assert all(not l.trainable for l in model.detection_head[0].res5.layers if isinstance(l, BN))
    assert config.task.train_data.global_batch_size == 8
    frozen = [l.name for l in model.backbone.layers if isinstance(l, tf_keras.layers.Conv2D) and not l.trainable]
    if name == "maskrcnn_r50fpn_gn_scratch_coco":
        assert frozen == []
    else:  # Detectron's FREEZE_AT=2: stem and res2 frozen when fine-tuning
        assert frozen and all(n.startswith(("stem_", "stage1_")) for n in frozen)
    if "frozenbn" in name:
        assert all(not l.trainable for l in bn_layers)


def test_gn_ws_experiment_standardizes_every_convolution_of_backbone_fpn_and_heads(built):
    from keras_gn.legacy import WSConv2D

    name, config, model = built
    ws = "_ws_" in name
    parts = (model.backbone, model.decoder, model.rpn_head, model.detection_head, model.mask_head)
    counts = tuple(_count(part, WSConv2D) for part in parts)
    if not ws:
        assert counts == (0, 0, 0, 0, 0)
        return
    # 53 backbone convolutions, 4 lateral + 4 output FPN ones, the box head's
    # 4 and the mask head's 4 (mmdetection's "gn+ws-all"); the RPN, the
    # predictors and the mask deconvolution stay plain.
    assert counts == (53, 8, 0, 4, 4)
    for part in (model.backbone, model.decoder):
        convs = [l for l in part._flatten_layers(include_self=False) if isinstance(l, tf_keras.layers.Conv2D)]
        assert all(isinstance(c, WSConv2D) for c in convs)
    assert config.task.init_checkpoint == "runs/r50_gn_ws_backbone/ckpt"
    assert config.trainer.train_steps == 360_000  # 2x, the WS authors' schedule
    head = model.detection_head[0] if isinstance(model.detection_head, (list, tuple)) else model.detection_head
    assert head.get_config()["weight_standardization"] is True


def test_c4_layout_levels_crops_and_mask_size():
    config = exp_factory.get_exp_config("maskrcnn_r50c4_gn_coco")
    config.task.model.input_size = [128, 128, 3]
    model = task_factory.get_task(config.task).build_model()
    assert model.decoder is None and list(model.backbone.output_specs) == ["4"]
    assert tuple(model.backbone.output_specs["4"]) == (None, 8, 8, 1024)  # stride 16
    assert not any(l.name.startswith("stage4_") for l in model.backbone.layers)
    box, mask = model.detection_head[0], model.mask_head
    assert mask.res5 is box.res5  # one res5, shared
    assert box.res5.input_shape == (None, 14, 14, 1024) and box.res5.output_shape == (None, 7, 7, 2048)
    assert sum(l.name.startswith("stage4_block") and l.name.endswith("_add") for l in box.res5.layers) == 3
    rois = tf_keras.backend.random_normal([1, 3, 14, 14, 1024])
    classes, boxes = box(rois)
    assert classes.shape == (1, 3, 91) and boxes.shape == (1, 3, 91 * 4)
    assert mask([rois, tf_keras.backend.constant([[1, 2, 3]])]).shape == (1, 3, 14, 14)
    # Each variable once, although res5 is reachable from both heads.
    assert len(model.trainable_variables) == len({id(v) for v in model.trainable_variables})


def test_weight_decay_reaches_kernels_but_not_gamma_or_beta(built):
    _, config, model = built
    wd = config.task.losses.l2_weight_decay
    assert wd == 1e-4
    norms = [
        l
        for l in model._flatten_layers(include_self=False)
        if isinstance(l, (GroupNormalization, tf_keras.layers.BatchNormalization))
    ]
    for layer in norms:
        assert layer.losses == [], layer.name
        assert getattr(layer, "gamma_regularizer", None) is None and getattr(layer, "beta_regularizer", None) is None
    kernel_layers = [l for l in model.backbone.layers if isinstance(l, tf_keras.layers.Conv2D) and l.trainable]
    if config.task.model.heads == "c4":
        kernel_layers += [l for l in model.detection_head[0].res5.layers if isinstance(l, tf_keras.layers.Conv2D)]
    # Each trainable backbone (and C4 res5) kernel carries L2(wd / 2), the Model Garden's convention.
    for layer in kernel_layers:
        np.testing.assert_allclose(float(layer.kernel_regularizer.l2), wd / 2, rtol=1e-6)


def test_experiment_rows_are_registered_with_their_paper_numbers():
    for name, (_, (box_ap, mask_ap)) in configs.EXPERIMENTS.items():
        assert exp_factory.get_exp_config(name).task.model.backbone.type == "keras_gn_resnet"
        assert 30 < mask_ap < box_ap < 45


@pytest.mark.parametrize("experiment", ["maskrcnn_r50fpn_gn_coco", "maskrcnn_r50c4_gn_coco"])
def test_imagenet_checkpoint_initialises_the_detector_backbone(experiment, tmp_path):
    import keras

    from keras_gn.detection.convert import write_backbone_checkpoint
    from keras_gn.models import resnet

    imagenet = resnet(depth=50, norm="gn", input_shape=(64, 64, 3), num_classes=10)
    rng = np.random.default_rng(0)
    for w in imagenet.weights:
        w.assign(w.numpy() + rng.normal(0, 0.1, w.shape))
    imagenet.save(tmp_path / "model.keras")  # as experiments/imagenet_resnet.py writes it
    prefix, arguments = write_backbone_checkpoint(
        str(tmp_path / "model.keras"), str(tmp_path / "backbone" / "ckpt"), input_size=128
    )
    assert arguments["padding"] == "symmetric" and arguments["weight_standardization"] is False

    config = exp_factory.get_exp_config(experiment)
    config.task.model.input_size = [128, 128, 3]
    config.task.init_checkpoint = prefix
    task = task_factory.get_task(config.task)
    model = task.build_model()
    task.initialize(model)  # the Model Garden's own loading (C4: ours, for res5 too)
    source = keras.models.load_model(tmp_path / "model.keras")
    c4 = experiment == "maskrcnn_r50c4_gn_coco"
    for name in ("stem_conv", "stage3_block2_conv2", "stage4_block1_proj_conv", "stage4_block3_norm3"):
        # C4: res5 (stage4_*) lives in the box head, shared with the mask head.
        target = model.detection_head[0].res5 if c4 and name.startswith("stage4") else model.backbone
        for a, b in zip(target.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, np.asarray(b), err_msg=name)


@pytest.mark.large
@pytest.mark.parametrize(
    "experiment",
    ["maskrcnn_r50fpn_gn_coco", "maskrcnn_r50c4_frozenbn_coco", "maskrcnn_r50c4_gn_coco", "maskrcnn_r50fpn_gn_ws_coco"],
)
def test_binary_train_and_eval_on_generated_shapes(experiment, tmp_path):
    import json
    import subprocess
    import sys

    from binaries import ROOT, env

    from keras_gn.detection.shapes import make_shapes_coco

    data = make_shapes_coco(str(tmp_path / "shapes"), train_images=12, val_images=4, size=128)
    annotations = json.loads(open(data["val_annotations"]).read())
    assert len(annotations["images"]) == 4 and annotations["annotations"][0]["segmentation"]
    override = ",".join(
        [
            "task.model.input_size=[128,128,3]",
            "task.model.num_classes=4",
            "task.model.backbone.keras_gn_resnet.model_id=14",
            "task.train_data.global_batch_size=2",
            "task.validation_data.global_batch_size=2",
            "trainer.train_steps=2",
            "trainer.validation_steps=2",
            "trainer.steps_per_loop=2",
            "trainer.summary_interval=2",
            "trainer.checkpoint_interval=2",
            "trainer.validation_interval=2",
            "trainer.optimizer_config.warmup.linear.warmup_steps=1",
        ]
    )
    model_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.coco_mask_rcnn",
            f"--experiment={experiment}",
            "--mode=train_and_eval",
            "--strategy=mirrored",
            "--num_gpus=2",
            "--cpu_devices=2",
            f"--data_dir={tmp_path / 'shapes'}",
            f"--annotation_file={data['val_annotations']}",
            "--init_checkpoint=",
            f"--model_dir={model_dir}",
            f"--params_override={override}",
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((model_dir / "results.json").read_text())
    # Box and mask AP from the Model Garden's COCO evaluator (near 0 after 2 steps; the pipeline must run).
    assert 0.0 <= metrics["AP"] <= 1.0 and 0.0 <= metrics["mask_AP"] <= 1.0
    assert (model_dir / "ckpt-2.index").exists() and (model_dir / "params.yaml").exists()
    # One evaluation at the end of training (not a second one for the
    # metrics), its lines once, and no placeholder validation loss.
    assert result.stdout.count("running 2 steps of evaluation") == 1, result.stdout[-4000:]
    assert "running 2 steps of evaluation" not in result.stderr
    assert "validation_loss" not in metrics and "validation_loss" not in result.stdout


def test_single_level_anchors_follow_the_model_gardens_layout():
    from official.vision.ops import anchor

    from keras_gn.detection.task import single_level_anchors

    # Where the Model Garden's generator can make the sizes (one octave), ours must equal it.
    garden = anchor.build_anchor_generator(4, 4, 3, [0.5, 1.0, 2.0], 4.0)(image_size=(128, 96))["4"].numpy()
    ours = single_level_anchors([64 * 2 ** (i / 3) for i in range(3)], [0.5, 1.0, 2.0], (128, 96), 4)["4"].numpy()
    np.testing.assert_allclose(ours, garden, atol=1e-4)
    # C4's 32-512 at stride 16: square anchors of those sides around the first centre (8, 8).
    c4 = single_level_anchors([32, 64, 128, 256, 512], [1.0], (128, 128), 4)["4"].numpy()
    np.testing.assert_allclose(c4[0, 0].reshape(5, 4)[:, 2] - c4[0, 0].reshape(5, 4)[:, 0], [32, 64, 128, 256, 512])
    np.testing.assert_allclose(
        c4[0, 0].reshape(5, 4)[:, :2], -np.array([[16, 16], [32, 32], [64, 64], [128, 128], [256, 256]]) + 8
    )


def test_c4_input_pipeline_carries_its_anchors_and_rpn_targets(tmp_path):
    from keras_gn.detection.shapes import make_shapes_coco

    make_shapes_coco(str(tmp_path / "shapes"), train_images=4, val_images=2, size=128)
    config = exp_factory.get_exp_config("maskrcnn_r50c4_gn_coco")
    config.task.model.input_size = [128, 128, 3]
    config.task.train_data.input_path = str(tmp_path / "shapes" / "train*")
    config.task.train_data.global_batch_size = 2
    task = task_factory.get_task(config.task)
    images, labels = next(iter(task.build_inputs(config.task.train_data)))
    anchors = labels["anchor_boxes"]["4"].numpy()
    assert list(labels["anchor_boxes"]) == ["4"] and anchors.shape == (2, 8, 8, 60)
    sides = (anchors[0, 0, 0].reshape(15, 4)[:, 2] - anchors[0, 0, 0].reshape(15, 4)[:, 0]).reshape(5, 3)
    np.testing.assert_allclose(sides[:, 1], [32, 64, 128, 256, 512], rtol=1e-5)  # aspect ratio 1
    scores = labels["rpn_score_targets"]["4"].numpy()
    assert scores.shape == (2, 8, 8, 15) and labels["rpn_box_targets"]["4"].shape == (2, 8, 8, 60)
    # Every image has shapes: some anchors are positive (1), some negative (0), the rest ignored (-1).
    for image_scores in scores:
        assert (image_scores == 1).any() and (image_scores == 0).any() and set(np.unique(image_scores)) <= {-1, 0, 1}
    # The targets label these anchors (not the parser's own): every positive overlaps a box well.
    for b in range(2):
        boxes = labels["gt_boxes"][b].numpy()
        boxes = boxes[labels["gt_classes"][b].numpy() >= 0]
        positives = anchors[b].reshape(-1, 4)[scores[b].reshape(-1) == 1]
        top_left = np.maximum(positives[:, None, :2], boxes[None, :, :2])
        bottom_right = np.minimum(positives[:, None, 2:], boxes[None, :, 2:])
        inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
        area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
        iou = inter / (area(positives)[:, None] + area(boxes)[None, :] - inter)
        assert iou.max(axis=1).min() > 0.3, iou.max(axis=1)


def test_missing_default_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    from keras_gn.detection import run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError, match=r"init_checkpoint 'runs/r50_gn_backbone/ckpt' not found .*keras-gn-convert-backbone"
    ):
        run.experiment_params("maskrcnn_r50fpn_gn_coco")
    (tmp_path / "runs" / "r50_gn_backbone").mkdir(parents=True)
    (tmp_path / "runs" / "r50_gn_backbone" / "ckpt.index").write_bytes(b"")
    params = run.experiment_params("maskrcnn_r50fpn_gn_coco")
    assert params.task.init_checkpoint == str(tmp_path / "runs" / "r50_gn_backbone" / "ckpt")
    assert run.experiment_params("maskrcnn_r50fpn_gn_coco", init_checkpoint="").task.init_checkpoint == ""


def test_c4_mask_head_config_round_trip():
    from keras_gn.detection import heads

    box = heads.C4DetectionHead(depth=50, backbone_norm="gn", backbone_groups=32, num_classes=3)
    mask = heads.C4MaskHead(res5=box.res5, num_classes=3, norm="none")
    clone = heads.C4MaskHead.from_config(mask.get_config())
    assert clone.res5 is not box.res5
    assert [w.shape for w in clone.res5.weights] == [w.shape for w in box.res5.weights]
    assert clone.get_config()["num_classes"] == 3
    assert [layer.name for layer in clone.res5.layers] == [layer.name for layer in box.res5.layers]
    rois = tf_keras.backend.random_normal([1, 2, 14, 14, 1024])
    assert clone([rois, tf_keras.backend.constant([[1, 2]])]).shape == (1, 2, 14, 14)
