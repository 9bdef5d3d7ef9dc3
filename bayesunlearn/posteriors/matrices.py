"""The matrix a Gaussian posterior holds, one type per storage: diagonal, dense, covariance-only.

A posterior delegates everything that depends on how its matrix is stored to
one of these types: eigenvalues, dense forms, the predictive variance
diag(JΣJᵀ), and `add` — the Gaussian product or division Λ ± H_f with its
solve Λ_new⁻¹·rhs, its repairs and its report. A new structure (Kronecker
factors, low rank plus diagonal) is one new subclass here plus a registry entry
in kinds.py; no other code branches on storage.

- Diagonal: Λ as a vector (diagonal GGN, mean-field VI).
- Dense: Λ and, where it exists, Σ = Λ⁻¹ (kept for Woodbury downdates).
- CovarianceOnly: Σ alone, for large dense posteriors: at 10k parameters each
  P × P matrix is 800 MB, keeping Λ next to Σ doubled the memory and the work
  of every downdate, and nothing on the serving path needs Λ.
- Kronecker: KFAC's per-layer factors (posteriors/kronecker.py).
- EigenKronecker: EK-FAC's per-layer eigenbases and refitted eigenvalues (posteriors/ekfac.py).
- Subnetwork: a dense block over chosen weights and a diagonal for the rest (posteriors/subnetwork.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from bayesunlearn.errors import NotPositiveDefinite
from bayesunlearn.io.sections import DivideOptions
from bayesunlearn.numerics import dense
from bayesunlearn.numerics.threads import blas_for

DENSE_EIG_MAX_PARAMS = 1000  # above this the Woodbury path skips the O(P³) smallest-eigenvalue report


@dataclass(frozen=True)
class Curvature:
    """A data term's curvature H and NLL gradient g over the covered parameters: H as a dense matrix, a
    diagonal (vector), or a factor U with H = UUᵀ (the GGN of r records has rank r: U = Jᵀ/σ)."""

    gradient: np.ndarray
    matrix: np.ndarray | None = None
    factor: np.ndarray | None = None
    structured: object | None = None  # the records' curvature in a structure's own form: KFAC's factor sums
                                      # (kronecker.py), a subnetwork's block and diagonal (subnetwork.py)
    operator: Callable[[np.ndarray], np.ndarray] | None = None  # H·v when H is not held as a matrix
    # the records' own NLL curvature·v where it differs from the H of the division (KFAC: Λ − Λ_r is not the
    # forgotten records' curvature and can be indefinite); the damped step's quadratic model uses it
    model: Callable[[np.ndarray], np.ndarray] | None = None

    def apply_model(self, v: np.ndarray) -> np.ndarray:
        return self.model(v) if self.model is not None else self.apply(v)

    def apply(self, v: np.ndarray) -> np.ndarray:
        if self.operator is not None:
            return self.operator(v)
        if self.factor is not None:
            return self.factor @ (self.factor.T @ v)
        return self.matrix * v if self.matrix.ndim == 1 else self.matrix @ v

    def dense(self) -> np.ndarray:
        return self.factor @ self.factor.T if self.factor is not None else self.matrix


@dataclass(frozen=True)
class Update:
    """The result of Λ ± H: the new matrix, Λ_new⁻¹·rhs, and what happened on the way."""

    matrix: GaussianMatrix
    step: np.ndarray
    min_eig: float    # of Λ ± H before any repair (NaN when too large to compute)
    n_negative: int   # eigenvalues ≤ 0 before repair (−1 when not computed)
    repair: str       # "none", or the repair applied
    damping: float    # δ added by "damp", or the floor used by "clip"
    solver: str       # "dense", "woodbury", "diagonal", "kronecker" or "ekfac"


class GaussianMatrix(ABC):
    """How a posterior holds its Gaussian's matrix over the k parameters it covers."""

    stored_precision: np.ndarray | None = None   # what the posterior file holds as "precision"
    stored_covariance: np.ndarray | None = None  # ... and as "covariance"

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of Λ."""

    @abstractmethod
    def precision(self) -> np.ndarray:
        """Λ as a (k, k) matrix."""

    @abstractmethod
    def covariance(self) -> np.ndarray:
        """Σ as a (k, k) matrix."""

    @abstractmethod
    def variance(self, jac: np.ndarray) -> np.ndarray:
        """diag(J Σ Jᵀ) for the rows of J (n, k): the functional variance of the linearised network."""

    def solve(self, v: np.ndarray) -> np.ndarray:
        """Λ⁻¹ v (structures with a cheaper solve than Σ override it)."""
        return self.covariance() @ v

    @abstractmethod
    def copy(self) -> GaussianMatrix:
        """A copy that an in-place update of this one leaves alone."""

    @abstractmethod
    def add(self, curvature: Curvature, sign: float, rhs: np.ndarray, floor: float, options: DivideOptions,
            in_place: bool = False) -> Update:
        """Λ + sign·H (sign −1: divide out a likelihood), repaired as `options` say, and Λ_new⁻¹·rhs."""

    def extra_arrays(self) -> dict[str, np.ndarray]:
        """What a posterior file holds for this type besides "precision" and "covariance"."""
        return {}

    def cholesky(self) -> np.ndarray:
        """Lower Cholesky factor of Λ; raises instead of returning NaNs."""
        try:
            return scipy.linalg.cholesky(self.precision(), lower=True)
        except np.linalg.LinAlgError:
            raise NotPositiveDefinite("the posterior precision is not positive definite") from None

    def precision_diagonal(self) -> np.ndarray:
        return np.diag(self.precision())

    def scale(self) -> np.ndarray:
        """A square root of Σ: the lower Cholesky factor (a diagonal keeps it as a vector)."""
        return scipy.linalg.cholesky(self.covariance(), lower=True)

    def to_tfp(self, loc: np.ndarray):
        """The Gaussian as a `tfp.distributions` object."""
        from bayesunlearn.model.tf import tfp

        return tfp.distributions.MultivariateNormalTriL(loc=loc, scale_tril=self.scale())


@dataclass(frozen=True, eq=False)
class Diagonal(GaussianMatrix):
    values: np.ndarray  # the diagonal of Λ

    @property
    def stored_precision(self) -> np.ndarray:
        return self.values

    @property
    def size(self) -> int:
        return len(self.values)

    def eigenvalues(self) -> np.ndarray:
        return self.values

    def precision(self) -> np.ndarray:
        return np.diag(self.values)

    def covariance(self) -> np.ndarray:
        return np.diag(1.0 / self.values)

    def variance(self, jac: np.ndarray) -> np.ndarray:
        return (jac * jac) @ (1.0 / self.values)

    def solve(self, v: np.ndarray) -> np.ndarray:
        return v / self.values

    def cholesky(self) -> np.ndarray:
        if not np.all(self.values > 0):
            raise NotPositiveDefinite("the posterior precision is not positive definite")
        return np.diag(np.sqrt(self.values))

    def precision_diagonal(self) -> np.ndarray:
        return self.values

    def copy(self) -> Diagonal:
        return Diagonal(self.values.copy())

    def scale(self) -> np.ndarray:
        return self.values ** -0.5

    def to_tfp(self, loc: np.ndarray):
        from bayesunlearn.model.tf import tfp

        return tfp.distributions.MultivariateNormalDiag(loc=loc, scale_diag=self.scale())

    def add(self, curvature, sign, rhs, floor, options, in_place=False) -> Update:
        precision = self.values + sign * curvature.matrix
        min_eig, n_neg = float(precision.min()), int(np.sum(precision <= 0))
        repair, delta = "none", 0.0
        if n_neg:
            if options.repair == "refuse":
                raise NotPositiveDefinite(f"after forgetting, {n_neg} diagonal precisions are ≤ 0; choose repair "
                                          f"'clip' or 'damp', or fall back to retraining.")
            if options.repair == "clip":
                precision, repair, delta = np.maximum(precision, floor), "clip", floor
            else:
                delta = floor - float(precision.min())
                precision, repair = precision + delta, "damp"
        return Update(Diagonal(precision), rhs / precision, min_eig, n_neg, repair, delta, "diagonal")


@dataclass(frozen=True, eq=False)
class Dense(GaussianMatrix):
    full_precision: np.ndarray                  # Λ, (k, k)
    full_covariance: np.ndarray | None = field(default=None)  # Σ; None when Λ is not positive definite

    @property
    def stored_precision(self) -> np.ndarray:
        return self.full_precision

    @property
    def stored_covariance(self) -> np.ndarray | None:
        return self.full_covariance

    @property
    def size(self) -> int:
        return len(self.full_precision)

    def eigenvalues(self) -> np.ndarray:
        return scipy.linalg.eigvalsh(self.full_precision)

    def precision(self) -> np.ndarray:
        return self.full_precision

    def copy(self) -> Dense:
        return Dense(self.full_precision.copy(), None if self.full_covariance is None else self.full_covariance.copy())

    def covariance(self) -> np.ndarray:
        if self.full_covariance is not None:
            return self.full_covariance
        return scipy.linalg.cho_solve((self.cholesky(), True), np.eye(self.size))

    def variance(self, jac: np.ndarray) -> np.ndarray:
        half = scipy.linalg.solve_triangular(self.cholesky(), jac.T, lower=True)  # L⁻¹Jᵀ
        return np.sum(half * half, axis=0)

    def solve(self, v: np.ndarray) -> np.ndarray:
        if self.full_covariance is None:  # by Cholesky, without forming Σ
            return scipy.linalg.cho_solve((self.cholesky(), True), v)
        return super().solve(v)

    def add(self, curvature, sign, rhs, floor, options, in_place=False) -> Update:
        woodbury = _try_woodbury(self.full_covariance, self.full_precision, curvature, sign, rhs, options, in_place)
        if woodbury is not None:
            precision, covariance, step = woodbury
            p = self.size
            min_eig, n_neg = ((float(scipy.linalg.eigvalsh(precision, subset_by_index=[0, 0])[0]), 0)
                              if p <= DENSE_EIG_MAX_PARAMS else (float("nan"), -1))
            return Update(Dense(precision, covariance), step, min_eig, n_neg, "none", 0.0, "woodbury")
        with blas_for(self.size):
            division = _divide_densely(self.full_precision, curvature, sign, rhs, floor, options)
        return division.update(Dense(division.precision, division.covariance))


@dataclass(frozen=True, eq=False)
class CovarianceOnly(GaussianMatrix):
    full_covariance: np.ndarray  # Σ, (k, k)

    @property
    def stored_covariance(self) -> np.ndarray:
        return self.full_covariance

    @property
    def size(self) -> int:
        return len(self.full_covariance)

    def eigenvalues(self) -> np.ndarray:
        return 1.0 / scipy.linalg.eigvalsh(self.full_covariance)

    def precision(self) -> np.ndarray:
        """A new P × P matrix, O(P³)."""
        return dense.inverse_spd(self.full_covariance)

    def covariance(self) -> np.ndarray:
        return self.full_covariance

    def copy(self) -> CovarianceOnly:
        return CovarianceOnly(self.full_covariance.copy())

    def variance(self, jac: np.ndarray) -> np.ndarray:
        return np.sum(dense.symmetric_times(self.full_covariance, jac.T) * jac.T, axis=0)

    def add(self, curvature, sign, rhs, floor, options, in_place=False) -> Update:
        woodbury = _try_woodbury(self.full_covariance, None, curvature, sign, rhs, options, in_place)
        if woodbury is not None:
            _, covariance, step = woodbury
            return Update(CovarianceOnly(covariance), step, float("nan"), -1, "none", 0.0, "woodbury")
        with blas_for(self.size):
            division = _divide_densely(self.precision(), curvature, sign, rhs, floor, options)
        return division.update(CovarianceOnly(division.covariance))  # stays in covariance form


def matrix_from_arrays(arrays: dict[str, np.ndarray], prior_precision: float) -> GaussianMatrix:
    """The matrix type that stored arrays describe: Kronecker factors, a subnetwork, a vector is a diagonal,
    Σ alone is covariance form."""
    from bayesunlearn.posteriors import ekfac, kronecker, subnetwork  # they build on this module

    if f"{kronecker.PREFIX}count" in arrays:
        return kronecker.Kronecker.from_arrays(arrays, prior_precision)
    if f"{ekfac.PREFIX}count" in arrays:
        return ekfac.EigenKronecker.from_arrays(arrays, prior_precision)
    if f"{subnetwork.PREFIX}indices" in arrays:
        return subnetwork.Subnetwork.from_arrays(arrays)
    precision, covariance = arrays.get("precision"), arrays.get("covariance")
    if precision is None:
        if covariance is None:
            raise ValueError("a Gaussian needs a precision or a covariance")
        return CovarianceOnly(covariance)
    if precision.ndim == 1:
        return Diagonal(precision)
    return Dense(precision, covariance)


# --- dense algebra shared by the dense types ----------------------------------------------------
@dataclass(frozen=True)
class _Division:
    precision: np.ndarray
    covariance: np.ndarray
    step: np.ndarray
    min_eig: float
    n_negative: int
    repair: str
    damping: float

    def update(self, matrix: GaussianMatrix) -> Update:
        return Update(matrix, self.step, self.min_eig, self.n_negative, self.repair, self.damping, "dense")


def _divide_densely(precision: np.ndarray, curvature: Curvature, sign: float, rhs: np.ndarray, floor: float,
                    options: DivideOptions) -> _Division:
    """Λ ± H by eigendecomposition, repaired as the options say when it is not positive definite."""
    precision = precision + sign * curvature.dense()
    precision = 0.5 * (precision + precision.T)
    eigenvalues, vectors = scipy.linalg.eigh(precision)
    n_neg, min_eig = int(np.sum(eigenvalues <= 0)), float(eigenvalues[0])
    repair, delta = "none", 0.0
    if n_neg:
        if options.repair == "refuse":
            raise NotPositiveDefinite(
                f"after forgetting these records the precision has {n_neg} non-positive eigenvalues (smallest "
                f"{min_eig:.3g}); the Gaussian division is undefined. Choose repair 'clip' or 'damp' in "
                "params.yaml, use a GGN structure, or fall back to retraining.")
        repair = options.repair
        if repair == "clip":
            eigenvalues, delta = np.maximum(eigenvalues, floor), floor
        else:
            delta = floor - min_eig
            eigenvalues = eigenvalues + delta
        precision = (vectors * eigenvalues) @ vectors.T
    covariance = (vectors / eigenvalues) @ vectors.T
    return _Division(precision, covariance, covariance @ rhs, min_eig, n_neg, repair, delta)


def _try_woodbury(covariance: np.ndarray | None, precision: np.ndarray | None, curvature: Curvature, sign: float,
                  rhs: np.ndarray, options: DivideOptions, in_place: bool):
    """(Λ − UUᵀ)⁻¹ = Σ + ΣU (I − UᵀΣU)⁻¹ UᵀΣ with U = J_fᵀ/σ, in O(r·P²) for r forgotten records.

    Applies to a downdate by a low-rank factor when Σ is held; None otherwise, or when I − UᵀΣU (the
    r × r capacitance matrix: the positive-definiteness check) is not positive definite. In place it
    overwrites Σ (and Λ, when held) with rank-r GEMM updates, no new P × P matrix: at large P the
    downdate is bound by passes over Σ, so ΣU and Σ·rhs come from one product, and
    Σ_r·rhs = Σ·rhs + Vᵀ(V·rhs) with V = L⁻¹(ΣU)ᵀ needs no pass over the updated Σ_r. Only the
    P × P products use all BLAS threads (the caller runs on one: numerics/threads.py).
    """
    u = curvature.factor
    p = len(rhs)
    if not (options.woodbury and sign < 0 and u is not None and u.shape[1] < p and covariance is not None):
        return None
    with blas_for(p):
        if in_place:
            products = dense.symmetric_times(covariance, np.column_stack([u, rhs]))  # O(r·P²)
            sigma_u, sigma_rhs = products[:, :-1], products[:, -1]
        else:
            sigma_u = covariance @ u
    capacitance = np.eye(u.shape[1]) - u.T @ sigma_u         # r × r: the PD check
    try:
        chol = scipy.linalg.cholesky(capacitance, lower=True)
    except np.linalg.LinAlgError:
        return None
    half = scipy.linalg.solve_triangular(chol, sigma_u.T, lower=True)
    new_precision = None
    if in_place:
        with blas_for(p):
            new_covariance = dense.add_outer(covariance, half.T, 1.0)
            if precision is not None:
                new_precision = dense.add_outer(precision, u, -1.0)
        return new_precision, new_covariance, sigma_rhs + half.T @ (half @ rhs)
    with blas_for(p):  # the products' buffers become the results: one new P × P matrix each, not two
        new_covariance = half.T @ half
        new_covariance += covariance
        if precision is not None:
            new_precision = u @ u.T
            np.subtract(precision, new_precision, out=new_precision)
        return new_precision, new_covariance, new_covariance @ rhs
