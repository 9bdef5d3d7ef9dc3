"""Unlearning by Gaussian division: remove the forgotten records' linearised likelihood.

With H_f and g_f the curvature and NLL gradient of the forgotten records at θ*
(in the posterior's own structure),
    Λ_r = Λ − H_f,     Λ_r μ_r = Λ μ − H_f θ* + g_f.
This is exact for the linearised network (DESIGN.md oracle 3) and for Bayesian
linear regression (oracle 1), and repeated application composes (oracle 4).
When μ = θ* it is the Newton step μ_r = θ* + Λ_r⁻¹ g_f on the retained objective.

What can go wrong, and what the options do about it:
- Λ_r not positive definite (exact Hessian, large or clustered deletions):
  `repair` = "clip" floors the eigenvalues, "damp" adds δI, "refuse" raises.
- The Newton step overshoots when the forgotten data moved the mode a lot:
  `mean_update` = "damped" shortens it to where a quadratic model of the
  forgotten records' NLL still predicts their actual NLL (no retained data
  needed); "none" keeps the mean and only updates the precision.
- For the GGN, H_f = J_fᵀJ_f/σ² has rank |D_f|: when |D_f| < P and the
  covariance is stored, the downdate uses Woodbury in O(|D_f|·P²) and checks
  positive definiteness on the |D_f| × |D_f| capacitance matrix. With
  `in_place=True` it overwrites the input's Σ (and Λ, unless the posterior is
  in covariance form) with rank-|D_f| GEMM updates: no new P × P matrices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg

from . import dense
from .curvature import network_outputs, outputs_and_jacobians, structured_curvature
from .errors import NotPositiveDefinite
from .posterior import GaussianPosterior
from .settings import DivideOptions
from .threads import blas_for, one_blas_thread

DENSE_EIG_MAX_PARAMS = 1000  # above this the Woodbury path skips the O(P³) smallest-eigenvalue report


@dataclass(frozen=True)
class UnlearningReport:
    n_forgotten: int
    min_eig_precision: float      # of Λ − H_f before any repair (NaN when too large to compute)
    n_negative_eigs: int          # eigenvalues ≤ 0 before repair (−1 when not computed)
    repair: str                   # "none" when Λ_r was positive definite, else the repair applied
    damping: float                # δ added by "damp", or the floor used by "clip"
    step_length: float            # fraction of the Newton step taken
    step_norm: float              # ‖μ_r − μ‖
    solver: str                   # "dense", "woodbury" or "diagonal"

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_OPTIONS = DivideOptions()


def forget(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray,
           options: DivideOptions = DEFAULT_OPTIONS, in_place: bool = False
           ) -> tuple[GaussianPosterior, UnlearningReport]:
    """Remove the records (x, y) from `posterior`.

    in_place: the Woodbury downdate may overwrite `posterior`'s precision and
    covariance (do not use `posterior` afterwards); other paths still copy.
    """
    with one_blas_thread():  # the P × P products inside ask for all threads (threads.py)
        return _combine(posterior, x, y, -1.0, options, in_place)


def relearn(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray,
            options: DivideOptions = DEFAULT_OPTIONS) -> tuple[GaussianPosterior, UnlearningReport]:
    """The inverse of `forget`: multiply the linearised likelihood of (x, y) back in."""
    with one_blas_thread():
        return _combine(posterior, x, y, +1.0, options)


@dataclass(frozen=True)
class _Curvature:
    """H_f and g_f of the records at θ*: H_f as a dense matrix, a diagonal, or a factor U with H_f = UUᵀ."""

    gradient: np.ndarray
    matrix: np.ndarray | None = None
    factor: np.ndarray | None = None  # (k, |D_f|): the GGN's rank-|D_f| factor J_fᵀ/σ

    def apply(self, v: np.ndarray) -> np.ndarray:
        if self.factor is not None:
            return self.factor @ (self.factor.T @ v)
        return self.matrix * v if self.matrix.ndim == 1 else self.matrix @ v

    def dense(self) -> np.ndarray:
        return self.factor @ self.factor.T if self.factor is not None else self.matrix


def _curvature(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray) -> _Curvature:
    if posterior.structure in ("full_ggn", "vi_full") and len(x):
        # one Jacobian pass; the P × P matrix is only formed if the dense path needs it
        f, jac = outputs_and_jacobians(posterior.model.spec, posterior.linearisation_point, x)
        sigma = posterior.model.noise_std
        return _Curvature(jac.T @ (f - y) / sigma**2, factor=jac.T / sigma)
    matrix, gradient = structured_curvature(posterior.model, posterior.linearisation_point, x, y,
                                            posterior.structure, posterior.index)
    return _Curvature(gradient, matrix=matrix)


def _combine(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray, sign: float,
             options: DivideOptions, in_place: bool = False) -> tuple[GaussianPosterior, UnlearningReport]:
    theta_star, idx = posterior.linearisation_point, posterior.index
    curvature = _curvature(posterior, x, y)
    rhs = -sign * (curvature.apply((posterior.mean - theta_star)[idx]) + curvature.gradient)
    floor = posterior.model.prior_precision if options.eig_floor is None else options.eig_floor

    if posterior.diagonal:
        precision = posterior.precision + sign * curvature.matrix
        min_eig, n_neg = float(precision.min()), int(np.sum(precision <= 0))
        repair_used, delta = "none", 0.0
        if n_neg:
            precision, repair_used, delta = _repair_diagonal(precision, n_neg, floor, options)
        covariance, step, solver = None, rhs / precision, "diagonal"
    else:
        precision, covariance, step, min_eig, n_neg, repair_used, delta, solver = _dense_update(
            posterior, curvature, rhs, sign, floor, options, in_place)

    step_length = 1.0
    if options.mean_update == "none":
        step_length = 0.0
    elif options.mean_update == "damped":
        step_length = _trusted_step_length(posterior, x, y, step, curvature, options.trust_tolerance)
    full_step = np.zeros_like(posterior.mean)
    full_step[idx] = step_length * step
    result = posterior.with_updates(mean=posterior.mean + full_step, precision=precision, covariance=covariance)
    return result, UnlearningReport(len(x), min_eig, n_neg, repair_used, delta, step_length,
                                    float(np.linalg.norm(full_step)), solver)


def _dense_update(posterior, curvature: _Curvature, rhs, sign, floor, options, in_place: bool):
    """Λ_r and Λ_r⁻¹·rhs, by Woodbury when it applies, else densely with eigen-repair."""
    p = posterior.n_covered
    k = curvature.factor.shape[1] if curvature.factor is not None else p
    if options.woodbury and sign < 0 and k < p and posterior.covariance is not None:
        result = _woodbury_downdate(posterior, curvature.factor, rhs, in_place)
        if result is not None:
            precision, covariance, step = result
            min_eig, n_neg = (float(scipy.linalg.eigvalsh(precision, subset_by_index=[0, 0])[0]), 0) \
                if p <= DENSE_EIG_MAX_PARAMS and precision is not None else (float("nan"), -1)
            return precision, covariance, step, min_eig, n_neg, "none", 0.0, "woodbury"
    with blas_for(p):
        return _dense_division(posterior, curvature, rhs, sign, floor, options)


def _dense_division(posterior, curvature: _Curvature, rhs, sign, floor, options):
    """Λ ± H_f by eigendecomposition, repaired as the options say when it is not positive definite."""
    precision = posterior.dense_precision() + sign * curvature.dense()
    precision = 0.5 * (precision + precision.T)
    eigenvalues, vectors = scipy.linalg.eigh(precision)
    n_neg, min_eig = int(np.sum(eigenvalues <= 0)), float(eigenvalues[0])
    repair, delta = "none", 0.0
    if n_neg:
        if options.repair == "refuse":
            raise NotPositiveDefinite(
                f"after forgetting these records the {posterior.structure} precision has {n_neg} non-positive "
                f"eigenvalues (smallest {min_eig:.3g}); the Gaussian division is undefined. Choose repair "
                f"'clip' or 'damp' in params.yaml, use a GGN structure, or fall back to retraining.")
        repair = options.repair
        if repair == "clip":
            eigenvalues, delta = np.maximum(eigenvalues, floor), floor
        else:
            delta = floor - min_eig
            eigenvalues = eigenvalues + delta
        precision = (vectors * eigenvalues) @ vectors.T
    covariance = (vectors / eigenvalues) @ vectors.T
    if posterior.covariance_form:
        precision = None  # stay in covariance form
    return precision, covariance, covariance @ rhs, min_eig, n_neg, repair, delta, "dense"


def _woodbury_downdate(posterior, u, rhs, in_place: bool):
    """(Λ − UUᵀ)⁻¹ = Σ + ΣU (I − UᵀΣU)⁻¹ UᵀΣ with U = J_fᵀ/σ; None if not positive definite.

    In place, at large P the downdate is bound by passes over Σ: ΣU and Σ·rhs
    come from one product, and Σ_r·rhs = Σ·rhs + Vᵀ(V·rhs) with V = L⁻¹(ΣU)ᵀ
    needs no pass over the updated Σ_r. A posterior in covariance form has no Λ to update.
    Only the P × P products use all BLAS threads (the caller runs on one: threads.py).
    """
    p = posterior.n_covered
    with blas_for(p):
        if in_place:
            products = dense.symmetric_times(posterior.covariance, np.column_stack([u, rhs]))  # O(|D_f|·P²)
            sigma_u, sigma_rhs = products[:, :-1], products[:, -1]
        else:
            sigma_u = posterior.covariance @ u
    capacitance = np.eye(u.shape[1]) - u.T @ sigma_u         # |D_f| × |D_f|: the PD check
    try:
        chol = scipy.linalg.cholesky(capacitance, lower=True)
    except np.linalg.LinAlgError:
        return None
    half = scipy.linalg.solve_triangular(chol, sigma_u.T, lower=True)
    precision = None
    if in_place:
        with blas_for(p):
            covariance = dense.add_outer(posterior.covariance, half.T, 1.0)
            if not posterior.covariance_form:
                precision = dense.add_outer(posterior.precision, u, -1.0)
        return precision, covariance, sigma_rhs + half.T @ (half @ rhs)
    with blas_for(p):  # the products' buffers become the results: one new P × P matrix each, not two
        covariance = half.T @ half
        covariance += posterior.covariance
        if not posterior.covariance_form:
            precision = u @ u.T
            np.subtract(posterior.precision, precision, out=precision)
        return precision, covariance, covariance @ rhs


def _repair_diagonal(precision, n_neg, floor, options):
    if options.repair == "refuse":
        raise NotPositiveDefinite(f"after forgetting, {n_neg} diagonal precisions are ≤ 0; choose repair "
                                  f"'clip' or 'damp', or fall back to retraining.")
    if options.repair == "clip":
        return np.maximum(precision, floor), "clip", floor
    delta = floor - float(precision.min())
    return precision + delta, "damp", delta


def _trusted_step_length(posterior: GaussianPosterior, x, y, step, curvature: _Curvature, tolerance: float
                         ) -> float:
    """Longest t in {1, ½, ¼, …} where the quadratic model of the forgotten NLL is still accurate.

    Compares the actual change of Σ_f ℓ_i along the step with the change the
    second-order model (g_f, H_f at θ*) predicts; needs only the forgotten data.
    """
    idx, theta_star, gradient = posterior.index, posterior.linearisation_point, curvature.gradient
    base = _forgotten_nll(posterior, x, y, posterior.mean)
    offset = (posterior.mean - theta_star)[idx]
    t = 1.0
    for _ in range(30):
        move = np.zeros_like(posterior.mean)
        move[idx] = t * step
        actual = _forgotten_nll(posterior, x, y, posterior.mean + move) - base
        d_new, d_old = offset + t * step, offset
        predicted = (gradient @ (d_new - d_old)
                     + 0.5 * (d_new @ curvature.apply(d_new) - d_old @ curvature.apply(d_old)))
        if abs(predicted) < 1e-12 or abs(actual / predicted - 1.0) <= tolerance:
            return t
        t *= 0.5
    return 0.0


def _forgotten_nll(posterior: GaussianPosterior, x, y, theta) -> float:
    f = network_outputs(posterior.model.spec, theta, x)
    return float(0.5 * np.sum((y - f) ** 2) / posterior.model.noise_std ** 2)
