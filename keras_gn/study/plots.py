"""The study's figures, drawn with matplotlib without pyplot: Figure 1
(error against images per replica), Figure 4 (error curves), Table 3's
bars, BN's error taken apart and the exposure exhibit."""

import numpy as np

from keras_gn.study import paper
from keras_gn.study.config import LARGE_BATCH, TABLE1_METHODS
from keras_gn.study.tables import BN_ERROR_KINDS, bn_error_table, exposure_table, is_method, table2, table3


def _axes(nrows=1, ncols=1, size=(6, 4.2)):
    # A Figure without pyplot: no GUI backend needed, and a notebook's
    # backend is left as it was.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots(nrows, ncols)


def plot_figure1(results, config, path):
    table, batches = table2(results, config)
    fig, ax = _axes()
    for name in table:
        style = "--" if name.endswith("+ws") else "-"
        _curve(
            ax, batches, table[name], linestyle=style, marker="s" if name == "brn" else "o", label=paper.LABELS[name]
        )
    _batch_axis(ax, batches)
    ax.set_xlabel("images per replica (batch of the normalization statistics)")
    ax.set_title("Figure 1: error against batch size (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_figure4(results, config, path):
    from matplotlib.ticker import MaxNLocator

    fig, axes = _axes(1, 2, size=(11, 4.2))
    for norm in TABLE1_METHODS:
        runs = [r for r in results if r["images_per_replica"] == LARGE_BATCH and is_method(r, norm, config)]
        if not runs:
            continue
        for ax, key in zip(axes, ("train_error_per_epoch", "val_error_per_epoch")):
            curves = 100 * np.array([r[key] for r in runs])
            epochs = np.arange(1, curves.shape[1] + 1)
            style = "--" if norm.endswith("+ws") else "-"
            (line,) = ax.plot(epochs, curves.mean(0), marker=".", linestyle=style, label=paper.LABELS[norm])
            if len(runs) > 1:  # the spread over seeds
                ax.fill_between(epochs, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.15)
    for ax, title in zip(axes, ("training error (mini-batches, training mode)", "validation error")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.set_title(f"Figure 4: {title}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_table3(results, config, path):
    by_groups, by_size = table3(results, config)
    fig, axes = _axes(1, 2, size=(11, 4.2))
    for ax, cells, xlabel, ends in (
        (axes[0], by_groups, "groups G", {1: "LN"}),
        (axes[1], by_size, "channels per group", {1: "IN"}),
    ):
        keys = [k for k, s in cells.items() if s]
        labels = [f"{k}\n({ends[k]})" if k in ends else str(k) for k in keys]
        means = [cells[k][0] for k in keys]
        stds = [cells[k][1] or 0.0 for k in keys]
        ax.bar(range(len(keys)), means, yerr=stds, capsize=4, color="tab:orange", alpha=0.8)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(labels)
        if means:
            low, high = min(m - s for m, s in zip(means, stds)), max(m + s for m, s in zip(means, stds))
            ax.set_ylim(max(0.0, low - 0.5 * (high - low + 1)), high + 0.3 * (high - low + 1))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation error (%)")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_title("Table 3: GN, number of groups", fontsize=10)
    axes[1].set_title("Table 3: GN, channels per group", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _batch_axis(ax, batches):
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.invert_xaxis()  # as the paper's Figure 1: the batch shrinks to the right
    ax.set_xlabel("images per replica")
    ax.set_ylabel("validation error (%)")
    ax.grid(True, alpha=0.3)


def _curve(ax, batches, cells, **style):
    """A mean line with its spread over seeds (points where a cell is missing are left out)."""
    xs = [b for b in batches if cells.get(b)]
    if not xs:
        return
    mean = np.array([cells[b][0] for b in xs])
    std = np.array([cells[b][1] or 0.0 for b in xs])
    if len(xs) == 1:  # one batch (Batch Renorm at 4): a point with its spread
        style.pop("linestyle", None)
        ax.errorbar(xs, mean, yerr=std, linestyle="none", capsize=4, **{"marker": "o", **style})
        return
    (line,) = ax.plot(xs, mean, marker=style.pop("marker", "o"), **style)
    ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.15)


def plot_bn_error(results, config, path):
    """BN's (and Batch Renorm's) validation error with the moving averages,
    with precise statistics and with each validation batch's statistics,
    against images per replica; GN's for reference."""
    table, batches = bn_error_table(results, config)
    fig, ax = _axes(size=(6.5, 4.4))
    styles = {"moving_averages": ("-", "o"), "precise": ("--", "D"), "batch_statistics": (":", "^")}
    colors = {"bn": "tab:blue", "brn": "tab:red", "syncbn": "tab:purple"}
    for name, cells in table.items():
        for kind, label in BN_ERROR_KINDS.items():
            linestyle, marker = styles[kind]
            _curve(ax, batches, {b: cells[b][kind] for b in batches}, linestyle=linestyle, marker=marker,
                   color=colors.get(name), label=f"{paper.LABELS[name]}: {label}")  # fmt: skip
    gn, gn_batches = table2(results, config)
    if gn.get("gn") and batches:
        _curve(ax, batches, {b: gn["gn"].get(b) for b in batches}, color="tab:gray", label="GN (for reference)")
    _batch_axis(ax, batches or sorted(config.images_per_replica, reverse=True))
    ax.set_title("BN's error taken apart: the same models, three kinds of statistics", fontsize=10)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7, handlelength=3.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_exposure(results, config, path):
    """Left: error against images per replica, on the plain and the exposed
    images. Right: each method's loss from the largest to the smallest
    batch against the spread of exposure (none, then the exhibit's)."""
    table, batches, methods = exposure_table(results, config)
    fig, (left, right) = _axes(1, 2, size=(11, 4.4))
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for m in methods:
        for label, style in (("plain", "-"), ("exposed", "--")):
            _curve(left, batches, table[label][m], linestyle=style, color=colors[m],
                   label=f"{paper.LABELS[m]}, {label}")  # fmt: skip
    _batch_axis(left, batches)
    left.set_title("Figure 1 on plain and exposed images", fontsize=10)
    left.legend(fontsize=7, handlelength=3.5)
    gain, offset = config.exposure_exhibit
    spreads = ["none", f"g ≤ ×{gain:g}, |o| ≤ {offset:g}"]
    for m in methods:
        losses = []
        for label in ("plain", "exposed"):
            ends = [table[label][m].get(b) for b in (batches[0], batches[-1])]
            losses.append(ends[1][0] - ends[0][0] if all(ends) else np.nan)
        label = f"{paper.LABELS[m]}" + (f", {BN_ERROR_KINDS['moving_averages']}" if m == "bn" else "")
        right.plot(range(2), losses, marker="o", color=colors[m], label=label)
    # BN's loss with its other two statistics (BN's error taken apart), plain and exposed.
    for kind, style in (("precise", "--"), ("batch_statistics", ":")):
        losses = []
        for exposure in (config.exposure, config.exposure_exhibit):
            cells = bn_error_table(results, config, exposed=exposure)[0].get("bn", {})
            ends = [cells.get(b, {}).get(kind) for b in (batches[0], batches[-1])]
            losses.append(ends[1][0] - ends[0][0] if all(ends) else np.nan)
        right.plot(range(2), losses, marker="o", linestyle=style, color=colors.get("bn", "tab:blue"),
                   label=f"BN, {BN_ERROR_KINDS[kind]}")  # fmt: skip
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set_xticks(range(2))
    right.set_xticklabels(spreads)
    right.set_xlim(-0.3, 1.3)
    right.set_xlabel("spread of exposure (per-image gain g and offset o)")
    right.set_ylabel(f"error at {batches[-1]} − error at {batches[0]} images (points)")
    right.set_title("Each method's loss as the batch shrinks, against exposure", fontsize=10)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7, handlelength=3.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
