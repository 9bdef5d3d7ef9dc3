"""Figures of the comparison study: predictive KL to the retrain against the forgotten fraction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bayesunlearn.io import atomic


def save_kl_vs_fraction(path: str | Path, summary: pd.DataFrame) -> None:
    def no_unlearning(ax, part: pd.DataFrame) -> None:
        base = part.groupby("fraction")["median_pred_kl_original"].median()
        ax.plot(base.index, base.values, color="black", ls="--", lw=2, label="no unlearning (original)")

    _save_by_mode(path, summary, ["method"], "median_pred_kl", "median predictive KL(retrain ‖ method)",
                  no_unlearning)


def save_gain_vs_fraction(path: str | Path, summary: pd.DataFrame) -> None:
    """The sweep's figure: median gain per method and network size (`hidden` column); below 1 = helped."""
    def break_even(ax, _part: pd.DataFrame) -> None:
        ax.axhline(1.0, color="black", ls="--", lw=2, label="gain 1 = no better than the original")

    _save_by_mode(path, summary, ["method", "hidden"], "median_gain", "median gain (KL unlearned / KL original)",
                  break_even)


def line_style(i: int) -> dict:
    """The i-th of 60 distinguishable line styles: 20 colours (tab20) × 3 markers and dash patterns."""
    import matplotlib

    colour = matplotlib.colormaps["tab20"](i % 20)
    marker, dashes = [("o", "-"), ("s", "--"), ("^", ":")][(i // 20) % 3]
    return {"color": colour, "marker": marker, "linestyle": dashes}


def _save_by_mode(path: str | Path, summary: pd.DataFrame, series: list[str], y: str, ylabel: str,
                  baseline: Callable) -> None:
    """One log-log panel per deletion mode, one line per `series` group, plus a reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(summary["mode"]))
    keys = list(dict.fromkeys(summary[series].itertuples(index=False, name=None)))
    styles = {key: line_style(i) for i, key in enumerate(keys)}  # one look per series, the same in every panel
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), dpi=100, squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=False):
        part = summary[summary["mode"] == mode]
        for key, rows in part.groupby(series):
            label = key[0] if len(key) == 1 else ", ".join(f"{c} {v}" if i else str(v)
                                                          for i, (c, v) in enumerate(zip(series, key)))
            ax.plot(rows["fraction"], rows[y], label=label, **styles[key])
        baseline(ax, part)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("forgotten fraction of training records")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{mode} deletion")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}), suffix=".png")
    plt.close(fig)


def save_method_bands(path: str | Path, kept: dict, x: np.ndarray, y: np.ndarray, title: str) -> None:
    """One panel per method: mean ± 2 sd of original, unlearned and retrained posteriors (1-D inputs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(kept)
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), dpi=90, squeeze=False, sharey=True)
    pad = 0.25 * (x.max() - x.min())
    grid = np.linspace(x.min() - pad, x.max() + pad, 150)[:, None]
    colours = {"original": "tab:grey", "unlearned": "tab:orange", "retrained": "tab:blue"}
    for ax, name in zip(axes.flat, names, strict=False):
        case = kept[name]
        for label in ("original", "retrained", "unlearned"):
            post = case[label]
            if post is None:
                continue
            mean, var = post.predictive(grid)
            ax.plot(grid[:, 0], mean, color=colours[label], lw=1, label=label)
            ax.fill_between(grid[:, 0], mean - 2 * np.sqrt(var), mean + 2 * np.sqrt(var), color=colours[label],
                            alpha=0.15)
        f = case["mask"]
        ax.scatter(x[~f, 0], y[~f], s=3, color="black")
        ax.scatter(x[f, 0], y[f], s=5, marker="x", color="red")
        ax.set_ylim(-3, 3)
        ax.set_title(name + (" (failed)" if case["unlearned"] is None else ""), fontsize=9)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}), suffix=".png")
    plt.close(fig)
