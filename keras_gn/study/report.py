"""The report: a line per paper claim (`claims`), `report.md` with each
exhibit next to the paper's numbers, and `write_report`, which also draws
the plots."""

import os

from keras_gn.study import paper
from keras_gn.study.config import EXHIBITS, TABLE1_METHODS, TABLE1_NORMS
from keras_gn.study.plots import plot_bn_error, plot_exposure, plot_figure1, plot_figure4, plot_table3
from keras_gn.study.tables import (
    BN_ERROR_KINDS,
    bn_error_table,
    cell_mean,
    exposure_table,
    fmt,
    table1,
    table2,
    table3,
)


def claims(results, config):
    """[(exhibit, claim, holds: bool | None, the numbers)]; None where the
    results lack a cell the claim needs."""
    checks = {
        "table2": _table2_claims,
        "exposure": _exposure_claims,
        "table1": _table1_claims,
        "table3": _table3_claims,
    }
    out = []
    for exhibit in EXHIBITS:
        if exhibit in config.exhibits:
            out += checks[exhibit](results, config)
    return out


def _table2_claims(results, config):
    table, batches = table2(results, config)
    bn, gn = ({b: cell_mean(table[n][b]) for b in batches} for n in ("bn", "gn"))
    if not ({32, 16, 8, 4, 2} <= set(batches) and None not in bn.values() and None not in gn.values()):
        return [("Table 2", "needs BN and GN at 32, 16, 8, 4 and 2 images", None, "")]
    gap = gn[32] - bn[32]
    rising = all(bn[a] <= bn[b] for a, b in ((16, 8), (8, 4), (4, 2)))
    drop = bn[2] - bn[32]
    spread = max(gn.values()) - min(gn.values())
    curve = " → ".join(f"{bn[b]:.2f}" for b in (16, 8, 4, 2))
    out = [
        ("Table 2", "GN − BN at 32 images within +1.5 points", gap <= 1.5, f"GN − BN = {gap:+.2f}"),
        ("Table 2", "BN's error rises as the batch falls from 16 to 2", rising, curve),
        ("Table 2", "BN at 2 images at least 5 points worse than at 32", drop >= 5, f"{drop:+.2f} points"),
        ("Table 2", "GN's spread over 32…2 images at most 1.5 points", spread <= 1.5, f"{spread:.2f} points"),
    ]
    brn = cell_mean(table["brn"].get(4)) if "brn" in table else None
    if brn is not None:
        order = gn[4] < brn < bn[4]
        numbers = f"GN {gn[4]:.2f}, BRN {brn:.2f}, BN {bn[4]:.2f}"
        out.append(("Section 4.1", "at 4 images, GN below Batch Renorm below BN", order, numbers))
    ws = {b: cell_mean(table["gn+ws"][b]) for b in batches} if "gn+ws" in table else {}
    if ws and None not in ws.values():
        ws_gap = ws[32] - bn[32]
        ws_spread = max(ws.values()) - min(ws.values())
        numbers = f"GN+WS − BN = {ws_gap:+.2f}, GN − BN = {gap:+.2f}"
        out += [
            ("beyond the paper", "GN+WS's gap to BN at 32 images smaller than GN's", ws_gap < gap, numbers),
            ("beyond the paper", "GN+WS's spread over 32…2 images at most 1.5 points", ws_spread <= 1.5,
             f"{ws_spread:.2f} points"),
        ]  # fmt: skip
    return out


def bn_loss_reading(results, config, exposed=None):
    """How much of BN's loss from the largest to the smallest batch is the
    train/test mismatch: a sentence, or None without the cells."""
    table, batches = bn_error_table(results, config, exposed)
    cells = table.get("bn", {})
    if len(batches) < 2:
        return None
    large, small = batches[0], batches[-1]
    means = {b: {k: cell_mean(cells[b][k]) for k in BN_ERROR_KINDS} for b in (large, small)}
    if any(v is None for b in means for v in means[b].values()):
        return None
    loss = {k: means[small][k] - means[large][k] for k in BN_ERROR_KINDS}
    moving, precise, batch = (loss[k] for k in BN_ERROR_KINDS)
    return (
        f"BN's loss from {large} to {small} images per replica is {moving:+.2f} points with the moving averages, "
        f"{precise:+.2f} with precise statistics and {batch:+.2f} when each validation batch of B images is "
        f"normalized by its own statistics, as in training. The part that normalizing by the population at test "
        f"time costs, the train/test mismatch, is {moving - batch:+.2f} points (of which {moving - precise:+.2f} "
        f"is the moving averages' own error); the rest, {batch:+.2f}, is the training with small batches itself."
    )


def _exposure_claims(results, config):
    table, batches, methods = exposure_table(results, config)
    large, small = batches[0], batches[-1]

    def loss(label, m):
        cells = table[label].get(m, {})
        values = [cell_mean(cells.get(b)) for b in (large, small)]
        return None if None in values else values[1] - values[0]

    bn = {label: loss(label, "bn") for label in table}
    if None in bn.values() or large == small:
        return [("exposure", f"needs BN at {large} and {small} images, plain and exposed", None, "")]
    out = [
        (
            "exposure (beyond the paper)",
            f"BN loses more from {large} to {small} images on exposed images than on plain ones",
            bn["exposed"] > bn["plain"],
            f"BN's loss: plain {bn['plain']:+.2f}, exposed {bn['exposed']:+.2f} points",
        )
    ]
    gn = loss("exposed", "gn")
    if gn is not None:
        out.append(
            (
                "exposure (beyond the paper)",
                f"GN's change from {large} to {small} images on exposed images at most 1.5 points",
                abs(gn) <= 1.5,
                f"{gn:+.2f} points",
            )
        )
    return out


def _table1_claims(results, config):
    t1 = {n: cell_mean(s) for n, s in table1(results, config).items() if n in TABLE1_NORMS}
    if None in t1.values():
        return [("Table 1", "needs BN, LN, IN and GN at 32 images", None, "")]
    best, worst = max(t1["bn"], t1["gn"]), min(t1["ln"], t1["in"])
    train = {n: cell_mean(s) for n, s in table1(results, config, key="train_error").items()}
    errors = ", ".join(f"{paper.LABELS[n]} {t1[n]:.2f}" for n in TABLE1_NORMS)
    gap = t1["gn"] - t1["bn"]
    return [
        ("Table 1", "BN and GN within 1.5 points at 32 images", abs(gap) <= 1.5, f"GN − BN = {gap:+.2f}"),
        ("Table 1", "BN and GN both better than LN and IN", best < worst, errors),
        ("Table 1", "IN the worst of the four", t1["in"] == max(t1.values()), f"IN {t1['in']:.2f}"),
        (
            "Figure 4",
            "GN's final training error at or below BN's",
            train["gn"] <= train["bn"],
            f"GN {train['gn']:.2f}, BN {train['bn']:.2f}",
        ),
    ]


def _table3_claims(results, config):
    by_groups, by_size = table3(results, config)
    ln, inst = cell_mean(by_groups.get(1)), cell_mean(by_size.get(1))
    middle = {f"G = {g}": cell_mean(s) for g, s in by_groups.items() if g != 1 and s}
    middle.update({f"{c} channels per group": cell_mean(s) for c, s in by_size.items() if c != 1 and s})
    if ln is None or inst is None or not middle:
        return [("Table 3", "needs G = 1 and 1 channel per group", None, "")]
    name, best = min(middle.items(), key=lambda kv: kv[1])
    return [
        (
            "Table 3",
            "a middle number of groups beats both G = 1 (LN) and 1 channel per group (IN)",
            best < min(ln, inst),
            f"best middle: {name} {best:.2f}; LN {ln:.2f}, IN {inst:.2f}",
        )
    ]


def _verdict(holds):
    return {True: "**holds**", False: "**does not hold**", None: "not measured"}[holds]


def report_markdown(results, config):
    seeds = sorted({r["seed"] for r in results})
    spread = f"mean ± standard deviation over {len(seeds)} seeds" if len(seeds) > 1 else "one seed (no spread)"
    lines = [
        "# The paper's ImageNet-classification study at CPU scale",
        "",
        f"{config.dataset} ({config.train_examples} training, {config.eval_examples} validation images); "
        f"ResNet-{config.depth} ({_network(results, config)}), "
        f"{config.epochs} epoch{'s' * (config.epochs != 1)} at every batch, "
        f"{_replicas(config)}, "
        f"lr {config.base_learning_rate} × global batch / {config.base_batch}"
        + (f" after {config.warmup_epochs:g} epoch(s) of linear warm-up" if config.warmup_epochs else "")
        + ", ÷10 at 30/60/90% of training, "
        f"weight decay {config.weight_decay} on every weight, GN with G = {config.groups}; "
        f"validation error (%), {spread}. "
        f"The paper: ResNet-50 on ImageNet, 8 GPUs, lr 0.1 × global batch / 256, 100 epochs.",
        "",
    ]
    sections = {
        "table2": _table2_section,
        "exposure": _exposure_section,
        "table1": _table1_section,
        "table3": _table3_section,
    }
    for exhibit in EXHIBITS:
        if exhibit in config.exhibits:
            lines += sections[exhibit](results, config)
    lines += ["## The paper's claims here", ""]
    for exhibit, claim, holds, numbers in claims(results, config):
        lines.append(f"- {exhibit}: {claim}: {_verdict(holds)}" + (f" ({numbers})" if numbers else ""))
    return "\n".join(lines) + "\n"


def _row(label, cells):
    return (f"| {label} | " if label else "| | ") + " | ".join(str(c) for c in cells) + " |"


def _header(label, columns):
    return [_row(label, columns), "|---|" + "---|" * len(columns)]


def _table2_section(results, config):
    table, batches = table2(results, config)
    lines = ["## Table 2 / Figure 1: error against images per replica", "", *_header("images per replica", batches)]
    for name in table:
        lines.append(_row(paper.LABELS[name], [fmt(table[name][b]) for b in batches]))
    diff = [
        f"{table['gn'][b][0] - table['bn'][b][0]:+.2f}" if table["gn"][b] and table["bn"][b] else "" for b in batches
    ]
    lines.append(_row("GN − BN", diff))
    for name in [n for n in table if n in paper.TABLE_2]:
        lines.append(_row(f"paper {paper.LABELS[name]}", [paper.TABLE_2[name].get(b, "") for b in batches]))
    extra = [paper.LABELS[n] for n in table if n not in ("bn", "gn")]
    note = (
        f"{' and '.join(extra)}: beyond the paper's Table 2 (Batch Renorm from its Section 4.1, GN+WS from "
        "Weight Standardization, Qiao et al. 2019)."
        if extra
        else ""
    )
    return lines + [
        "",
        *([note, ""] if note else []),
        "![Figure 1](figure1.png)",
        "",
        *_bn_error_section(results, config),
    ]


def _bn_error_section(results, config):
    table, batches = bn_error_table(results, config)
    if not table:
        return []
    lines = ["### BN's error taken apart", "", *_header("images per replica", batches)]
    for name in table:
        for kind, label in BN_ERROR_KINDS.items():
            lines.append(_row(f"{paper.LABELS[name]}, {label}", [fmt(table[name][b][kind]) for b in batches]))
    reading = bn_loss_reading(results, config)
    return lines + [
        "",
        f"The same trained models, evaluated three ways: with the moving averages (the headline, as deployed); with "
        f"precise statistics, the population mean and variance of every BN layer's input over "
        f"{min(config.precise_bn_images, config.train_examples)} training images with the final weights; and with "
        "the statistics of each validation batch of B images (BN in training mode on each batch).",
        "",
        *([reading, ""] if reading else []),
        "![BN's error taken apart](bn_error.png)",
        "",
    ]


def _exposure_section(results, config):
    table, batches, methods = exposure_table(results, config)
    gain, offset = config.exposure_exhibit
    lines = [
        "## Exposure (beyond the paper): Figure 1 on images that differ in exposure",
        "",
        f"The same images, each with its own contrast and exposure: x → g x + o on the standardized image, "
        f"g = exp(U(−ln {gain:g}, ln {gain:g})), o = U(−{offset:g}, {offset:g}), drawn once per image with a fixed "
        "seed, on the training and validation images alike; every method and batch trains on the same images.",
        "",
        *_header("images per replica", batches),
    ]
    for m in methods:
        for label in table:
            lines.append(_row(f"{paper.LABELS[m]}, {label}", [fmt(table[label][m][b]) for b in batches]))
    reading = bn_loss_reading(results, config, exposed=config.exposure_exhibit)
    return lines + [
        "",
        *([f"On the exposed images: {reading}", ""] if reading else []),
        "![Exposure](exposure.png)",
        "",
    ]


def _table1_section(results, config):
    validation = table1(results, config)
    training = table1(results, config, key="train_error")
    return [
        "## Table 1 / Figure 4: 32 images per replica",
        "",
        *_header("", [paper.LABELS[n] for n in TABLE1_METHODS]),
        _row("validation error", [fmt(validation[n]) for n in TABLE1_METHODS]),
        _row("final training error", [fmt(training[n]) for n in TABLE1_METHODS]),
        _row("paper, validation error", [paper.TABLE_1.get(n, "") for n in TABLE1_METHODS]),
        "",
        "![Figure 4](figure4.png)",
        "",
    ]


def _table3_section(results, config):
    lines = ["## Table 3: groups", ""]
    for label, cells, reference in zip(
        ("groups G", "channels per group"), table3(results, config), (paper.TABLE_3_GROUPS, paper.TABLE_3_GROUP_SIZES)
    ):
        lines += [
            *_header(label, list(cells)),
            _row("error", [fmt(s) for s in cells.values()]),
            _row("paper (ResNet-50)", [reference.get(k, "") for k in cells]),
            "",
        ]
    return lines + [
        "G = 1 is LN and 1 channel per group is IN (the same runs as Table 1's).",
        "",
        "![Table 3](table3.png)",
        "",
    ]


def _network(results, config):
    shape = next((r["protocol"]["network"] for r in results if "network" in r.get("protocol", {})), None)
    what = f"width {config.width}, {config.stem} stem"
    if shape:
        sizes = "/".join(str(size[0]) for size in shape["map_sizes"])
        what += f", {shape['stages']} stages with {sizes} pixel maps"
    return what


def _replicas(config):
    if config.replicas == 1:
        return "one replica per step"
    return (
        f"{config.replicas} replicas per step (global batch {config.replicas} × images per replica; BN's and "
        "BRN's statistics per replica)"
    )


def write_report(results, config):
    """Writes report.md and the plots of the configured exhibits."""
    with open(os.path.join(config.output_dir, "report.md"), "w") as f:
        f.write(report_markdown(results, config))
    if "table2" in config.exhibits:
        plot_figure1(results, config, os.path.join(config.output_dir, "figure1.png"))
        plot_bn_error(results, config, os.path.join(config.output_dir, "bn_error.png"))
    if "exposure" in config.exhibits:
        plot_exposure(results, config, os.path.join(config.output_dir, "exposure.png"))
    if "table1" in config.exhibits:
        plot_figure4(results, config, os.path.join(config.output_dir, "figure4.png"))
    if "table3" in config.exhibits:
        plot_table3(results, config, os.path.join(config.output_dir, "table3.png"))
