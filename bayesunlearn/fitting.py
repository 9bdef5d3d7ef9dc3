"""Fit a posterior from scratch: MAP from a seeded initialisation, then GGN Laplace.

The same function makes the original posterior (full data) and the reference
retrains (retained data only), so they differ in their data and nothing else.
"""

from __future__ import annotations

import numpy as np

from .laplace import fit_laplace
from .posterior import GaussianPosterior
from .model import RegressionModel
from .training import TrainConfig, fit_map


def fit_from_scratch(model: RegressionModel, x: np.ndarray, y: np.ndarray, seed: int,
                     config: TrainConfig) -> tuple[GaussianPosterior, dict]:
    theta, info = fit_map(model, x, y, model.spec.init(seed), config)
    return fit_laplace(model, theta, x, y), info
