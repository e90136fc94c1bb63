"""Which runs a study trains and each run's protocol: `plan(config)`, the
checks made before anything trains, and the optimizer steps and
learning-rate schedule of one run."""

from keras_gn.models.resnet import STAGE_SIZES, check_groups
from keras_gn.norms import NORMALIZATIONS
from keras_gn.study.config import EXHIBITS, LARGE_BATCH, TABLE1_METHODS, Run, split_method
from keras_gn.train.classification import learning_rate_schedule


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

    def cell(method, batch):
        norm, ws = split_method(method)
        return (_gn(config) if norm == "gn" else (norm, None, None)) + (batch, ws)

    cells, table3_only = [], []
    if "table2" in config.exhibits:
        for batch in config.images_per_replica:
            cells += [cell(method, batch) for method in config.norms]
            if batch in config.renorm_images_per_replica:
                cells.append(cell("brn", batch))
        cells += [cell("brn", b) for b in config.renorm_images_per_replica if b not in config.images_per_replica]
    if "table1" in config.exhibits:
        cells += [cell(method, LARGE_BATCH) for method in TABLE1_METHODS]
    if "table3" in config.exhibits:
        table3 = [_gn(config, groups=g) + (LARGE_BATCH, False) for g in config.table3_groups]
        table3 += [_gn(config, group_size=s) + (LARGE_BATCH, False) for s in config.table3_group_sizes]
        # LN, IN and GN with --groups are Table 1's cells, with its seeds.
        shared = {cell(m, LARGE_BATCH) for m in TABLE1_METHODS}
        cells += [c for c in table3 if c in shared]
        table3_only = [c for c in table3 if c not in shared]
    runs = []
    for seed in range(max(config.seeds, config.table3_seeds if table3_only else 0)):
        seeded = (cells if seed < config.seeds else []) + (table3_only if seed < config.table3_seeds else [])
        for norm, groups, group_size, batch, ws in seeded:
            run = Run(norm, int(batch), seed, groups, group_size, ws)
            if run not in runs:
                runs.append(run)
    return runs


def _validate(config):
    """Raises ValueError, naming the setting, before anything trains."""

    for exhibit in config.exhibits:
        if exhibit not in EXHIBITS:
            raise ValueError(f"unknown exhibit {exhibit!r}; choose from {', '.join(EXHIBITS)}.")
    for method in config.norms:
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
    if {"table1", "table3"} & set(config.exhibits):
        batches += (LARGE_BATCH,)
    too_big = sorted({b for b in batches if steps_per_epoch(config, b) < 1})
    if too_big:
        raise ValueError(
            f"images_per_replica {too_big} x {config.replicas} replicas is more than the {config.train_examples} "
            f"training examples: give more --train_examples or fewer --replicas."
        )
    if config.seeds < 1 or config.epochs < 1:
        raise ValueError(f"seeds and epochs must be positive; got seeds={config.seeds}, epochs={config.epochs}.")


def global_batch(config, images_per_replica, replicas=None):
    """Images per optimizer step: `replicas` (default: the config's) x
    images per replica."""
    return images_per_replica * (config.replicas if replicas is None else replicas)


def steps_per_epoch(config, images_per_replica, replicas=None):
    """Optimizer steps in one epoch, at the global batch of `replicas`
    (default: the config's) x images per replica; the last partial batch is
    dropped (a BN batch of one image has no variance)."""
    return config.train_examples // global_batch(config, images_per_replica, replicas)


def schedule(config, images_per_replica, replicas=None):
    """The Keras learning-rate schedule of one run: linear scaling with the
    global batch, divided by 10 at 30%, 60% and 90% of training."""
    return learning_rate_schedule(
        config.base_learning_rate,
        config.base_batch,
        [f * config.epochs for f in (0.3, 0.6, 0.9)],
        global_batch(config, images_per_replica, replicas),
        steps_per_epoch(config, images_per_replica, replicas),
    )


def learning_rates(config, images_per_replica, replicas=None):
    """(the learning rates, the optimizer steps after which each next one
    applies) of `schedule`, as Python numbers."""
    lr = schedule(config, images_per_replica, replicas)
    return [float(v) for v in lr.values], [int(b) for b in lr.boundaries]
