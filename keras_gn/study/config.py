"""What the study trains: `StudyConfig` (its fields are keras-gn-study's
flags), the presets `QUICK` and `FULL`, and `Run`, one training run."""

import dataclasses

from keras_gn.train.cli import option

EXHIBITS = ("table2", "table1", "table3")
TABLE1_NORMS = ("bn", "ln", "in", "gn")
# Table 1's and Figure 4's methods: the paper's four, then GN+WS (beyond it).
TABLE1_METHODS = TABLE1_NORMS + ("gn+ws",)
LARGE_BATCH = 32  # the paper's images per GPU for Tables 1 and 3
WS = "+ws"  # a method name's suffix: that normalization with Weight Standardization


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What the study trains; the defaults are the README's run (see there for
    why these values). Fields that change what one run computes are in
    `protocol()`; a results folder holds runs of one protocol."""

    exhibits: tuple = option(
        EXHIBITS,
        f"Exhibits to run: {', '.join(EXHIBITS)} (table1 includes Figure 4, table2 Figure 1).",
        choices=EXHIBITS,
    )
    norms: tuple = option(
        ("bn", "gn", "gn+ws"),
        "Table 2's normalizations at every batch: keras_gn.normalization names (bn, gn, ln, in, brn, syncbn), "
        "'+ws' for Weight Standardization in every convolution (gn+ws).",
    )
    images_per_replica: tuple = option(
        (32, 16, 8, 4, 2), "Table 2's batches of the normalization statistics (images per replica).", minimum=1
    )
    renorm_images_per_replica: tuple = option(
        (4,), "Table 2: Batch Renorm (brn) at these images per replica (the paper's Section 4.1: 4).", minimum=1
    )
    table3_groups: tuple = option(
        (1, 2, 4, 8, 16), "Table 3: numbers of groups G (1 is LN); each must divide every layer's channels.", minimum=1
    )
    table3_group_sizes: tuple = option(
        (1, 2),
        "Table 3: channels per group (1 is IN; the paper reports 1 and 2); each must divide every layer's channels.",
        minimum=1,
    )
    seeds: int = option(3, "Runs per cell of Tables 1 and 2, with seeds 0..N-1.", minimum=1)
    table3_seeds: int = option(
        1,
        "Runs per cell of Table 3's own cells (G other than 1 and --groups; channels per group other than 1): "
        "its LN, IN and GN cells are Table 1's runs, with --seeds.",
        minimum=1,
    )
    dataset: str = option(
        "fashion_mnist_subset",
        "fashion_mnist_subset (12,000 images shipped inside keras_gn), fashion_mnist (all 70,000: Debian's "
        "dataset-fashion-mnist, $FASHION_MNIST_DIR, else Keras's downloader, which needs the network) or a "
        "prepared TFDS image data set.",
    )
    data_dir: "str | None" = option(None, "TFDS data folder, for a TFDS --dataset.")
    train_examples: int = option(6_000, "Training images (a fixed random subset).", minimum=1)
    eval_examples: int = option(2_000, "Validation images (a fixed random subset of the test split).", minimum=1)
    epochs: int = option(7, "Epochs, the same for every run whatever its batch.", minimum=1)
    depth: int = option(11, "ResNet depth (8, 11, 14, 26, 50, ...).")
    width: int = option(16, "ResNet width (64 in ResNet-50).", minimum=1)
    stem: str = option("imagenet", "imagenet: 7x7/2 + pool/2; small: 3x3/1.", choices=("imagenet", "small"))
    groups: int = option(8, "GN's number of groups outside Table 3.", minimum=1)
    replicas: int = option(
        4,
        "Replicas per step, as the paper's 8 GPUs (8: its protocol; 4, the default, trains the global batch of 4 x 32 "
        "twice as many steps within the budget, README): a global batch of replicas x images per replica, BN's "
        "and Batch Renorm's statistics per replica (virtual replicas on one device).",
        minimum=1,
    )
    padding: str = option(
        "symmetric",
        "Strided layers' padding: symmetric (PyTorch's and Caffe2's) or same (TensorFlow's; the one-replica study).",
        choices=("symmetric", "same"),
    )
    base_learning_rate: float = option(
        0.1, "Learning rate at --base_batch images; scaled linearly with the global batch."
    )
    base_batch: int = option(
        64, "Global batch of --base_learning_rate (the paper: 0.1 per 256 images, for 100 epochs).", minimum=1
    )
    momentum: float = option(0.9, "SGD momentum.")
    weight_decay: float = option(1e-4, "Weight decay on every weight, gamma and beta included.", minimum=0)
    jit_compile: bool = option(True, "XLA-compile the training step.")
    workers: int = option(
        0, "Runs trained at once, each in its own process (0: one per CPU core, at most 4).", minimum=0
    )
    output_dir: str = option("classification_study", "Where report.md, the plots and results.json go.")

    def __post_init__(self):
        # Lists from a notebook or JSON become tuples: the config is hashable.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))

    def protocol(self):
        """The fields every run of a results folder must share."""
        skip = {
            "exhibits",
            "norms",
            "images_per_replica",
            "renorm_images_per_replica",
            "table3_groups",
            "table3_group_sizes",
            "seeds",
            "table3_seeds",
            "output_dir",
            "workers",
        }
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}


# A smoke run of every exhibit (under 2 minutes on 2 cores, README): numbers mean nothing.
QUICK = dict(
    images_per_replica=(32, 2),
    table3_groups=(1, 8),
    table3_group_sizes=(1, 2),
    seeds=1,
    train_examples=768,
    eval_examples=500,
    epochs=2,
    jit_compile=False,
)
# Longer and on all of Fashion-MNIST (hours on a CPU).
FULL = dict(seeds=5, table3_seeds=5, dataset="fashion_mnist", train_examples=60_000, eval_examples=10_000, epochs=10)


@dataclasses.dataclass(frozen=True, order=True)
class Run:
    """One training run. `groups`/`group_size` only for norm="gn"; `ws`:
    Weight Standardization in every convolution."""

    norm: str
    images_per_replica: int
    seed: int
    groups: "int | None" = None
    group_size: "int | None" = None
    ws: bool = False

    @property
    def method(self):
        return method(dataclasses.asdict(self))

    def describe(self):
        what = self.method
        if self.norm == "gn":
            what = f"{what} G={self.groups}" if self.groups else f"{what} {self.group_size} ch/group"
        return f"{what:<16} images_per_replica={self.images_per_replica:<3} seed={self.seed}"

    def matches(self, result):
        return all(result.get(k) == v for k, v in dataclasses.asdict(self).items())


def method(result):
    """A run's or result's method: its norm, with "+ws" for Weight
    Standardization ("gn+ws")."""
    return result["norm"] + (WS if result.get("ws") else "")


def split_method(name):
    """(norm, ws) of a method name: "gn+ws" -> ("gn", True)."""
    return (name[: -len(WS)], True) if name.endswith(WS) else (name, False)
