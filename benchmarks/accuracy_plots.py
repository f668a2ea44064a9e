"""Plots of the accuracy benchmark's table: error against epsilon, automatic choices against the best hand-picked bound."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def accuracy_figure(rows: pd.DataFrame) -> Figure:
    """One panel per case: its headline error (WRE or SMAPE) against epsilon (log-log), auto and best hand-picked."""
    names = list(dict.fromkeys(rows["case"]))
    ncols = min(4, max(1, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), dpi=110, squeeze=False)
    for ax, name in zip(axes.flat, names):
        group = rows[rows["case"] == name].sort_values("epsilon")
        metric = group["metric"].iloc[0]
        ax.plot(group["epsilon"], group[f"auto_{metric}"], "-o", ms=3, label="automatic bounds + mechanism")
        if f"hand_{metric}" in group:
            ax.plot(group["epsilon"], group[f"hand_{metric}"], "--s", ms=3, label="best hand-picked bound")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("epsilon per subscriber-week", fontsize=7)
        ax.set_ylabel(metric.upper(), fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return fig
