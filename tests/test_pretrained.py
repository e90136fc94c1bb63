"""The published ImageNet GN weights in our ResNet (keras_gn.models.pretrained),
against timm's own resnet50_gn and a GN+WS ResNet in PyTorch: no download,
the files are written by `timm_reference.py` (in a process of its own) in
each format the loader reads."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from binaries import ROOT

from keras_gn.models import load_pretrained, preprocess
from keras_gn.models.pretrained import WeightFileError, read_weights

pytest.importorskip("safetensors")
pytest.importorskip("torch")  # imported after TensorFlow: torch alone is fine, torchvision is not


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")
    folder = tmp_path_factory.mktemp("weights")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = os.path.join(ROOT, "tests", "timm_reference.py")
    done = subprocess.run([sys.executable, script, str(folder)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, dict(np.load(folder / "reference.npz"))


def _relative_error(ours, reference, label=None):
    error = np.abs(np.asarray(ours, np.float64) - reference).max() / np.abs(reference).max()
    if label:  # shown with pytest -s: the README's figures
        print(f"{label}: largest difference {error:.1e} of the largest reference value")
    return error


@pytest.mark.parametrize("file", ["resnet50_gn.safetensors", "resnet50_gn.pth"])
def test_timm_weights_give_timms_logits(ref, file):
    folder, expected = ref
    model = load_pretrained(str(folder / file), input_shape=(None, None, 3))
    assert model.pretrained == {"source": "timm", "file": file} and model.arguments["depth"] == 50
    assert "source" not in model.arguments  # provenance, not architecture
    for size in ("224", "odd"):  # 224 x 224 and 193 x 257
        x = preprocess(expected[f"images_{size}"], model)
        np.testing.assert_allclose(x, expected[f"timm_input_{size}"], rtol=1e-6, atol=1e-6)
        assert _relative_error(model(x), expected[f"timm_logits_{size}"], f"{file} {size}") < 1e-4, size


@pytest.mark.parametrize("depth", [18, 34])
def test_torchvision_named_basic_resnets_give_torchvisions_logits(ref, depth):
    """ResNet-18 and -34 (basic blocks, no projection in stage 1) from
    torchvision's names, the block type read from the tensors."""
    folder, expected = ref
    model = load_pretrained(str(folder / f"resnet{depth}_gn.pth"))
    assert model.arguments["depth"] == depth and model.input_shape == (None, None, None, 3)
    assert "stage1_block1_proj_conv" not in [layer.name for layer in model.layers]
    for size in ("224", "odd"):
        x = preprocess(expected[f"images_{size}"], model)
        assert _relative_error(model(x), expected[f"resnet{depth}_logits_{size}"], f"resnet{depth} {size}") < 1e-4


def test_channels_first_gives_the_same_logits(ref):
    folder, expected = ref
    model = load_pretrained(str(folder / "resnet50_gn.safetensors"), data_format="channels_first")
    x = preprocess(np.moveaxis(expected["images_224"], -1, 1), "timm", data_format="channels_first")
    logits = tf.function(model, jit_compile=True)(x)  # TF's CPU kernels have no NCHW convolution; XLA has
    assert _relative_error(logits, expected["timm_logits_224"], "channels_first 224") < 1e-4


def test_tensorflow_padding_would_not_give_them(ref):
    """The reason the builders pad symmetrically: with TensorFlow's "same"
    (pads (2, 3) and (0, 1) at stride 2 on even sizes) the same weights give
    other logits."""
    from keras_gn.models import resnet

    folder, expected = ref
    model = load_pretrained(str(folder / "resnet50_gn.safetensors"))
    same = resnet(50, norm="gn", padding="same")
    same.set_weights(model.get_weights())
    x = preprocess(expected["images_224"], "timm")
    assert _relative_error(same(x), expected["timm_logits_224"], "padding='same' 224") > 1e-2


def test_detectron_pickle_gives_the_same_logits(ref):
    folder, expected = ref
    model = load_pretrained(str(folder / "R-50-GN.pkl"), input_shape=(None, None, 3))
    assert model.pretrained["source"] == "detectron"
    for size in ("224", "odd"):
        x = preprocess(expected[f"images_{size}"], model)  # BGR minus Detectron's pixel means
        np.testing.assert_allclose(x, expected[f"detectron_input_{size}"], rtol=1e-6, atol=1e-4)
        assert _relative_error(model(x), expected[f"detectron_logits_{size}"], f"R-50-GN.pkl {size}") < 1e-4, size


def _rewrite_pickle(folder, change, name):
    with open(folder / "R-50-GN.pkl", "rb") as f:
        blobs = pickle.load(f, encoding="latin1")["blobs"]
    change(blobs)
    path = folder / name
    with open(path, "wb") as f:
        pickle.dump(blobs, f, protocol=2)  # flat, without "blobs": the other layout Detectron wrote
    return str(path)


def test_detectron_pickle_that_does_not_fit_is_named(ref):
    folder, _ = ref
    missing = _rewrite_pickle(folder, lambda b: b.pop("res4_3_branch2b_gn_s"), "missing.pkl")
    with pytest.raises(WeightFileError, match=r"missing\.pkl: missing res4_3_branch2b_gn_s \(read as detectron"):
        load_pretrained(missing)
    extra = _rewrite_pickle(
        folder, lambda b: b.update(res6_0_branch2a_w=np.zeros((8, 8, 1, 1), np.float32)), "extra.pkl"
    )
    with pytest.raises(WeightFileError, match=r"extra\.pkl: 1 tensors not used .* first \['res6_0_branch2a_w'\]"):
        load_pretrained(extra)


def test_ws_authors_checkpoint_gives_the_gn_ws_logits(ref):
    from keras_gn import WSConv2D

    folder, expected = ref
    model = load_pretrained(str(folder / "R-50-GN-WS.pth.tar"), input_shape=(None, None, 3))
    assert model.pretrained["source"] == "ws"
    convs = [l for l in model.layers if isinstance(l, WSConv2D)]
    assert len(convs) == 53 and all(c.convention == "std" and c.epsilon == 1e-5 for c in convs)
    for size in ("224", "odd"):
        x = preprocess(expected[f"images_{size}"], model)
        assert _relative_error(model(x), expected[f"ws_logits_{size}"], f"R-50-GN-WS.pth.tar {size}") < 1e-4, size


def test_without_the_top(ref):
    folder, expected = ref
    model = load_pretrained(str(folder / "resnet50_gn.safetensors"), include_top=False, input_shape=(128, 128, 3))
    features = model(expected["features_input"]).numpy()
    assert _relative_error(features, np.moveaxis(expected["level5"], 1, -1)) < 1e-4


class _Payload:
    """Unpickling this runs a shell command (the attack a weight file can carry)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": _Payload(marker)}}, f, protocol=2)
    with pytest.raises(WeightFileError, match=r"evil\.pkl: refused to load the global (posix|os)\.system"):
        load_pretrained(str(path))
    assert not marker.exists()


def test_a_torch_file_that_would_run_code_is_refused(tmp_path):
    import torch

    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    with pytest.raises(WeightFileError, match=r"evil\.pth: refused by torch\.load\(weights_only=True\)"):
        read_weights(str(path))
    assert not marker.exists()


def test_preprocess_and_file_errors(tmp_path):
    image = np.full((1, 2, 2, 3), [10, 20, 30], np.uint8)
    np.testing.assert_allclose(preprocess(image, "detectron")[0, 0, 0], [30 - 102.9801, 20 - 115.9465, 10 - 122.7717])
    np.testing.assert_allclose(
        preprocess(image, "ws")[0, 0, 0], (np.array([10, 20, 30]) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    )
    with pytest.raises(ValueError, match="source must be one of detectron, timm, ws"):
        preprocess(image, "caffe")
    with pytest.raises(WeightFileError, match="no such file"):
        load_pretrained(str(tmp_path / "none.pkl"))
    (tmp_path / "w.h5").write_bytes(b"")
    with pytest.raises(WeightFileError, match="unknown format"):
        load_pretrained(str(tmp_path / "w.h5"))
    with pytest.raises(WeightFileError, match="no such file"):
        load_pretrained(str(tmp_path / "none.npz"))
    (tmp_path / "w.npz").write_bytes(b"")  # .npz is BiT's: an empty one is no archive
    with pytest.raises(WeightFileError, match=r"w\.npz: not a NumPy \.npz archive of arrays"):
        load_pretrained(str(tmp_path / "w.npz"))
    np.testing.assert_allclose(preprocess(image, "bit")[0, 0, 0], np.array([10, 20, 30]) / 127.5 - 1, rtol=1e-6)


def test_provenance_is_kept_beside_the_architecture(tmp_path):
    """A loaded model's `pretrained` survives `.keras` saving and tells
    `preprocess` its input; a config saved when `source` was a builder
    argument loads with it as provenance; a model of no published weights
    is refused by `preprocess` with the reason."""
    import keras

    from keras_gn.models import resnet
    from keras_gn.models.resnet import ResNet

    image = np.full((1, 32, 32, 3), [10, 20, 30], np.uint8)
    model = resnet(8, width=8, groups=4, num_classes=3, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="got None"):
        preprocess(image, model)
    model.pretrained = {"source": "detectron", "file": "R-50-GN.pkl"}
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert again.pretrained == {"source": "detectron", "file": "R-50-GN.pkl"} and "source" not in again.arguments
    np.testing.assert_array_equal(preprocess(image, again), preprocess(image, "detectron"))
    old = {**model.get_config(), "source": "timm"}
    del old["pretrained"]
    assert ResNet.from_config(old).pretrained == {"source": "timm"}


def test_published_weights_start_the_gn_mask_rcnn(ref, tmp_path):
    """The converted file inside the registered GN Mask R-CNN, loaded by the
    Model Garden's own `initialize`: levels 2-5 are timm's stage outputs."""
    pytest.importorskip("official.vision")
    from official.core import exp_factory, task_factory

    from keras_gn.detection.convert import write_backbone_checkpoint

    folder, expected = ref
    imagenet = load_pretrained(str(folder / "resnet50_gn.safetensors"), include_top=False, input_shape=(None, None, 3))
    prefix, arguments = write_backbone_checkpoint(imagenet, str(tmp_path / "backbone" / "ckpt"), input_size=128)
    assert arguments == {
        "depth": 50,
        "norm": "gn",
        "groups": 32,
        "weight_standardization": False,
        "padding": "symmetric",
    }
    config = exp_factory.get_exp_config("maskrcnn_r50fpn_gn_coco")
    config.task.model.input_size = [128, 128, 3]
    config.task.init_checkpoint = prefix
    task = task_factory.get_task(config.task)
    detector = task.build_model()
    task.initialize(detector)
    levels = detector.backbone(expected["features_input"], training=False)
    for level in "2345":
        got = np.asarray(levels[level])
        assert _relative_error(got, np.moveaxis(expected[f"level{level}"], 1, -1), f"Mask R-CNN level {level}") < 1e-4


@pytest.mark.large
def test_convert_binary_then_mask_rcnn_trains_from_the_published_weights(ref, tmp_path):
    import json

    from binaries import env

    from keras_gn.detection.shapes import make_shapes_coco

    folder, _ = ref

    def convert(weights, output):
        done = subprocess.run(
            [sys.executable, "-m", "experiments.convert_backbone", f"--weights={folder / weights}",
             f"--output={tmp_path / output / 'ckpt'}", "--input_size=128"],
            cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    printed = convert("R-50-GN-WS.pth.tar", "ws")
    assert "keras_gn_resnet.weight_standardization=true" in printed and "ws_convention=std" in printed
    convert("R-50-GN.pkl", "gn")
    data = make_shapes_coco(str(tmp_path / "shapes"), train_images=8, val_images=2, size=128)
    override = ",".join(
        [
            "task.model.input_size=[128,128,3]",
            "task.model.num_classes=4",
            "task.train_data.global_batch_size=2",
            "task.validation_data.global_batch_size=2",
            "trainer.train_steps=2",
            "trainer.validation_steps=1",
            "trainer.steps_per_loop=2",
            "trainer.summary_interval=2",
            "trainer.checkpoint_interval=2",
            "trainer.validation_interval=2",
            "trainer.optimizer_config.warmup.linear.warmup_steps=1",
        ]
    )
    run = subprocess.run(
        [sys.executable, "-m", "experiments.coco_mask_rcnn", "--experiment=maskrcnn_r50fpn_gn_coco",
         "--mode=train_and_eval", "--strategy=mirrored", "--num_gpus=2", "--cpu_devices=2",
         f"--data_dir={tmp_path / 'shapes'}", f"--annotation_file={data['val_annotations']}",
         f"--init_checkpoint={tmp_path / 'gn' / 'ckpt'}", f"--model_dir={tmp_path / 'run'}",
         f"--params_override={override}"],
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())
    assert 0.0 <= metrics["AP"] <= 1.0


# ------------------------------------------------------------ Big Transfer (BiT)


@pytest.mark.parametrize("size", ["224", "odd"])
def test_bit_npz_gives_timms_logits(ref, size):
    """The BiT authors' .npz layout (written from timm's resnetv2_50x1_bit
    with random weights and read back by timm's own loader) gives timm's
    logits, at 224 x 224 and 193 x 257."""
    from keras_gn.models.bit import BiTResNet

    folder, expected = ref
    model = load_pretrained(str(folder / "BiT-M-R50x1.npz"))
    assert isinstance(model, BiTResNet) and (model.arguments["depth"], model.arguments["width_factor"]) == (50, 1)
    assert model.pretrained == {"source": "bit", "file": "BiT-M-R50x1.npz"}
    x = preprocess(expected[f"images_{size}"], model)
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert _relative_error(model(x), expected[f"bit_logits_{size}"], f"BiT-M-R50x1 {size}") < 1e-4


def test_bit_without_the_top_ends_in_the_pre_logits(ref):
    folder, expected = ref
    model = load_pretrained(str(folder / "BiT-M-R50x1.npz"), include_top=False)
    features = model(preprocess(expected["images_224"], "bit"))
    assert features.shape == (2, 2048)
    assert _relative_error(features, expected["bit_pre_logits_224"]) < 1e-4


def test_a_bit_npz_that_does_not_fit_is_named(ref, tmp_path):
    folder, _ = ref
    with np.load(folder / "BiT-M-R50x1.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    missing = dict(arrays)
    del missing["resnet/block2/unit01/b/standardized_conv2d/kernel"]
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(WeightFileError, match="missing resnet/block2/unit01/b/standardized_conv2d/kernel"):
        load_pretrained(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "extra.npz", **arrays, **{"resnet/extra/kernel": np.zeros(3, np.float32)})
    with pytest.raises(WeightFileError, match=r"1 arrays not used by BiT R50, first \['resnet/extra/kernel'\]"):
        load_pretrained(str(tmp_path / "extra.npz"))
    # An archive holding a pickled object is refused, not unpickled.
    np.savez(tmp_path / "pickled.npz", **{"resnet/root_block/standardized_conv2d/kernel": np.array([object()])})
    with pytest.raises(WeightFileError, match="not a NumPy .npz archive of arrays"):
        load_pretrained(str(tmp_path / "pickled.npz"))


def test_bit_resnet_builds_every_published_shape_and_rebuilds_from_its_config():
    from keras_gn.models import bit_resnet
    from keras_gn.models.bit import BiTResNet

    model = bit_resnet(50, 1)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 25_549_352  # timm's resnetv2_50x1_bit
    wide = bit_resnet(101, 3, include_top=False, input_shape=(64, 64, 3))
    assert wide.output_shape == (None, 2048 * 3) and wide.get_layer("root_conv").filters == 192
    assert len([layer for layer in wide.layers if layer.name.endswith("_a_proj")]) == 4
    again = BiTResNet.from_config(model.get_config())
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    with pytest.raises(ValueError, match="depth must be one of \\[50, 101, 152\\]"):
        bit_resnet(34)
    with pytest.raises(ValueError, match="width_factor must be a positive integer"):
        bit_resnet(50, 0)
