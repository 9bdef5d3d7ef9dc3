"""Figures of the real-data study: gain of every event by method, and predicted against actual values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayesunlearn.io import atomic
from bayesunlearn.io.datasets import Splits
from bayesunlearn.posteriors.posterior import GaussianPosterior

DECISIONS = {"pass": ("tab:green", "o", "gate: fast path"), "fallback": ("tab:red", "x", "gate: fallback"),
             "": ("tab:grey", "s", "baseline (no gate)")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}), suffix=".png")
    _pyplot().close(fig)


def save_gain_by_method(path: str | Path, results: pd.DataFrame, max_gain: float) -> None:
    """One panel per dataset and mode: each event's gain per method (log scale), marked by the gate's decision;
    the dashed line is the audit's limit (above it, worse than doing nothing)."""
    plt = _pyplot()
    panels = list(dict.fromkeys(results[["dataset", "mode"]].itertuples(index=False, name=None)))
    methods = list(dict.fromkeys(results["method"]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8, 0.6 * len(methods)), 3.6 * len(panels)), dpi=100,
                             squeeze=False)
    for ax, (dataset, mode) in zip(axes[:, 0], panels, strict=True):
        part = results[(results["dataset"] == dataset) & (results["mode"] == mode)]
        for decision, (colour, marker, label) in DECISIONS.items():
            rows = part[(part["gate"] == decision) & part["gain"].notna()]
            jitter = np.linspace(-0.2, 0.2, len(rows)) if len(rows) > 1 else np.zeros(len(rows))
            ax.scatter([methods.index(m) for m in rows["method"]] + jitter, rows["gain"], color=colour,
                       marker=marker, s=18, label=label)
        ax.axhline(max_gain, color="black", ls="--", lw=1, label="gain 1: no better than the original")
        ax.set_yscale("log")
        ax.set_xticks(range(len(methods)), methods, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel("gain (KL unlearned / KL original)")
        ax.set_title(f"{dataset}: {mode} deletions ({part[['seed', 'fraction']].drop_duplicates().shape[0]} events)")
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    _save(fig, path)


@dataclass(frozen=True)
class Case:
    """Posteriors to compare (e.g. original, unlearned, retrained) on one event's records."""

    title: str
    posteriors: dict[str, GaussianPosterior]
    splits: Splits
    y_mean: float
    y_std: float


def save_predicted_vs_actual(path: str | Path, cases: list[Case]) -> None:
    """One row per case: predicted mean against the actual target on the forgotten and the test records,
    in the target's units; for a classifier, the reliability diagram of those records."""
    plt = _pyplot()
    if not cases:  # the figure is a DVC output: say why it is empty rather than fail after the study's work
        fig = plt.figure(figsize=(6, 2), dpi=100)
        fig.text(0.5, 0.5, "the production method was not run or failed on every plotted event", ha="center")
        _save(fig, path)
        return
    fig, axes = plt.subplots(len(cases), 2, figsize=(11, 4.5 * len(cases)), dpi=100, squeeze=False)
    for row, case in zip(axes, cases, strict=True):
        colours = dict(zip(case.posteriors, ["tab:grey", "tab:orange", "tab:blue", "tab:green"], strict=False))
        for ax, (part, x, y) in zip(row, (("forgotten", case.splits.x_forgotten, case.splits.y_forgotten),
                                          ("test", case.splits.x_test, case.splits.y_test)), strict=True):
            if not next(iter(case.posteriors.values())).model.gaussian:
                _reliability_panel(ax, case, colours, x, y, f"{case.title}: {part} records ({len(y)})")
                continue
            actual = y * case.y_std + case.y_mean
            for name, post in case.posteriors.items():
                ax.scatter(actual, post.predictive(x)[0] * case.y_std + case.y_mean, s=6, alpha=0.6,
                           color=colours[name], label=name)
            lo, hi = float(actual.min()), float(actual.max())
            ax.plot([lo, hi], [lo, hi], color="black", lw=1)
            ax.set_xlabel("actual")
            ax.set_ylabel("predicted mean")
            ax.set_title(f"{case.title}: {part} records ({len(y)})", fontsize=9)
        row[1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _reliability_panel(ax, case: Case, colours: dict[str, str], x: np.ndarray, y: np.ndarray, title: str) -> None:
    """Observed share of class 1 against the binned predicted probability, per posterior (K classes: the
    accuracy against the probability of the predicted class)."""
    from bayesunlearn.experiments.plots import reliability

    ax.plot([0, 1], [0, 1], color="black", lw=1)
    for name, post in case.posteriors.items():
        predicted, observed, _ = reliability(post, x, y)
        ax.plot(predicted, observed, marker="o", ms=4, color=colours[name], label=name)
    top_label = next(iter(case.posteriors.values())).model.categorical
    ax.set_xlabel("probability of the predicted class (binned)" if top_label else
                  "predicted probability of class 1 (binned)")
    ax.set_ylabel("observed accuracy" if top_label else "observed share of class 1")
    ax.set_title(title, fontsize=9)
