# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The paper's ImageNet study at CPU scale: BN, LN, IN and GN
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/keras-gn/keras_gn/blob/main/colab/02_batch_size_study.ipynb)
#
# The paper's classification experiments, in the project's small-scale
# version (a small ResNet on the Fashion-MNIST subset that ships with
# keras_gn; the same code as `keras-gn-study`):
#
# - **Figure 1 / Table 2**: BN, GN and GN+WS at 32, 16, 8, 4 and 2 images per
#   GPU, Batch Renorm at 4, and **BN's error taken apart**: the same trained
#   models evaluated with the moving averages, with precise (population)
#   statistics and with each validation batch's own statistics;
# - **Exposure** (beyond the paper): Figure 1 again on the same images, each
#   with its own exposure and contrast;
# - **Table 1 / Figure 4**: BN, LN, IN and GN at 32 images per GPU, with the
#   training and validation error after every epoch;
# - **Table 3**: GN's number of groups and channels per group.
#
# One protocol for every run: a ResNet with the paper's four stages, the
# same epochs at every batch, the learning rate scaled linearly with the
# batch, ramped up over the first epoch and divided by 10 at 30, 60 and 90%
# of training, weight decay on every weight, BN evaluated with its moving
# statistics. Quick by default.

# %%
# Installs keras_gn from the project's repository (Colab); skipped where it is
# already importable (a checkout with `pip install -e .`, as in the project's CI).
import importlib.util
import subprocess
import sys

REPO_URL = "https://github.com/keras-gn/keras_gn"  # the repository the badge above opens
if importlib.util.find_spec("keras_gn") is None:
    subprocess.run(["git", "clone", "--depth=1", REPO_URL, "/content/keras_gn"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/keras_gn"], check=True)
    sys.path.insert(0, "/content/keras_gn")

# %% tags=["parameters"]
SMALL = False  # CI sets True: fewer images and a smaller ResNet, to check that every cell runs
RUN_DEFAULT = False  # the README's default study: about half an hour on a 2-core CPU
RUN_FULL = False  # all of Fashion-MNIST, 5 seeds: hours on a CPU

# %%
import dataclasses
import os

import tensorflow as tf
from IPython.display import Image, Markdown, display

import keras_gn
from keras_gn.study import paper
from keras_gn import study
from keras_gn.train import make_strategy

# A TPU if the runtime has one, else all its GPUs, else the CPU: the same code
# as `--strategy=auto` in the experiment binaries. On the CPU the study trains
# its runs in parallel processes instead (no strategy).
strategy = make_strategy("auto")
replicas = strategy.num_replicas_in_sync
on_cpu = not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
print(f"keras_gn {keras_gn.__version__}, TensorFlow {tf.__version__}: {type(strategy).__name__}, {replicas} replica(s)")

# %% [markdown]
# ## The quick study
#
# `study.QUICK` runs every exhibit with one seed on 768 images for two
# epochs: BN, GN and GN+WS at 32 and 2 images per replica and Batch
# Renorm at 4 for Table 2, the same three at 32 and 2 on exposed images,
# and LN, IN, G = 8 and 2 channels per group for Tables 1 and 3. Its numbers are a smoke test, not results (the default study's
# are below). Every step
# takes the images of 4 replicas (`config.replicas`), as the paper's took
# those of its 8 GPUs, and BN's statistics are each replica's own: on one
# device as virtual replicas, on a TPU's 8 cores or several GPUs over the
# real ones. Each run prints a progress line with the time left.

# %%
config = dataclasses.replace(study.StudyConfig(), output_dir="study_quick", **study.QUICK)
if SMALL:
    config = dataclasses.replace(config, train_examples=256, eval_examples=128, depth=8, epochs=1)
if not on_cpu and config.replicas % replicas:
    # More devices than the study's replicas (a TPU's 8 cores): one replica per device.
    config = dataclasses.replace(config, replicas=replicas)
print(f"{config.replicas} replicas per step")
results = study.run_study(config, strategy=None if on_cpu else strategy, on_result=study.write_report)

# %%
PLOTS = ("figure1.png", "bn_error.png", "exposure.png", "figure4.png", "table3.png")
display(Markdown(open(os.path.join(config.output_dir, "report.md")).read().split("## The paper's claims")[0]))
for name in PLOTS:
    display(Image(os.path.join(config.output_dir, name)))

# %% [markdown]
# ## Why BN loses at small batches
#
# Two exhibits beyond the paper's tables. **BN's error taken apart**: every
# BN and Batch Renorm model is evaluated three ways after training. With the
# moving averages (as deployed), with precise statistics (the population
# mean and variance of every BN layer's input over the training images, with
# the final weights), and with each validation batch of B images normalized
# by its own statistics, as the model was in training. What normalizing by
# the population at test time costs at small B is the train/test mismatch
# (Wu & Johnson 2021). **Exposure**: the same study on images that each have
# their own brightness and contrast, which makes a batch of 2 a poor sample
# of the population's statistics.

# %%
for label, exposure in (("plain images", None), ("exposed images", config.exposure_exhibit)):
    reading = study.bn_loss_reading(results, config, exposed=exposure)
    print(f"{label}: {reading or 'needs BN at two batches'}")

# %% [markdown]
# ## The paper's claims, checked
#
# The report ends with one line per claim of the paper, computed from the
# runs: whether it holds here, with the numbers. A quick run lacks some
# cells (16 and 4 images), so some claims are "not measured".

# %%
for exhibit, claim, holds, numbers in study.claims(results, config):
    verdict = {True: "holds", False: "does not hold", None: "not measured"}[holds]
    print(f"{exhibit}: {claim}: {verdict} {numbers}")

# %% [markdown]
# ## Next to the paper
#
# Left: this run. Right: the paper's Table 2 (ResNet-50, ImageNet, 8 GPUs).
# The absolute errors cannot be compared (another data set and network); the
# shape can: how much each method loses as the batch shrinks.

# %%
import matplotlib.pyplot as plt

fig, (ours, theirs) = plt.subplots(1, 2, figsize=(10, 3.6))
for norm in ("bn", "gn", "gn+ws"):
    cells = {}
    for r in results:
        if r["method"] == norm and (r["norm"] != "gn" or r["groups"] == config.groups):
            cells.setdefault(r["images_per_replica"], []).append(100 * r["val_error"])
    batches = sorted(cells, reverse=True)
    ours.plot(batches, [sum(cells[b]) / len(cells[b]) for b in batches], marker="o", label=paper.LABELS[norm])
    if norm in paper.TABLE_2:
        theirs.plot(list(paper.TABLE_2[norm]), list(paper.TABLE_2[norm].values()), marker="o", label=paper.LABELS[norm])
for ax, title in (
    (ours, f"This run: ResNet-{config.depth}, Fashion-MNIST"),
    (theirs, "The paper: ResNet-50, ImageNet"),
):
    ax.set_xscale("log", base=2)
    ax.set_xticks([32, 16, 8, 4, 2])
    ax.set_xticklabels(["32", "16", "8", "4", "2"])
    ax.invert_xaxis()
    ax.set_xlabel("images per replica")
    ax.set_ylabel("validation error (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the default study shows
#
# The default study (`keras-gn-study`: Table 2, BN's error taken apart and
# the exposure exhibit; 2 seeds, 6,000 images, 7 epochs, 4 replicas per
# step, under 40 minutes on a 2-core CPU) is committed in
# `docs/classification_study/`; `docs/classification_study.md` discusses
# where and why it differs from the paper. Its claims and figures, from a
# checkout of the repository:

# %%
committed = os.path.join(os.path.dirname(keras_gn.__file__), os.pardir, "docs", "classification_study")
if os.path.exists(os.path.join(committed, "report.md")):
    report = open(os.path.join(committed, "report.md")).read()
    display(Markdown(report[report.index("## Table 2") :]))
    for name in PLOTS:
        if os.path.exists(os.path.join(committed, name)):
            display(Image(os.path.join(committed, name)))
else:
    print("The committed study is in the repository's docs/classification_study/ (not in this install).")

# %% [markdown]
# ## The longer studies
#
# Set `RUN_DEFAULT` or `RUN_FULL` above (or run
# `keras-gn-study [--full]` in a terminal) for the
# README's study and the longer one. Both write the same report and plots,
# and a study started again in its folder skips the runs it has.

# %%
for run_it, preset, folder in (
    (RUN_DEFAULT, {}, "classification_study"),
    (RUN_FULL, study.FULL, "classification_study_full"),
):
    if run_it:
        longer = dataclasses.replace(study.StudyConfig(), output_dir=folder, **preset)
        study.run_study(longer, strategy=None if on_cpu else strategy, on_result=study.write_report)
        display(Markdown(open(os.path.join(folder, "report.md")).read()))
        for name in PLOTS:
            if os.path.exists(os.path.join(folder, name)):
                display(Image(os.path.join(folder, name)))
