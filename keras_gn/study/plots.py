"""The study's figures, drawn with matplotlib without pyplot: Figure 1
(error against images per replica), Figure 4 (error curves) and Table 3's
bars."""

import numpy as np

from keras_gn import paper
from keras_gn.study.config import LARGE_BATCH, TABLE1_METHODS
from keras_gn.study.tables import _is, _table2, _table3


def _axes(nrows=1, ncols=1, size=(6, 4.2)):
    # A Figure without pyplot: no GUI backend needed, and a notebook's
    # backend is left as it was.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots(nrows, ncols)


def plot_figure1(results, config, path):
    table, batches = _table2(results, config)
    fig, ax = _axes()
    for name in table:
        cells = [(b, table[name][b]) for b in batches if table[name][b]]
        if not cells:
            continue
        xs = [b for b, _ in cells]
        mean = np.array([s[0] for _, s in cells])
        std = np.array([s[1] or 0.0 for _, s in cells])
        if len(cells) == 1:  # Batch Renorm at 4 images only: a point with its spread
            ax.errorbar(xs, mean, yerr=std, marker="s", linestyle="none", capsize=4, label=paper.LABELS[name])
            continue
        style = "--" if name.endswith("+ws") else "-"
        (line,) = ax.plot(xs, mean, marker="o", linestyle=style, label=paper.LABELS[name])
        ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.invert_xaxis()  # as the paper's Figure 1: the batch shrinks to the right
    ax.set_xlabel("images per replica (batch of the normalization statistics)")
    ax.set_ylabel("validation error (%)")
    ax.set_title("Figure 1: error against batch size (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_figure4(results, config, path):
    from matplotlib.ticker import MaxNLocator

    fig, axes = _axes(1, 2, size=(11, 4.2))
    for norm in TABLE1_METHODS:
        runs = [r for r in results if r["images_per_replica"] == LARGE_BATCH and _is(r, norm, config)]
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
    by_groups, by_size = _table3(results, config)
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
