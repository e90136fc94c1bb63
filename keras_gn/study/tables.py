"""The exhibits' cells from a list of results: mean, spread and count over
seeds, per method and batch (shared by the report and the plots)."""

import statistics

from keras_gn.study.config import LARGE_BATCH, TABLE1_METHODS, method

# Table 2's rows, in this order, where the results have them.
TABLE2_METHODS = ("bn", "brn", "syncbn", "gn", "gn+ws", "ln", "in")


def _cell(results, keep, key="val_error"):
    """Mean, standard deviation (None for one seed) and count, in %, of
    `key` over the results that `keep` accepts; None for none."""
    values = [100 * r[key] for r in results if keep(r)]
    if not values:
        return None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None), len(values)


def _fmt(stat):
    if stat is None:
        return ""
    mean, std, _ = stat
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _table2(results, config):
    """({method: {batch: cell}}, batches): BN and GN always (the paper's
    rows), then the configured Table 2 methods (`--norms`, Batch Renorm)
    that have results."""
    # BN's and GN's batches, and Batch Renorm's (4 images) even where they have none.
    batches = set(config.images_per_replica)
    batches |= {r["images_per_replica"] for r in results if method(r) in ("bn", "gn", "brn")}
    batches = sorted(batches, reverse=True)
    configured = {"bn", "gn", *config.norms, *(["brn"] if config.renorm_images_per_replica else [])}
    listed = [m for m in TABLE2_METHODS if m in configured] + [m for m in config.norms if m not in TABLE2_METHODS]
    methods = [m for m in listed if m in ("bn", "gn") or any(_is(r, m, config) for r in results)]
    table = {
        m: {b: _cell(results, lambda r, m=m, b=b: _is(r, m, config) and r["images_per_replica"] == b) for b in batches}
        for m in methods
    }
    return table, batches


def _table1(results, config, key="val_error"):
    """Each Table 1 method at 32 images: its validation (or, with
    key="train_error", final training) error over seeds."""
    return {
        m: _cell(results, lambda r, m=m: _is(r, m, config) and r["images_per_replica"] == LARGE_BATCH, key)
        for m in TABLE1_METHODS
    }


def _table3(results, config):
    def large(r):
        return r["images_per_replica"] == LARGE_BATCH

    def groups(g):  # G = 1 is LN
        return _cell(results, lambda r: large(r) and (r["norm"] == "ln" if g == 1 else _gn_with(r, groups=g)))

    def size(c):  # 1 channel per group is IN
        return _cell(results, lambda r: large(r) and (r["norm"] == "in" if c == 1 else _gn_with(r, group_size=c)))

    return {g: groups(g) for g in config.table3_groups}, {c: size(c) for c in config.table3_group_sizes}


def _gn_with(result, **setting):
    return method(result) == "gn" and all(result.get(k) == v for k, v in setting.items())


def _is(result, name, config):
    """Whether a result is Tables 1 and 2's method `name` ("gn", "gn+ws",
    "bn", ...): for GN, the configured G (other G belong to Table 3)."""
    return method(result) == name and (result["norm"] != "gn" or result.get("groups") == config.groups)


def _mean(stat):
    return None if stat is None else stat[0]
