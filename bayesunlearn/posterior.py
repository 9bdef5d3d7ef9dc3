"""Gaussian posteriors over θ: one class for every Laplace structure and VI family.

A posterior is plain data: the mean μ (all P parameters), a precision over the
parameters it covers (dense (k, k) or diagonal (k,)), the point θ* where its
curvature was taken, its structure, and the model (network, prior, noise).
Parameters outside `index` (last-layer Laplace) stay fixed at θ*.

Large dense posteriors are held in covariance form: Σ only, `precision` None.
At 10k parameters each P × P matrix is 800 MB; keeping Λ next to Σ doubled the
memory and the work of every Woodbury downdate, and nothing on the serving path
needs Λ (predictions use Σ). `dense_precision()` forms Λ on demand.

Predictions use the linearised (GLM) network f(x, θ*) + J(x)(θ − θ*), the exact
predictive of the linearised model: plugging a moved mean straight into the
network wrecked the fit on retained data in a probe here (DESIGN.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.linalg

from . import dense, store
from .curvature import outputs_and_jacobians
from .errors import NotPositiveDefinite
from .kinds import KINDS
from .model import RegressionModel

FORMAT_VERSION = 2


@dataclass(frozen=True)
class GaussianPosterior:
    model: RegressionModel
    mean: np.ndarray                 # μ, (P,)
    precision: np.ndarray | None     # Λ over `index`: (k, k), or (k,) when diagonal; None in covariance form
    linearisation_point: np.ndarray  # θ*, (P,)
    structure: str = "full_ggn"
    covariance: np.ndarray | None = field(default=None, compare=False)  # Λ⁻¹, kept for Woodbury downdates
    diagnostics: dict = field(default_factory=dict, compare=False)  # e.g. repairs made while fitting

    def __post_init__(self) -> None:
        if self.structure not in KINDS:
            raise ValueError(f"posterior kind {self.structure!r} is not one of {sorted(KINDS)}")
        if self.precision is None and (self.covariance is None or self.diagonal):
            raise ValueError("a posterior without a precision needs a dense covariance (covariance form)")

    @property
    def n_params(self) -> int:
        return self.mean.shape[0]

    @property
    def covariance_form(self) -> bool:
        """Σ is the only matrix held (large dense posteriors)."""
        return self.precision is None

    @property
    def n_covered(self) -> int:
        """How many parameters the Gaussian covers (k)."""
        return len(self.covariance if self.covariance_form else self.precision)

    @property
    def diagonal(self) -> bool:
        return KINDS[self.structure].storage == "diagonal"

    @property
    def index(self) -> slice:
        """The parameters the Gaussian covers."""
        if KINDS[self.structure].covers == "last_layer":
            return slice(self.n_params - self.model.spec.n_last_layer, self.n_params)
        return slice(0, self.n_params)

    def dense_precision(self) -> np.ndarray:
        """Λ as a (k, k) matrix: a new P × P matrix in covariance form (O(P³))."""
        if self.covariance_form:
            return dense.inverse_spd(self.covariance)
        return np.diag(self.precision) if self.diagonal else self.precision

    def precision_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of Λ (a diagonal's in its own order)."""
        if self.covariance_form:
            return 1.0 / scipy.linalg.eigvalsh(self.covariance)
        return self.precision if self.diagonal else scipy.linalg.eigvalsh(self.precision)

    def cholesky(self) -> np.ndarray:
        """Lower Cholesky factor of the (dense) precision; raises instead of returning NaNs."""
        try:
            return scipy.linalg.cholesky(self.dense_precision(), lower=True)
        except np.linalg.LinAlgError:
            raise NotPositiveDefinite(f"the {self.structure} posterior precision is not positive definite") from None

    def dense_covariance(self) -> np.ndarray:
        if self.covariance is not None:
            return self.covariance
        if self.diagonal:
            return np.diag(1.0 / self.precision)
        return scipy.linalg.cho_solve((self.cholesky(), True), np.eye(self.n_covered))

    def to_tfp(self):
        """The posterior over the covered parameters as a `tfp.distributions` object."""
        import tensorflow_probability as tfp

        tfd = tfp.distributions
        loc = self.mean[self.index]
        if self.diagonal:
            return tfd.MultivariateNormalDiag(loc=loc, scale_diag=self.precision ** -0.5)
        return tfd.MultivariateNormalTriL(loc=loc, scale_tril=scipy.linalg.cholesky(self.dense_covariance(),
                                                                                   lower=True))

    def predictive(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of y at each row of x under the linearised network."""
        f, jac = outputs_and_jacobians(self.model.spec, self.linearisation_point, x)
        jac = jac[:, self.index]
        mean = f + jac @ (self.mean - self.linearisation_point)[self.index]
        if self.diagonal:
            var_f = (jac * jac) @ (1.0 / self.precision)
        elif self.covariance_form:
            var_f = np.sum(dense.symmetric_times(self.covariance, jac.T) * jac.T, axis=0)  # diag(J Σ Jᵀ)
        else:
            half = scipy.linalg.solve_triangular(self.cholesky(), jac.T, lower=True)  # L⁻¹Jᵀ
            var_f = np.sum(half * half, axis=0)
        return mean, var_f + self.model.noise_std ** 2

    def with_updates(self, **changes) -> GaussianPosterior:
        return replace(self, **changes)

    def save(self, path: str | Path) -> None:
        """One .npz file, byte-identical for identical contents."""
        meta = {"format_version": FORMAT_VERSION, "structure": self.structure, "model": self.model.to_dict(),
                "diagnostics": self.diagnostics}
        arrays = {"mean": self.mean, "precision": self.precision, "linearisation_point": self.linearisation_point}
        if self.covariance_form:
            del arrays["precision"]
        if self.covariance is not None:
            arrays["covariance"] = self.covariance
        store.save_arrays(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> GaussianPosterior:
        meta, data = store.load_arrays(path)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: posterior format {meta.get('format_version')} is not {FORMAT_VERSION}; "
                             f"re-run the stage that wrote it (dvc repro).")
        return cls(RegressionModel.from_dict(meta["model"]), data["mean"], data.get("precision"),
                   data["linearisation_point"], meta["structure"], data.get("covariance"), meta.get("diagnostics", {}))
