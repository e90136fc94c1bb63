"""The exhibits' cells from a list of results: mean, spread and count over
seeds, per method and batch (shared by the report and the plots).

Each table is a function of (results, config): `table2`, `table1`,
`table3`, `exposure_table` and `bn_error_table`; `cell` is one cell, `fmt`
writes it, `cell_mean` reads its mean."""

import statistics

from keras_gn.study.config import LARGE_BATCH, TABLE1_METHODS, method

# Table 2's rows, in this order, where the results have them.
TABLE2_METHODS = ("bn", "brn", "syncbn", "gn", "gn+ws", "ln", "in")


# BN's error taken apart: the three statistics, as results hold them, and their labels.
BN_ERROR_KINDS = {
    "moving_averages": "moving averages (as deployed)",
    "precise": "precise statistics",
    "batch_statistics": "each validation batch's statistics",
}


def cell(results, keep, key="val_error"):
    """Mean, standard deviation (None for one seed) and count, in %, of
    `key` (a result's key, or a function of a result) over the results
    that `keep` accepts; None for none."""
    value = key if callable(key) else (lambda r: r[key])
    values = [100 * value(r) for r in results if keep(r)]
    if not values:
        return None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None), len(values)


def fmt(stat):
    if stat is None:
        return ""
    mean, std, _ = stat
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def table2(results, config):
    """({method: {batch: cell}}, batches): BN and GN always (the paper's
    rows), then the configured Table 2 methods (`--norms`, Batch Renorm)
    that have results."""
    # BN's and GN's batches, and Batch Renorm's (4 images) even where they have none.
    batches = set(config.images_per_replica)
    batches |= {
        r["images_per_replica"] for r in results if method(r) in ("bn", "gn", "brn") and exposure(r) == config.exposure
    }
    batches = sorted(batches, reverse=True)
    configured = {"bn", "gn", *config.norms, *(["brn"] if config.renorm_images_per_replica else [])}
    listed = [m for m in TABLE2_METHODS if m in configured] + [m for m in config.norms if m not in TABLE2_METHODS]
    methods = [m for m in listed if m in ("bn", "gn") or any(is_method(r, m, config) for r in results)]
    table = {
        m: {
            b: cell(results, lambda r, m=m, b=b: is_method(r, m, config) and r["images_per_replica"] == b)
            for b in batches
        }
        for m in methods
    }
    return table, batches


def table1(results, config, key="val_error"):
    """Each Table 1 method at 32 images: its validation (or, with
    key="train_error", final training) error over seeds."""
    return {
        m: cell(results, lambda r, m=m: is_method(r, m, config) and r["images_per_replica"] == LARGE_BATCH, key)
        for m in TABLE1_METHODS
    }


def table3(results, config):
    def large(r):
        return r["images_per_replica"] == LARGE_BATCH

    def groups(g):  # G = 1 is LN
        return cell(
            results, lambda r: large(r) and (is_method(r, "ln", config) if g == 1 else gn_with(r, config, groups=g))
        )

    def size(c):  # 1 channel per group is IN
        return cell(
            results, lambda r: large(r) and (is_method(r, "in", config) if c == 1 else gn_with(r, config, group_size=c))
        )

    return {g: groups(g) for g in config.table3_groups}, {c: size(c) for c in config.table3_group_sizes}


def gn_with(result, config, **setting):
    return (
        method(result) == "gn"
        and exposure(result) == config.exposure
        and all(result.get(k) == v for k, v in setting.items())
    )


def exposure(result):
    """A result's (GAIN, OFFSET) exposure of its images; () for none."""
    return tuple(float(v) for v in result.get("exposure", ()))


def is_method(result, name, config, exposed=None):
    """Whether a result is Tables 1 and 2's method `name` ("gn", "gn+ws",
    "bn", ...) on the study's images (`config.exposure`; `exposed`: on
    those of that exposure): for GN, the configured G (other G belong to
    Table 3)."""
    return (
        method(result) == name
        and exposure(result) == (config.exposure if exposed is None else tuple(exposed))
        and (result["norm"] != "gn" or result.get("groups") == config.groups)
    )


def exposure_table(results, config):
    """({label: {method: {batch: cell}}}, batches, methods): the exposure
    exhibit's methods at its batches on the study's images ("plain") and
    on the exhibit's exposure ("exposed")."""
    batches = sorted(config.exposure_images_per_replica, reverse=True)
    methods = list(config.exposure_norms)
    table = {
        label: {
            m: {
                b: cell(results, lambda r, m=m, b=b, e=e: is_method(r, m, config, e) and r["images_per_replica"] == b)
                for b in batches
            }
            for m in methods
        }
        for label, e in (("plain", config.exposure), ("exposed", config.exposure_exhibit))
    }
    return table, batches, methods


def bn_error_table(results, config, exposed=None):
    """({method: {batch: {kind: cell}}}, batches) of BN's error taken apart
    (`BN_ERROR_KINDS`), for every BN-family method with that record, on the
    study's images (`exposed`: on those of that exposure)."""
    kept = [r for r in results if "bn_error" in r and is_method(r, method(r), config, exposed)]
    batches = sorted({r["images_per_replica"] for r in kept}, reverse=True)
    methods = [m for m in TABLE2_METHODS if any(method(r) == m for r in kept)]
    table = {
        m: {
            b: {
                kind: cell(kept, lambda r, m=m, b=b: method(r) == m and r["images_per_replica"] == b,
                           lambda r, kind=kind: r["bn_error"][kind])
                for kind in BN_ERROR_KINDS
            }
            for b in batches
        }
        for m in methods
    }  # fmt: skip
    return table, batches


def cell_mean(stat):
    return None if stat is None else stat[0]
