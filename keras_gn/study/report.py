"""The report: a line per paper claim (`claims`), `report.md` with each
exhibit next to the paper's numbers, and `write_report`, which also draws
the plots."""

import os

from keras_gn import paper
from keras_gn.study.config import EXHIBITS, TABLE1_METHODS, TABLE1_NORMS
from keras_gn.study.plots import plot_figure1, plot_figure4, plot_table3
from keras_gn.study.tables import _fmt, _mean, _table1, _table2, _table3


def claims(results, config):
    """[(exhibit, claim, holds: bool | None, the numbers)]; None where the
    results lack a cell the claim needs."""
    checks = {"table2": _table2_claims, "table1": _table1_claims, "table3": _table3_claims}
    out = []
    for exhibit in EXHIBITS:
        if exhibit in config.exhibits:
            out += checks[exhibit](results, config)
    return out


def _table2_claims(results, config):
    table, batches = _table2(results, config)
    bn, gn = ({b: _mean(table[n][b]) for b in batches} for n in ("bn", "gn"))
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
    brn = _mean(table["brn"].get(4)) if "brn" in table else None
    if brn is not None:
        order = gn[4] < brn < bn[4]
        numbers = f"GN {gn[4]:.2f}, BRN {brn:.2f}, BN {bn[4]:.2f}"
        out.append(("Section 4.1", "at 4 images, GN below Batch Renorm below BN", order, numbers))
    ws = {b: _mean(table["gn+ws"][b]) for b in batches} if "gn+ws" in table else {}
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


def _table1_claims(results, config):
    t1 = {n: _mean(s) for n, s in _table1(results, config).items() if n in TABLE1_NORMS}
    if None in t1.values():
        return [("Table 1", "needs BN, LN, IN and GN at 32 images", None, "")]
    best, worst = max(t1["bn"], t1["gn"]), min(t1["ln"], t1["in"])
    train = {n: _mean(s) for n, s in _table1(results, config, key="train_error").items()}
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
    by_groups, by_size = _table3(results, config)
    ln, inst = _mean(by_groups.get(1)), _mean(by_size.get(1))
    middle = {f"G = {g}": _mean(s) for g, s in by_groups.items() if g != 1 and s}
    middle.update({f"{c} channels per group": _mean(s) for c, s in by_size.items() if c != 1 and s})
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
        f"ResNet-{config.depth} (width {config.width}, {config.stem} stem), "
        f"{config.epochs} epoch{'s' * (config.epochs != 1)} at every batch, "
        f"{_replicas(config)}, "
        f"lr {config.base_learning_rate} × global batch / {config.base_batch}, ÷10 at 30/60/90% of training, "
        f"weight decay {config.weight_decay} on every weight, GN with G = {config.groups}; "
        f"validation error (%), {spread}. "
        f"The paper: ResNet-50 on ImageNet, 8 GPUs, lr 0.1 × global batch / 256, 100 epochs.",
        "",
    ]
    sections = {"table2": _table2_section, "table1": _table1_section, "table3": _table3_section}
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
    table, batches = _table2(results, config)
    lines = ["## Table 2 / Figure 1: error against images per replica", "", *_header("images per replica", batches)]
    for name in table:
        lines.append(_row(paper.LABELS[name], [_fmt(table[name][b]) for b in batches]))
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
    return lines + ["", *([note, ""] if note else []), "![Figure 1](figure1.png)", ""]


def _table1_section(results, config):
    validation = _table1(results, config)
    training = _table1(results, config, key="train_error")
    return [
        "## Table 1 / Figure 4: 32 images per replica",
        "",
        *_header("", [paper.LABELS[n] for n in TABLE1_METHODS]),
        _row("validation error", [_fmt(validation[n]) for n in TABLE1_METHODS]),
        _row("final training error", [_fmt(training[n]) for n in TABLE1_METHODS]),
        _row("paper, validation error", [paper.TABLE_1.get(n, "") for n in TABLE1_METHODS]),
        "",
        "![Figure 4](figure4.png)",
        "",
    ]


def _table3_section(results, config):
    lines = ["## Table 3: groups", ""]
    for label, cells, reference in zip(
        ("groups G", "channels per group"), _table3(results, config), (paper.TABLE_3_GROUPS, paper.TABLE_3_GROUP_SIZES)
    ):
        lines += [
            *_header(label, list(cells)),
            _row("error", [_fmt(s) for s in cells.values()]),
            _row("paper (ResNet-50)", [reference.get(k, "") for k in cells]),
            "",
        ]
    return lines + [
        "G = 1 is LN and 1 channel per group is IN (the same runs as Table 1's).",
        "",
        "![Table 3](table3.png)",
        "",
    ]


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
    if "table1" in config.exhibits:
        plot_figure4(results, config, os.path.join(config.output_dir, "figure4.png"))
    if "table3" in config.exhibits:
        plot_table3(results, config, os.path.join(config.output_dir, "table3.png"))
