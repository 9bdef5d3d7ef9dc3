"""Fitting a posterior of any kind: around a given MAP, or from scratch (the retrain unlearning is judged by)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesunlearn.io.sections import VI, Laplace, Train
from bayesunlearn.io.settings import Settings
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.training import fit_map
from bayesunlearn.kinds import KINDS
from bayesunlearn.posteriors.laplace import DataTerm, fit_laplace, optimize_hyperparameters
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.posteriors.vi import fit_vi


@dataclass(frozen=True)
class FitSettings:
    """How to fit each posterior kind (params.yaml sections `laplace` and `vi`)."""

    laplace: Laplace = field(default_factory=Laplace)
    vi: VI = field(default_factory=VI)

    @classmethod
    def of(cls, settings: Settings) -> FitSettings:
        return cls(settings.laplace, settings.vi)


def fit_posterior(kind: str, model: RegressionModel, theta_map: np.ndarray, x: np.ndarray, y: np.ndarray,
                  settings: FitSettings, data: DataTerm | None = None) -> GaussianPosterior:
    """The posterior of one kind around a MAP: Laplace directly, VI started from a Laplace fit. `data`:
    a Laplace kind's data term when already summed (over shards: posteriors/sharded.py)."""
    spec = KINDS[kind]
    if spec.family == "laplace":
        posterior = fit_laplace(model, theta_map, x, y, kind, data, settings.laplace.subnetwork_size)
        return optimize_hyperparameters(posterior, x, y) if settings.laplace.optimize_hyperparameters else posterior
    start = fit_laplace(model, theta_map, x, y, spec.start)
    return fit_vi(model, x, y, start, spec.vi_family, settings.vi)


def fit_from_scratch(kind: str, model: RegressionModel, x: np.ndarray, y: np.ndarray, seed: int,
                     train: Train, settings: FitSettings) -> tuple[GaussianPosterior, dict]:
    """MAP from a seeded initialisation, then the posterior: the retrain that unlearning is judged by."""
    theta, info = fit_map(model, x, y, model.spec.init(seed), train)
    return fit_posterior(kind, model, theta, x, y, settings), info
