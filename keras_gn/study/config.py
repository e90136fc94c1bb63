"""What the study trains: `StudyConfig` (its fields are keras-gn-study's
flags), the presets `QUICK` and `FULL`, and `Run`, one training run."""

import dataclasses

from keras_gn.config_flags import option

EXHIBITS = ("table2", "exposure", "table1", "table3")
DEFAULT_EXHIBITS = ("table2", "exposure")
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
        DEFAULT_EXHIBITS,
        f"Exhibits to run, or all: {', '.join(EXHIBITS)} (table2 includes Figure 1 and BN's error taken apart, "
        "table1 Figure 4).",
        choices=EXHIBITS + ("all",),
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
    exposure_exhibit: tuple = option(
        (2.5, 1.0),
        "The exposure exhibit's GAIN,OFFSET (as --exposure): Figure 1 again on the same images, each with its own "
        "exposure and contrast.",
        item=float,
        minimum=0,
    )
    exposure_norms: tuple = option(("bn", "gn", "gn+ws"), "The exposure exhibit's normalizations (as --norms).")
    exposure_images_per_replica: tuple = option((32, 8, 2), "The exposure exhibit's images per replica.", minimum=1)
    seeds: int = option(2, "Runs per cell of Tables 1 and 2, with seeds 0..N-1.", minimum=1)
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
    data_dir: "str | None" = option(None, "TFDS data folder, for a TFDS --dataset (e.g. cifar10, prepared).")
    exposure: tuple = option(
        (),
        "Per-image exposure and contrast on both splits, GAIN,OFFSET: each standardized image x becomes g x + o, "
        "g = exp(U(-ln GAIN, ln GAIN)), o = U(-OFFSET, OFFSET), drawn per image with a fixed seed (the same "
        "images for every run). Empty: off.",
        item=float,
        minimum=0,
    )
    train_examples: int = option(6_000, "Training images (a fixed random subset).", minimum=1)
    eval_examples: int = option(2_000, "Validation images (a fixed random subset of the test split).", minimum=1)
    epochs: int = option(7, "Epochs, the same for every run whatever its batch.", minimum=1)
    depth: int = option(14, "ResNet depth (8, 11, 14, 26, 50, ...); 14: four stages of one bottleneck block.")
    width: int = option(16, "ResNet width (64 in ResNet-50).", minimum=1)
    stem: str = option(
        "strided",
        "imagenet: 7x7/2 conv + 3x3/2 max pool; small: one 3x3/1 conv; strided: one 3x3/2 conv (28 px: maps 14/7/4/2).",
        choices=("imagenet", "small", "strided"),
    )
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
    warmup_epochs: float = option(
        1.0,
        "Epochs of linear warm-up from zero to the peak learning rate (Goyal et al. 2017), every run alike.",
        minimum=0,
    )
    momentum: float = option(0.9, "SGD momentum.")
    weight_decay: float = option(1e-4, "Weight decay on every weight, gamma and beta included.", minimum=0)
    precise_bn_images: int = option(
        5_000,
        "BN's error taken apart: training images (at most --train_examples) of the precise statistics, the "
        "population mean and variance of every BN layer's input with the final weights.",
        minimum=1,
    )
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
        if "all" in self.exhibits:
            object.__setattr__(self, "exhibits", EXHIBITS)
        for name in ("exposure", "exposure_exhibit"):  # the same floats as a results file holds
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    def protocol(self):
        """The fields every run of a results folder must share."""
        skip = {
            "exhibits",
            "norms",
            "exposure_exhibit",
            "exposure_norms",
            "exposure_images_per_replica",
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
    exhibits=EXHIBITS,
    images_per_replica=(32, 2),
    exposure_images_per_replica=(32, 2),
    precise_bn_images=500,
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
    exposure: tuple = ()  # (GAIN, OFFSET) of its images; () for none

    @property
    def method(self):
        return method(dataclasses.asdict(self))

    def describe(self):
        what = self.method
        if self.norm == "gn":
            what = f"{what} G={self.groups}" if self.groups else f"{what} {self.group_size} ch/group"
        exposed = f" exposure={','.join(f'{v:g}' for v in self.exposure)}" if self.exposure else ""
        return f"{what:<16} images_per_replica={self.images_per_replica:<3} seed={self.seed}{exposed}"

    def matches(self, result):
        # A results file holds tuples as lists; results without an exposure had none.
        return all(
            _plain(result.get(k, () if k == "exposure" else None)) == _plain(v)
            for k, v in dataclasses.asdict(self).items()
        )


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def method(result):
    """A run's or result's method: its norm, with "+ws" for Weight
    Standardization ("gn+ws")."""
    return result["norm"] + (WS if result.get("ws") else "")


def split_method(name):
    """(norm, ws) of a method name: "gn+ws" -> ("gn", True)."""
    return (name[: -len(WS)], True) if name.endswith(WS) else (name, False)
