"""Figures of the comparison study: predictive KL to the retrain against the forgotten fraction."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import atomic


def save_kl_vs_fraction(path: str | Path, summary: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(summary["mode"]))
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), dpi=100, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        part = summary[summary["mode"] == mode]
        for method, rows in part.groupby("method"):
            ax.plot(rows["fraction"], rows["median_pred_kl"], marker="o", label=method)
        base = part.groupby("fraction")["median_pred_kl_original"].median()
        ax.plot(base.index, base.values, color="black", ls="--", lw=2, label="no unlearning (original)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("forgotten fraction of training records")
        ax.set_ylabel("median predictive KL(retrain ‖ method)")
        ax.set_title(f"{mode} deletion")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}), suffix=".png")
    plt.close(fig)
