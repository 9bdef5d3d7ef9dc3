"""Predictive bands of several posteriors, as a table (for DVC plots) and a PNG; for a classifier, their
reliability diagram on the test records instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesunlearn.io import atomic
from bayesunlearn.io.datasets import Splits
from bayesunlearn.numerics import metrics
from bayesunlearn.posteriors.posterior import GaussianPosterior

RELIABILITY_BINS = 10
# the reliability table's first column, and the diagram's axes: a binary classifier's probability of class 1,
# or (K classes) the probability of each record's predicted class against the accuracy (top-label)
RELIABILITY_AXES = {
    "predicted_probability": ("predicted probability of class 1 (test records, binned)",
                              "observed share of class 1 (±2 se)"),
    "predicted_confidence": ("probability of the predicted class (test records, binned)",
                             "observed accuracy (±2 se)"),
}


def predictive_table(posteriors: dict[str, GaussianPosterior], splits: Splits, n_grid: int) -> pd.DataFrame:
    """Mean ± 2 sd over a grid (1-D inputs) or over the test inputs ordered by target; for a classifier, the
    reliability table."""
    if not next(iter(posteriors.values())).model.gaussian:
        return reliability_table(posteriors, splits)
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


def reliability_table(posteriors: dict[str, GaussianPosterior], splits: Splits) -> pd.DataFrame:
    """Per bin of predicted probability (equal width on [0, 1], test records): each posterior's mean predicted
    probability, the observed share of class 1 as `_mean`, and ± 2 binomial standard errors around it (NaN
    where the posterior puts no test record in the bin). On the diagonal = calibrated."""
    column = "predicted_confidence" if next(iter(posteriors.values())).model.categorical else "predicted_probability"
    table: dict[str, np.ndarray] = {column: (np.arange(RELIABILITY_BINS) + 0.5) / RELIABILITY_BINS}
    for name, post in posteriors.items():
        predicted, observed, count = reliability(post, splits.x_test, splits.y_test)
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = 2 * np.sqrt(observed * (1 - observed) / count)
        table[f"{name}_predicted"], table[f"{name}_mean"] = predicted, observed
        table[f"{name}_lower"] = np.clip(observed - spread, 0, 1)  # a share lies in [0, 1]
        table[f"{name}_upper"] = np.clip(observed + spread, 0, 1)
    return pd.DataFrame(table)


def reliability(post: GaussianPosterior, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of the predicted probability of class 1: its mean, the observed share of class 1
    and the number of records (NaN shares in empty bins). With K classes the probability is that of each
    record's predicted class and the observed share the accuracy (the top-label diagram)."""
    probability = post.model.class_probabilities(*post.predictive(x))
    if probability.ndim == 2:
        y = (metrics.predicted_class(probability) == y.astype(int)).astype(np.float64)
        probability = probability.max(axis=1)
    which = np.minimum((probability * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
    count = np.bincount(which, minlength=RELIABILITY_BINS).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.bincount(which, weights=probability, minlength=RELIABILITY_BINS) / count,
                np.bincount(which, weights=y, minlength=RELIABILITY_BINS) / count, count)


def save_predictive_png(path: str | Path, table: pd.DataFrame, splits: Splits, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = table.columns[0]
    names = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]
    colours = dict(zip(names, ["tab:grey", "tab:orange", "tab:blue", "tab:green", "tab:red"], strict=False))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if column in RELIABILITY_AXES:
        _reliability(ax, table, names, colours)
    else:
        _bands(ax, table, splits, names, colours)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}), suffix=".png")
    plt.close(fig)


def _bands(ax, table: pd.DataFrame, splits: Splits, names: list[str], colours: dict[str, str]) -> None:
    column = table.columns[0]
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


def _reliability(ax, table: pd.DataFrame, names: list[str], colours: dict[str, str]) -> None:
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, label="calibrated")
    for name in names:
        mean = table[f"{name}_mean"]
        spread = [mean - table[f"{name}_lower"], table[f"{name}_upper"] - mean]
        ax.errorbar(table[f"{name}_predicted"], mean, yerr=spread, color=colours[name], marker="o", ms=4, capsize=2,
                    label=name)
    xlabel, ylabel = RELIABILITY_AXES[table.columns[0]]
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05, 1.05)
