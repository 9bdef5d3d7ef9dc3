"""Laplace posteriors N(μ, Λ⁻¹) with a linearised (GLM) predictive.

A posterior is plain data: mean μ, precision Λ, the linearisation point θ*
where the curvature was taken, the prior precision, the noise and the network
spec. For the original fit μ = θ*; after unlearning μ moves and θ* stays, so
the predictive f(x, θ*) + J(x)(θ − θ*) is the exact posterior predictive of the
linearised network. Plugging the moved mean straight into the network instead
wrecked the fit on retained data in a probe here (DESIGN.md §5).
"""

from __future__ import annotations

from .errors import NotPositiveDefinite

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.linalg

from . import store
from .curvature import data_curvature, outputs_and_jacobians
from .model import RegressionModel

FORMAT_VERSION = 1



@dataclass(frozen=True)
class LaplacePosterior:
    model: RegressionModel
    mean: np.ndarray               # μ, (P,)
    precision: np.ndarray          # Λ, (P, P)
    linearisation_point: np.ndarray  # θ*, (P,)
    structure: str = "full_ggn"

    @property
    def n_params(self) -> int:
        return self.mean.shape[0]

    def cholesky(self) -> np.ndarray:
        """Lower Cholesky factor of Λ; raises NotPositiveDefinite rather than returning NaNs."""
        try:
            return scipy.linalg.cholesky(self.precision, lower=True)
        except np.linalg.LinAlgError:
            raise NotPositiveDefinite("the posterior precision is not positive definite") from None

    def covariance(self) -> np.ndarray:
        return scipy.linalg.cho_solve((self.cholesky(), True), np.eye(self.n_params))

    def to_tfp(self):
        """The posterior as a `tfp.distributions.MultivariateNormalTriL` over θ."""
        import tensorflow_probability as tfp

        scale = scipy.linalg.cholesky(self.covariance(), lower=True)
        return tfp.distributions.MultivariateNormalTriL(loc=self.mean, scale_tril=scale)

    def predictive(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of y at each row of x under the linearised network."""
        f, jac = outputs_and_jacobians(self.model.spec, self.linearisation_point, x)
        mean = f + jac @ (self.mean - self.linearisation_point)
        half = scipy.linalg.solve_triangular(self.cholesky(), jac.T, lower=True)  # L⁻¹Jᵀ
        return mean, np.sum(half * half, axis=0) + self.model.noise_std ** 2

    def save(self, path: str | Path) -> None:
        """One .npz file, byte-identical for identical contents (fixed zip timestamps)."""
        meta = {"format_version": FORMAT_VERSION, "structure": self.structure, "model": self.model.to_dict()}
        arrays = {"mean": self.mean, "precision": self.precision, "linearisation_point": self.linearisation_point}
        store.save_arrays(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> LaplacePosterior:
        meta, data = store.load_arrays(path)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: posterior format {meta.get('format_version')} is not {FORMAT_VERSION}; "
                             f"re-run the stage that wrote it.")
        return cls(RegressionModel.from_dict(meta["model"]), data["mean"], data["precision"],
                   data["linearisation_point"], meta["structure"])

    def with_updates(self, **changes) -> LaplacePosterior:
        return replace(self, **changes)


def fit_laplace(model: RegressionModel, theta_map: np.ndarray, x: np.ndarray, y: np.ndarray) -> LaplacePosterior:
    """Full GGN Laplace at the MAP: Λ = Σ J_iᵀJ_i/σ² + αI."""
    ggn, _ = data_curvature(model, theta_map, x, y)
    precision = ggn + model.prior_precision * np.eye(len(theta_map))
    return LaplacePosterior(model, theta_map.copy(), precision, theta_map.copy())

