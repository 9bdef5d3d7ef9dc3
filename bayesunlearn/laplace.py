"""Laplace posteriors at the MAP, for every curvature structure, and marginal-likelihood tuning.

Λ = (data-term curvature at θ*) + αI, restricted to the structure: full GGN,
full exact Hessian, diagonal GGN, or last layer (closed form: Bayesian linear
regression on the last hidden layer's features, other weights fixed at θ*).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize

from . import dense
from .curvature import outputs_and_jacobians, structured_curvature
from .errors import ConfigError, NotPositiveDefinite
from .kinds import LAPLACE_KINDS
from .model import RegressionModel
from .posterior import GaussianPosterior



def fit_laplace(model: RegressionModel, theta_map: np.ndarray, x: np.ndarray, y: np.ndarray,
                structure: str = "full_ggn") -> GaussianPosterior:
    if structure not in LAPLACE_KINDS:
        raise ConfigError(f"Laplace kind {structure!r} is not one of {list(LAPLACE_KINDS)}.")
    shell = GaussianPosterior(model, theta_map.copy(), np.zeros(0), theta_map.copy(), structure)
    precision, _ = structured_curvature(model, theta_map, x, y, structure, shell.index)
    _add_to_diagonal(precision, model.prior_precision)  # in place: no second P × P matrix
    if structure == "full_hessian":
        precision, shell = _clip_indefinite_hessian(precision, shell)
    return with_precision(shell, precision)


def _clip_indefinite_hessian(precision: np.ndarray, shell: GaussianPosterior):
    """At a saddle (optimisers stop there) the exact Hessian is indefinite and defines no Gaussian:
    floor its eigenvalues at the prior precision, and record that it happened."""
    eigenvalues, vectors = scipy.linalg.eigh(precision)
    n_negative = int(np.sum(eigenvalues <= 0))
    diagnostics = {"hessian_min_eig": float(eigenvalues[0]), "hessian_negative_eigs": n_negative}
    if n_negative:
        eigenvalues = np.maximum(eigenvalues, shell.model.prior_precision)
        precision = (vectors * eigenvalues) @ vectors.T
    return precision, shell.with_updates(diagnostics=diagnostics)


# Above this many covered parameters a dense GGN posterior is kept in covariance form: LAPACK's
# Cholesky inverse overwrites Λ with Σ, and Λ is not kept (half the memory; see posterior.py).
# Below, both are kept, Σ from the solve the committed artifacts were made with.
COVARIANCE_FORM_MIN_PARAMS = 2000
COVARIANCE_FORM_STRUCTURES = ("full_ggn",)  # PD by construction: an in-place inverse cannot fail halfway


def with_precision(posterior: GaussianPosterior, precision: np.ndarray) -> GaussianPosterior:
    """Set the precision and, for dense structures, the covariance that Woodbury downdates need.

    A large full GGN comes back in covariance form, its Σ in `precision`'s memory.
    """
    if precision.ndim == 1:
        return posterior.with_updates(precision=precision, covariance=None)
    if len(precision) > COVARIANCE_FORM_MIN_PARAMS and posterior.structure in COVARIANCE_FORM_STRUCTURES:
        return posterior.with_updates(precision=None, covariance=dense.inverse_spd(precision, overwrite=True))
    invert = dense.inverse_spd if len(precision) > COVARIANCE_FORM_MIN_PARAMS else dense.inverse_spd_small
    try:
        covariance = invert(precision)
    except (np.linalg.LinAlgError, NotPositiveDefinite):
        covariance = None  # an indefinite exact Hessian: no covariance, reported downstream
    return posterior.with_updates(precision=precision, covariance=covariance)


def _add_to_diagonal(matrix: np.ndarray, value: float) -> None:
    """matrix += value·I in place (a vector holds a diagonal)."""
    if matrix.ndim == 1:
        matrix += value
    else:
        matrix[np.diag_indices_from(matrix)] += value


def log_marginal_likelihood(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray) -> float:
    """Laplace evidence log p(D) ≈ log p(D | θ*) + log p(θ*) + (k/2) log 2π − ½ log det Λ."""
    m = posterior.model
    f, _ = outputs_and_jacobians(m.spec, posterior.linearisation_point, x)
    return _evidence(np.sum((y - f) ** 2), len(y), posterior.linearisation_point[posterior.index],
                     posterior.precision_eigenvalues() - m.prior_precision, m.prior_precision, m.noise_std, m.noise_std)


def optimize_hyperparameters(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray) -> GaussianPosterior:
    """Choose prior precision α and noise σ by maximising the Laplace evidence at fixed θ*.

    The data curvature scales as 1/σ², so the stored precision is rescaled
    consistently: Λ' = (Λ − αI)·σ²/σ'² + α'I. θ* itself is kept (post-hoc tuning).
    """
    m = posterior.model
    data_eigs = posterior.precision_eigenvalues() - m.prior_precision
    if np.any(data_eigs < -1e-9 * max(1.0, np.abs(data_eigs).max())):
        raise ConfigError(f"marginal-likelihood tuning needs positive semi-definite curvature; the "
                          f"{posterior.structure} curvature has negative eigenvalues. Use a GGN structure.")
    f, _ = outputs_and_jacobians(m.spec, posterior.linearisation_point, x)
    rss, theta = np.sum((y - f) ** 2), posterior.linearisation_point[posterior.index]

    def negative(log_params: np.ndarray) -> float:
        alpha, sigma = np.exp(log_params)
        return -_evidence(rss, len(y), theta, data_eigs, alpha, m.noise_std, sigma)

    best = scipy.optimize.minimize(negative, np.log([m.prior_precision, m.noise_std]), method="Nelder-Mead",
                                   options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 2000})
    alpha, sigma = (float(v) for v in np.exp(best.x))
    tuned = RegressionModel(m.spec, alpha, sigma)
    precision = posterior.dense_precision() if posterior.covariance_form else posterior.precision
    data = precision - m.prior_precision * _identity_like(precision)
    precision = data * (m.noise_std / sigma) ** 2 + alpha * _identity_like(precision)
    return with_precision(posterior.with_updates(model=tuned), precision)


def _evidence(rss: float, n: int, theta: np.ndarray, data_eigs: np.ndarray, alpha: float,
              sigma_fitted: float, sigma: float) -> float:
    log_lik = -0.5 * rss / sigma**2 - n * np.log(sigma) - 0.5 * n * np.log(2 * np.pi)
    log_prior = -0.5 * alpha * theta @ theta + 0.5 * len(theta) * np.log(alpha / (2 * np.pi))
    eigs = data_eigs * (sigma_fitted / sigma) ** 2 + alpha
    if np.any(eigs <= 0):
        raise NotPositiveDefinite("the Laplace precision is not positive definite; its evidence is undefined")
    return float(log_lik + log_prior + 0.5 * len(theta) * np.log(2 * np.pi) - 0.5 * np.sum(np.log(eigs)))


def _identity_like(matrix: np.ndarray) -> np.ndarray:
    return np.ones(len(matrix)) if matrix.ndim == 1 else np.eye(len(matrix))


