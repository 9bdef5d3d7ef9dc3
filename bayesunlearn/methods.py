"""The method suite behind one interface: which posterior to fit, and how to unlearn from it.

A *posterior kind* (kinds.py) is a Laplace structure or a VI family, fitted to
the full data (the original) and to the retained data (the retrains). A
*method* (settings.Method) is a kind plus an unlearning operator and its options, e.g.
    {"posterior": "full_ggn", "operator": "divide", "mean_update": "damped"}
    {"posterior": "vi_full", "operator": "eubo", "threshold": 1e-33}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .kinds import KINDS
from .laplace import fit_laplace, optimize_hyperparameters
from .model import RegressionModel
from .posterior import GaussianPosterior
from .settings import VI, Divide, Laplace, Method, Settings, Train
from .training import fit_map
from .unlearn import forget
from .vi import fit_vi
from .vi_unlearn import unlearn_vi


@dataclass(frozen=True)
class FitSettings:
    """How to fit each posterior kind (params.yaml sections `laplace` and `vi`)."""

    laplace: Laplace = field(default_factory=Laplace)
    vi: VI = field(default_factory=VI)

    @classmethod
    def of(cls, settings: Settings) -> FitSettings:
        return cls(settings.laplace, settings.vi)


def fit_posterior(kind: str, model: RegressionModel, theta_map: np.ndarray, x: np.ndarray, y: np.ndarray,
                  settings: FitSettings) -> GaussianPosterior:
    """The posterior of one kind around a MAP: Laplace directly, VI started from a Laplace fit."""
    spec = KINDS[kind]
    if spec.family == "laplace":
        posterior = fit_laplace(model, theta_map, x, y, kind)
        return optimize_hyperparameters(posterior, x, y) if settings.laplace.optimize_hyperparameters else posterior
    start = fit_laplace(model, theta_map, x, y, spec.start)
    return fit_vi(model, x, y, start, spec.vi_family, settings.vi)


def fit_from_scratch(kind: str, model: RegressionModel, x: np.ndarray, y: np.ndarray, seed: int,
                     train: Train, settings: FitSettings) -> tuple[GaussianPosterior, dict]:
    """MAP from a seeded initialisation, then the posterior: the retrain that unlearning is judged by."""
    theta, info = fit_map(model, x, y, model.spec.init(seed), train)
    return fit_posterior(kind, model, theta, x, y, settings), info


def unlearn(method: Method, original: GaussianPosterior, x_f: np.ndarray, y_f: np.ndarray
            ) -> tuple[GaussianPosterior | None, dict]:
    """Apply a method; a failed operator returns None and says why in its report."""
    if isinstance(method, Divide):
        posterior, report = forget(original, x_f, y_f, method)
        return posterior, {"status": "ok", "reason": "", **report.to_dict()}
    posterior, report = unlearn_vi(original, x_f, y_f, method)
    return posterior, report.to_dict()
