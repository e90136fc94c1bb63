"""The exhibits' cells from a list of results: mean, spread and count over
seeds, per method and batch (shared by the report and the plots)."""

import statistics

from keras_gn.study.config import LARGE_BATCH, TABLE1_NORMS


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
    batches = sorted({r["images_per_replica"] for r in results if r["norm"] == "bn"}, reverse=True)
    table = {
        norm: {
            b: _cell(results, lambda r, norm=norm, b=b: _is(r, norm, config) and r["images_per_replica"] == b)
            for b in batches
        }
        for norm in ("bn", "gn")
    }
    return table, batches


def _table1(results, config, key="val_error"):
    """Each Table 1 method at 32 images: its validation (or, with
    key="train_error", final training) error over seeds."""
    return {
        norm: _cell(results, lambda r, norm=norm: _is(r, norm, config) and r["images_per_replica"] == LARGE_BATCH, key)
        for norm in TABLE1_NORMS
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
    return result["norm"] == "gn" and all(result.get(k) == v for k, v in setting.items())


def _is(result, norm, config):
    """Whether a result is Tables 1 and 2's `norm`: for GN, the configured G
    (other G belong to Table 3)."""
    return result["norm"] == norm and (norm != "gn" or result.get("groups") == config.groups)


def _mean(stat):
    return None if stat is None else stat[0]
