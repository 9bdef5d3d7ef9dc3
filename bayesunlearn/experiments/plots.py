"""Predictive bands of several posteriors, as a table (for DVC plots) and a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesunlearn.io import atomic
from bayesunlearn.io.datasets import Splits
from bayesunlearn.posteriors.posterior import GaussianPosterior


def predictive_table(posteriors: dict[str, GaussianPosterior], splits: Splits, n_grid: int) -> pd.DataFrame:
    """Mean ± 2 sd over a grid (1-D inputs) or over the test inputs ordered by target."""
    if splits.x_test.shape[1] == 1:
        x_all = np.concatenate([splits.x_retained, splits.x_forgotten, splits.x_test])[:, 0]
        pad = 0.25 * (x_all.max() - x_all.min())
        axis = np.linspace(x_all.min() - pad, x_all.max() + pad, n_grid)
        x, column = axis[:, None], "x"
    else:
        order = np.argsort(splits.y_test)
        x, axis, column = splits.x_test[order], splits.y_test[order], "true_y"
    table = {column: axis}
    for name, post in posteriors.items():
        mean, var = post.predictive(x)
        table[f"{name}_mean"] = mean
        table[f"{name}_lower"] = mean - 2 * np.sqrt(var)
        table[f"{name}_upper"] = mean + 2 * np.sqrt(var)
    return pd.DataFrame(table)


def save_predictive_png(path: str | Path, table: pd.DataFrame, splits: Splits, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = table.columns[0]
    names = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]
    colours = dict(zip(names, ["tab:grey", "tab:orange", "tab:blue", "tab:green", "tab:red"], strict=False))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name in names:
        ax.plot(table[column], table[f"{name}_mean"], color=colours[name], label=f"{name} mean")
        ax.fill_between(table[column], table[f"{name}_lower"], table[f"{name}_upper"],
                        color=colours[name], alpha=0.15, label=f"{name} ±2 sd")
    if column == "x":
        ax.scatter(splits.x_retained[:, 0], splits.y_retained, s=8, color="black", label="retained")
        ax.scatter(splits.x_forgotten[:, 0], splits.y_forgotten, s=22, marker="x", color="red", label="forgotten")
        ax.set_xlabel("x (standardised)")
    else:
        ax.plot(table[column], table[column], color="black", lw=0.8, label="perfect prediction")
        ax.set_xlabel("true y of test records (standardised)")
    ax.set_ylabel("y (standardised)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}), suffix=".png")
    plt.close(fig)
