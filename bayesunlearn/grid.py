"""The study's grid: which records a case forgets. No TensorFlow, so planners (the sweep flow) stay light."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

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
