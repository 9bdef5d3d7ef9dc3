"""The method suite behind one interface: which posterior to fit, and how to unlearn from it.

A *posterior kind* is a Laplace structure or a VI family, fitted to the full
data (the original) and to the retained data (the retrains). A *method* is a
kind plus an unlearning operator and its options, e.g.
    {"posterior": "full_ggn", "operator": "divide", "mean_update": "damped"}
    {"posterior": "vi_full", "operator": "eubo", "threshold": 1e-33}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .laplace import LAPLACE_STRUCTURES, fit_laplace, optimize_hyperparameters
from .model import RegressionModel
from .options import STRUCTURES, Method
from .posterior import GaussianPosterior
from .training import TrainConfig, fit_map
from .unlearn import forget
from .vi import VIConfig, fit_vi
from .vi_unlearn import unlearn_vi

VI_KINDS = {"vi_mean_field": ("mean_field", "diag_ggn"), "vi_full": ("full", "full_ggn")}


@dataclass(frozen=True)
class FitSettings:
    """How to fit each posterior kind (params.yaml sections `laplace` and `vi`)."""

    optimize_hyperparameters: bool = False
    vi: dict | None = None  # VIConfig fields, plus learning_rate per kind

    def vi_config(self, kind: str) -> VIConfig:
        settings = dict(self.vi or {})
        rates = settings.pop("learning_rate", {})
        rate = rates.get(kind, 0.01) if isinstance(rates, dict) else float(rates)
        try:
            return VIConfig(learning_rate=float(rate), **settings)
        except TypeError as err:
            raise ConfigError(f"params.yaml vi section: {err}") from None


def fit_posterior(kind: str, model: RegressionModel, theta_map: np.ndarray, x: np.ndarray, y: np.ndarray,
                  settings: FitSettings) -> GaussianPosterior:
    """The posterior of one kind around a MAP: Laplace directly, VI started from a Laplace fit."""
    if kind in LAPLACE_STRUCTURES:
        posterior = fit_laplace(model, theta_map, x, y, kind)
        return optimize_hyperparameters(posterior, x, y) if settings.optimize_hyperparameters else posterior
    if kind in VI_KINDS:
        family, start_structure = VI_KINDS[kind]
        start = fit_laplace(model, theta_map, x, y, start_structure)
        return fit_vi(model, x, y, start, family, settings.vi_config(kind))
    raise ConfigError(f"unknown posterior kind {kind!r}; use one of {sorted(STRUCTURES)}.")


def fit_from_scratch(kind: str, model: RegressionModel, x: np.ndarray, y: np.ndarray, seed: int,
                     train: TrainConfig, settings: FitSettings) -> tuple[GaussianPosterior, dict]:
    """MAP from a seeded initialisation, then the posterior: the retrain that unlearning is judged by."""
    theta, info = fit_map(model, x, y, model.spec.init(seed), train)
    return fit_posterior(kind, model, theta, x, y, settings), info


def unlearn(method: Method, original: GaussianPosterior, x_f: np.ndarray, y_f: np.ndarray
            ) -> tuple[GaussianPosterior | None, dict]:
    """Apply a method; a failed operator returns None and says why in its report."""
    config = method.unlearn_config()
    if method.operator == "divide":
        posterior, report = forget(original, x_f, y_f, config)
        return posterior, {"status": "ok", "reason": "", **report.to_dict()}
    posterior, report = unlearn_vi(original, x_f, y_f, config)
    return posterior, report.to_dict()
