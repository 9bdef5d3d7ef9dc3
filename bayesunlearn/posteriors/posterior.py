"""Gaussian posteriors over θ: one class for every kind (Laplace structure or VI family).

A posterior is plain data: the mean μ (all P parameters), the Gaussian's matrix
over the parameters its kind covers (matrices.py: diagonal, dense, or
covariance-only), the point θ* where its curvature was taken, its kind, and the
model (network, prior, noise). Parameters outside `index` (last-layer Laplace)
stay fixed at θ*. Everything that depends on how the matrix is stored is the
matrix type's job; the kind's facts come from the registry (kinds.py).

Predictions use the linearised (GLM) network f(x, θ*) + J(x)(θ − θ*), the exact
predictive of the linearised model: plugging a moved mean straight into the
network wrecked the fit on retained data in a probe (docs/design.md, measured facts).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bayesunlearn.io import store
from bayesunlearn.model.curvature import JACOBIAN_BUDGET, row_batches
from bayesunlearn.model.network import outputs_and_jacobians
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.kinds import KINDS, Kind
from bayesunlearn.posteriors.matrices import GaussianMatrix, matrix_from_arrays

FORMAT_VERSION = 2


@dataclass(frozen=True, eq=False)
class GaussianPosterior:
    model: RegressionModel
    mean: np.ndarray                 # μ, (P,)
    matrix: GaussianMatrix           # over the covered parameters (`index`)
    linearisation_point: np.ndarray  # θ*, (P,)
    kind: str = "full_ggn"
    diagnostics: dict = field(default_factory=dict)  # e.g. repairs made while fitting

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"posterior kind {self.kind!r} is not one of {sorted(KINDS)}")

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]

    @property
    def n_params(self) -> int:
        return self.mean.shape[0]

    @property
    def n_covered(self) -> int:
        """How many parameters the Gaussian covers (k)."""
        return self.matrix.size

    @property
    def index(self) -> slice:
        """The parameters the Gaussian covers."""
        return self.spec.index(self.model.spec)

    # what the file holds, as stored
    @property
    def precision(self) -> np.ndarray | None:
        return self.matrix.stored_precision

    @property
    def covariance(self) -> np.ndarray | None:
        return self.matrix.stored_covariance

    def dense_precision(self) -> np.ndarray:
        return self.matrix.precision()

    def dense_covariance(self) -> np.ndarray:
        return self.matrix.covariance()

    def precision_eigenvalues(self) -> np.ndarray:
        return self.matrix.eigenvalues()

    def cholesky(self) -> np.ndarray:
        """Lower Cholesky factor of the precision; raises NotPositiveDefinite instead of returning NaNs."""
        return self.matrix.cholesky()

    def to_tfp(self):
        """The posterior over the covered parameters as a `tfp.distributions` object."""
        return self.matrix.to_tfp(self.mean[self.index])

    def predictive(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of y (Gaussian likelihood) or of the logits f (classifiers; K per record,
        record-major) at each row of x under the linearised network; `model.predictive_nll` and
        `model.predictive_kl` score them. Above the
        Jacobian budget the rows go in batches, so memory stays one batch of J (a 1M-parameter network: 2 rows
        at a time)."""
        per_record = self.n_params * self.model.spec.outputs  # entries of J per record
        rows = (row_batches(len(x), per_record) if len(x) * per_record > JACOBIAN_BUDGET else [slice(0, len(x))])
        parts = [self._predictive(x[batch]) for batch in rows]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([m for m, _ in parts]), np.concatenate([v for _, v in parts])

    def _predictive(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f, jac = outputs_and_jacobians(self.model.spec, self.linearisation_point, x)
        jac = jac[:, self.index]
        mean = f + jac @ (self.mean - self.linearisation_point)[self.index]
        return mean, self.matrix.variance(jac) + self.model.observation_variance

    def predictive_nll(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-record negative log predictive probability of y at the rows of x."""
        return self.model.predictive_nll(y, *self.predictive(x))

    def with_updates(self, **changes) -> GaussianPosterior:
        return replace(self, **changes)

    def save(self, path: str | Path) -> None:
        """One .npz file, byte-identical for identical contents (array order: mean, precision, θ*, covariance)."""
        meta = {"format_version": FORMAT_VERSION, "structure": self.kind, "model": self.model.to_dict(),
                "diagnostics": self.diagnostics}  # "structure": the kind, under its name in format 2
        arrays = {"mean": self.mean}
        if self.precision is not None:
            arrays["precision"] = self.precision
        arrays["linearisation_point"] = self.linearisation_point
        if self.covariance is not None:
            arrays["covariance"] = self.covariance
        arrays.update(self.matrix.extra_arrays())
        store.save_arrays(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> GaussianPosterior:
        meta, data = store.load_arrays(path)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: posterior format {meta.get('format_version')} is not {FORMAT_VERSION}; "
                             f"re-run the stage that wrote it (dvc repro).")
        model = RegressionModel.from_dict(meta["model"])
        return cls(model, data["mean"], matrix_from_arrays(data, model.prior_precision), data["linearisation_point"],
                   meta["structure"], meta.get("diagnostics", {}))
