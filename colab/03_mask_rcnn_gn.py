# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Mask R-CNN with Group Normalization on the TensorFlow Model Garden
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/keras-gn/keras_gn/blob/main/colab/03_mask_rcnn_gn.ipynb)
#
# The paper's detection results (Tables 4–7) put GN in the backbone, the FPN
# and the box and mask heads of Mask R-CNN. `keras_gn` plugs these into the
# Model Garden (`tf-models-official`) through its registries: this notebook
# builds the registered experiment `maskrcnn_r50fpn_gn_coco`, trains it
# briefly on a generated data set of coloured shapes (COCO format, made here:
# nothing to download), evaluates it with the Model Garden's COCO evaluator and
# draws its boxes and masks. The last section shows how to run the real COCO
# experiment on a TPU.

# %%
# Installs keras_gn with its detection extra from the project's repository
# (Colab); skipped where keras_gn is already importable (a checkout with
# `pip install -e ".[detection]"`, as in the project's CI).
import importlib.util
import subprocess
import sys

REPO_URL = "https://github.com/keras-gn/keras_gn"  # the repository the badge above opens
if importlib.util.find_spec("keras_gn") is None:
    subprocess.run(["git", "clone", "--depth=1", REPO_URL, "/content/keras_gn"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/keras_gn[detection]"], check=True)
    sys.path.insert(0, "/content/keras_gn")

# %% tags=["parameters"]
SMALL = False  # CI sets True: a ResNet-14 at 128 px for 2 steps, to check that every cell runs
TRAIN_STEPS = 600  # on a Colab GPU or TPU; about 1 s a step on a T4 is our guess, not a measurement
IMAGE_SIZE = 256
TRAIN_IMAGES, VAL_IMAGES = 400, 16

# %%
import os
import tempfile

import tensorflow as tf

import keras_gn
from keras_gn.detection import run, shapes, visualize
from keras_gn.train import make_strategy

if SMALL:
    TRAIN_STEPS, IMAGE_SIZE, TRAIN_IMAGES, VAL_IMAGES = 2, 128, 12, 4
# A TPU if the runtime has one, else all its GPUs, else the CPU: the same code
# as `--strategy=auto` in the experiment binaries.
strategy = make_strategy("auto")
replicas = strategy.num_replicas_in_sync
print(f"keras_gn {keras_gn.__version__}, TensorFlow {tf.__version__}: {type(strategy).__name__}, {replicas} replica(s)")
if replicas == 1 and not tf.config.list_logical_devices("GPU") and not SMALL:
    TRAIN_STEPS = min(TRAIN_STEPS, 100)
    print("No accelerator: training 100 steps only (Runtime > Change runtime type for a GPU or TPU).")

# %% [markdown]
# ## Data: coloured shapes in COCO format
#
# `make_shapes_coco` draws rectangles, triangles and ellipses on noisy
# backgrounds, writes COCO JSON (boxes and polygon masks), and converts it to
# TFRecords with the Model Garden's own `create_coco_tf_record`.

# %%
work = tempfile.mkdtemp(prefix="maskrcnn_gn_")
data = shapes.make_shapes_coco(os.path.join(work, "shapes"), train_images=TRAIN_IMAGES, val_images=VAL_IMAGES, size=IMAGE_SIZE)
print(data)

# %% [markdown]
# ## The registered experiment, at demo size
#
# `maskrcnn_r50fpn_gn_coco` is the paper's Table 5 row (GN in the ResNet-50
# backbone, the FPN, the 4conv1fc box head and the mask head; 8 × 1 image per
# step; no weight decay on GN's γ and β). Here it is overridden to the shapes
# data: 3 classes (+ background), a small square input, no ImageNet
# initialisation, a short schedule. Everything else is the experiment's.

# %%
model_id = 14 if SMALL else 50
batch = max(2, replicas)
override = ",".join([
    f"task.model.input_size=[{IMAGE_SIZE},{IMAGE_SIZE},3]",
    "task.model.num_classes=4",
    f"task.model.backbone.keras_gn_resnet.model_id={model_id}",
    f"task.train_data.global_batch_size={batch}",
    f"task.validation_data.global_batch_size={batch}",
    f"trainer.train_steps={TRAIN_STEPS}",
    f"trainer.validation_steps={max(1, VAL_IMAGES // batch)}",
    f"trainer.steps_per_loop={min(TRAIN_STEPS, 100)}",
    f"trainer.summary_interval={min(TRAIN_STEPS, 100)}",
    f"trainer.checkpoint_interval={TRAIN_STEPS}",
    f"trainer.validation_interval={TRAIN_STEPS}",
    f"trainer.optimizer_config.warmup.linear.warmup_steps={max(1, TRAIN_STEPS // 10)}",
    f"trainer.optimizer_config.learning_rate.stepwise.boundaries=[{int(TRAIN_STEPS * 0.7)},{int(TRAIN_STEPS * 0.9)}]",
])
params = run.experiment_params(
    "maskrcnn_r50fpn_gn_coco",
    data_dir=os.path.join(work, "shapes"),
    annotation_file=data["val_annotations"],
    init_checkpoint="",
    params_override=override,
)
model_config = params.task.model
print("backbone:", model_config.backbone.keras_gn_resnet.as_dict())
print("FPN:", model_config.decoder.keras_gn_fpn.as_dict())
print(f"box and mask heads: {model_config.head_norm} (G = {model_config.head_groups}); RPN head: {model_config.rpn_norm}")

# %% [markdown]
# Where the GroupNormalization layers are, in the model the task builds:

# %%
from official.core import task_factory

from keras_gn.detection.task import PARTS, count_layers
from keras_gn.legacy import GroupNormalization

with strategy.scope():
    model = task_factory.get_task(params.task).build_model()
print({part: count_layers(getattr(model, part), GroupNormalization) for part in PARTS})
del model

# %% [markdown]
# ## Train and evaluate
#
# `run.run` is what `keras-gn-coco` calls: the Model Garden's
# Orbit trainer (checkpoints, TensorBoard summaries in `model_dir`) and its
# COCO evaluator (box AP and mask AP).

# %%
model_dir = os.path.join(work, "run")
metrics = run.run(params, "train_and_eval", model_dir, strategy)
print({k: round(v, 4) for k, v in metrics.items() if k in ("AP", "AP50", "mask_AP", "mask_AP50")})

# %% [markdown]
# ## Boxes and masks on validation images
#
# The experiment's own model, restored from the trainer's last checkpoint, on
# the validation pipeline the evaluator used. After the 2 steps of the CI
# run, expect nothing sensible. For scale, one run by hand on the project's
# 2-core CPU (ResNet-14 at 128 px, 200 training images, 300 steps of 2
# images, 28 minutes with other work on the machine) reached box AP 0.485 and
# mask AP 0.488 on 8 validation images: every shape found and well masked,
# with duplicate boxes of the wrong class around several of them.

# %%
# The Model Garden's imports switch matplotlib to its Agg backend: back to inline plots.
# %matplotlib inline
import matplotlib.pyplot as plt

predictions = visualize.predict(params, model_dir, num_images=4, min_score=0.3 if not SMALL else 0.0)
names = {c["id"]: c["name"] for c in shapes.CATEGORIES}
print("detections per image:", [len(p["boxes"]) for p in predictions])
visualize.draw(predictions, class_names=names)
plt.show()

# %% [markdown]
# ## The full COCO experiment on a TPU
#
# The paper trains for 90k iterations at 16 images per batch (our 1x schedule:
# 180k steps at 8 images, the paper's 8 GPUs × 1 image). On a Colab TPU VM
# (Runtime > Change runtime type > TPU) `make_strategy("auto")` above returns
# a `TPUStrategy`; the binary does the same with `--strategy=tpu` (or
# `--strategy=auto`). COCO must first be converted to TFRecords with the Model
# Garden's `create_coco_tf_record` and, on a TPU that is not a VM, live in a
# Cloud Storage bucket, as must `--model_dir`:
#
# ```
# keras-gn-convert-backbone --keras_model=runs/r50_gn/model.keras --output=gs://BUCKET/r50_gn_backbone/ckpt
# keras-gn-coco --experiment=maskrcnn_r50fpn_gn_coco --mode=train_and_eval \
#     --strategy=tpu --tpu=local --data_dir=gs://BUCKET/coco --model_dir=gs://BUCKET/maskrcnn_r50fpn_gn \
#     --init_checkpoint=gs://BUCKET/r50_gn_backbone/ckpt \
#     --params_override="runtime.mixed_precision_dtype=bfloat16,task.train_data.global_batch_size=64"
# ```
#
# A TPU v2-8 has 8 cores: one image per core is the paper's setting; a larger
# batch needs the learning rate scaled with it. GN's statistics are per image,
# so, unlike BN, its results do not depend on how the batch is split across
# cores. The binary resumes from the last checkpoint in `--model_dir` when
# restarted. This notebook has not been run on a TPU by the project (see the
# README): please report what you see.
