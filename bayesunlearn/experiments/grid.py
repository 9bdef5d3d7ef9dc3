"""The study's grid and its summary: which records a case forgets, medians per group.

No TensorFlow, so planners and collectors (the sweep flow) stay light.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

MODES = ("random", "cluster")


def forget_mask(x: np.ndarray, mode: str, fraction: float, seed: int) -> np.ndarray:
    n_forget = max(1, round(fraction * len(x)))
    mask = np.zeros(len(x), dtype=bool)
    if mode == "random":
        mask[np.random.default_rng(seed).permutation(len(x))[:n_forget]] = True
    elif mode == "cluster":
        mask[np.argsort(-x[:, 0], kind="stable")[:n_forget]] = True
    else:
        raise ValueError(f"deletion mode {mode!r} is not one of {MODES}")
    return mask


@dataclass(frozen=True)
class Cell:
    """One case of the study: which records go (mode, fraction) and the seed of a random draw."""

    mode: str
    fraction: float
    seed: int


def study_grid(modes: Iterable[str], fractions: Iterable[float], seeds: Iterable[int]) -> list[Cell]:
    """Every (mode, fraction, seed); cluster deletions do not depend on the seed and run once."""
    seeds, fractions = list(seeds), list(fractions)
    return [Cell(mode, fraction, seed) for mode in modes for fraction in fractions
            for seed in (seeds if mode == "random" else seeds[:1])]


def summarise(results: pd.DataFrame, by: Iterable[str] = ("method", "mode", "fraction")) -> pd.DataFrame:
    """Median gain and failure rate per method, mode and fraction (and any further `by` columns)."""
    grouped = results.groupby(list(by), sort=True)
    return grouped.agg(median_gain=("gain", "median"),
                       median_pred_kl=("pred_kl_unlearned_retrained", "median"),
                       median_pred_kl_original=("pred_kl_original_retrained", "median"),
                       failed=("failed", "sum"), runs=("failed", "size")).reset_index()
