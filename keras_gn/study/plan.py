"""Which runs a study trains and each run's protocol: `plan(config)`, the
checks made before anything trains, and the optimizer steps and
learning-rate schedule of one run."""

import dataclasses

from keras_gn.models.resnet import STAGE_SIZES, check_groups
from keras_gn.norms import NORMALIZATIONS
from keras_gn.study.config import EXHIBITS, LARGE_BATCH, TABLE1_METHODS, Run, split_method
from keras_gn.train.schedule import LinearWarmup, step_schedule

# The learning rate is divided by 10 at these fractions of training.
DECAY_FRACTIONS = (0.3, 0.6, 0.9)


def _gn(config, groups=None, group_size=None):
    # G = 1 is LN and 1 channel per group is IN: the same runs as Table 1's.
    if groups == 1:
        return "ln", None, None
    if group_size == 1:
        return "in", None, None
    if groups is None and group_size is None:
        groups = config.groups
    return "gn", groups, group_size


def plan(config):
    """The runs of the configured exhibits, each once, in the order they are
    trained (seed by seed, so a partial study has every cell early)."""
    _validate(config)

    def cell(method, batch, exposure=config.exposure):
        norm, ws = split_method(method)
        return (_gn(config) if norm == "gn" else (norm, None, None)) + (batch, ws, exposure)

    cells, table3_only = [], []
    if "table2" in config.exhibits:
        for batch in config.images_per_replica:
            cells += [cell(method, batch) for method in config.norms]
            if batch in config.renorm_images_per_replica:
                cells.append(cell("brn", batch))
        cells += [cell("brn", b) for b in config.renorm_images_per_replica if b not in config.images_per_replica]
    if "exposure" in config.exhibits:
        for batch in config.exposure_images_per_replica:
            cells += [cell(method, batch, config.exposure_exhibit) for method in config.exposure_norms]
    if "table1" in config.exhibits:
        cells += [cell(method, LARGE_BATCH) for method in TABLE1_METHODS]
    if "table3" in config.exhibits:
        table3 = [_gn(config, groups=g) + (LARGE_BATCH, False, config.exposure) for g in config.table3_groups]
        table3 += [_gn(config, group_size=s) + (LARGE_BATCH, False, config.exposure) for s in config.table3_group_sizes]
        # LN, IN and GN with --groups are Table 1's cells, with its seeds.
        shared = {cell(m, LARGE_BATCH) for m in TABLE1_METHODS}
        cells += [c for c in table3 if c in shared]
        table3_only = [c for c in table3 if c not in shared]
    runs = []
    for seed in range(max(config.seeds, config.table3_seeds if table3_only else 0)):
        seeded = (cells if seed < config.seeds else []) + (table3_only if seed < config.table3_seeds else [])
        for norm, groups, group_size, batch, ws, exposure in seeded:
            run = Run(norm, int(batch), seed, groups, group_size, ws, exposure)
            if run not in runs:
                runs.append(run)
    return runs


def _validate(config):
    """Raises ValueError, naming the setting, before anything trains."""

    for exhibit in config.exhibits:
        if exhibit not in EXHIBITS:
            raise ValueError(f"unknown exhibit {exhibit!r}; choose from {', '.join(EXHIBITS)}.")
    for method in config.norms + config.exposure_norms:
        if split_method(method)[0] not in NORMALIZATIONS:
            raise ValueError(
                f"unknown norm {method!r}; choose from {', '.join(NORMALIZATIONS)}, each optionally with '+ws'."
            )
    if config.depth not in STAGE_SIZES:
        raise ValueError(f"depth must be one of {sorted(STAGE_SIZES)}; got {config.depth}.")
    checks = [("groups", (config.groups,))]
    if "table3" in config.exhibits:
        checks += [("table3_groups", config.table3_groups), ("table3_group_sizes", config.table3_group_sizes)]
    for name, values in checks:
        check_groups(values, config.depth, config.width, name)
    batches = tuple(config.images_per_replica) + tuple(config.renorm_images_per_replica)
    batches = batches if "table2" in config.exhibits else ()
    if "exposure" in config.exhibits:
        batches += tuple(config.exposure_images_per_replica)
    if {"table1", "table3"} & set(config.exhibits):
        batches += (LARGE_BATCH,)
    too_big = sorted({b for b in batches if steps_per_epoch(config, b) < 1})
    if too_big:
        raise ValueError(
            f"images_per_replica {too_big} x {config.replicas} replicas is more than the {config.train_examples} "
            f"training examples: give more --train_examples or fewer --replicas."
        )
    for name in ("exposure", "exposure_exhibit"):
        value = getattr(config, name)
        if value and (len(value) != 2 or value[0] < 1 or value[1] < 0):
            raise ValueError(f"{name} is GAIN,OFFSET with GAIN >= 1 and OFFSET >= 0, or empty; got {value}.")
    if config.seeds < 1 or config.epochs < 1:
        raise ValueError(f"seeds and epochs must be positive; got seeds={config.seeds}, epochs={config.epochs}.")


@dataclasses.dataclass(frozen=True)
class RunSchedule:
    """One run's steps and learning rates: `replicas` x `images_per_replica`
    images per optimizer step (`global_batch`), `steps_per_epoch` full
    batches per epoch (the last partial batch is dropped: a BN batch of one
    image has no variance), the same `epochs` at every batch; the rate
    scaled linearly with the global batch, ramped up linearly over
    `warmup_steps`, divided by 10 at 30%, 60% and 90% of training."""

    images_per_replica: int
    replicas: int
    global_batch: int
    steps_per_epoch: int
    epochs: int
    peak_learning_rate: float
    warmup_steps: int
    boundaries: tuple

    @property
    def steps(self):
        return self.steps_per_epoch * self.epochs

    def learning_rate(self):
        """The Keras schedule the optimizer takes."""
        return step_schedule(self.peak_learning_rate, self.boundaries, self.warmup_steps)


def run_schedule(config, images_per_replica, replicas=None):
    """The `RunSchedule` of a run at `images_per_replica`, with `replicas`
    (default: the config's) per step."""
    replicas = config.replicas if replicas is None else replicas
    batch = images_per_replica * replicas
    steps = config.train_examples // batch
    return RunSchedule(
        images_per_replica=images_per_replica,
        replicas=replicas,
        global_batch=batch,
        steps_per_epoch=steps,
        epochs=config.epochs,
        peak_learning_rate=config.base_learning_rate * batch / config.base_batch,
        warmup_steps=int(round(config.warmup_epochs * steps)),
        boundaries=tuple(int(round(f * config.epochs * steps)) for f in DECAY_FRACTIONS),
    )


def global_batch(config, images_per_replica, replicas=None):
    """Images per optimizer step (`RunSchedule.global_batch`)."""
    return run_schedule(config, images_per_replica, replicas).global_batch


def steps_per_epoch(config, images_per_replica, replicas=None):
    """Optimizer steps in one epoch (`RunSchedule.steps_per_epoch`)."""
    return run_schedule(config, images_per_replica, replicas).steps_per_epoch


def schedule(config, images_per_replica, replicas=None):
    """The Keras learning-rate schedule of one run (`RunSchedule`)."""
    return run_schedule(config, images_per_replica, replicas).learning_rate()


def learning_rates(config, images_per_replica, replicas=None):
    """(the learning rates, the optimizer steps after which each next one
    applies) of `schedule` after its warm-up, as Python numbers."""
    lr = schedule(config, images_per_replica, replicas)
    steps = lr.schedule if isinstance(lr, LinearWarmup) else lr  # read from what the optimizer takes
    return [float(v) for v in steps.values], [int(b) for b in steps.boundaries]
