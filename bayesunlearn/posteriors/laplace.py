"""Laplace posteriors at the MAP, for every Laplace kind, and marginal-likelihood tuning.

Λ = (data-term curvature at θ*) + αI, restricted to the kind: full GGN, full
exact Hessian, diagonal GGN, last layer (closed form: Bayesian linear
regression on the last hidden layer's features, other weights fixed at θ*),
KFAC (per-layer Kronecker factors, posteriors/kronecker.py), EK-FAC (KFAC's eigenbases with the
eigenvalues refitted, posteriors/ekfac.py), or a subnetwork
(dense over the weights of largest variance, diagonal elsewhere: posteriors/subnetwork.py).
`data_curvature` is the one place that turns a kind into a curvature
computation; the curvature code itself knows no kinds.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize

from bayesunlearn.errors import ConfigError, NotPositiveDefinite
from bayesunlearn.model import curvature
from bayesunlearn.model.curvature import EigenbasisSums, KroneckerFactors
from bayesunlearn.model.network import outputs
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.numerics import dense
from bayesunlearn.kinds import KINDS, LAPLACE_KINDS, Kind
from bayesunlearn.posteriors.ekfac import EigenKronecker
from bayesunlearn.posteriors.kronecker import Kronecker
from bayesunlearn.posteriors.matrices import CovarianceOnly, Dense, Diagonal, GaussianMatrix
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.posteriors.subnetwork import Subnetwork, SubnetworkCurvature, choose

SUBNETWORK_SIZE = 64  # weights a subnetwork posterior covers densely, unless `laplace.subnetwork_size` says


# The data term's curvature in a kind's structure (dense matrix, diagonal, KFAC's factors, EK-FAC's sums)
# and its NLL gradient: a sum over records (posteriors/sharded.py adds it up over shards of the table).
DataTerm = tuple[np.ndarray | KroneckerFactors | EigenbasisSums | SubnetworkCurvature, np.ndarray | None]
Bases = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]  # EK-FAC's (Q_A per layer, Q_G per layer)


def data_curvature(kind: Kind, model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                   indices: np.ndarray | None = None, bases: Bases | None = None, gradient: bool = True) -> DataTerm:
    """The data term's curvature in the kind's structure and its NLL gradient; for a subnetwork, over the
    weights `indices` (without them, the diagonal GGN its weights are chosen by: subnetwork.choose); for
    EK-FAC, the sums at `bases` (without them, the KFAC factors its bases are chosen by: curvature.eigenbases).
    Without `gradient`, KFAC and EK-FAC sum no NLL gradient (None; a fit alone needs none, and there it costs
    a backward pass and a product per layer)."""
    if kind.storage == "subnetwork":
        diagonal, gradient = curvature.diagonal_ggn(model, theta, x, y)
        if indices is None:
            return diagonal, gradient
        return SubnetworkCurvature(indices, diagonal, block=curvature.selected_ggn(model, theta, x, indices)), gradient
    if kind.curvature == "hessian":
        from bayesunlearn.model.autodiff import nll_hessian  # second derivatives: TensorFlow

        return nll_hessian(model, theta, x, y)
    if kind.storage == "ekfac" and bases is not None:
        sums = curvature.eigenbasis_sums(model, theta, x, y, *bases, gradient=gradient)
        return sums, sums.gradient
    if kind.storage in ("kronecker", "ekfac"):
        factors = curvature.kronecker_factors(model, theta, x, y, gradient)
        return factors, factors.gradient
    if kind.storage == "dense" and kind.covers == "all":
        return curvature.data_curvature(model, theta, x, y)
    return curvature.restricted_ggn(model, theta, x, y, kind.index(model.spec), diagonal=kind.storage == "diagonal")


def fit_laplace(model: RegressionModel, theta_map: np.ndarray, x: np.ndarray, y: np.ndarray,
                kind: str = "full_ggn", data: DataTerm | None = None,
                subnetwork_size: int = SUBNETWORK_SIZE) -> GaussianPosterior:
    """The Laplace posterior of a kind at θ*; `data` is the records' data term when it is already summed
    (over shards), else it is computed from x and y. A subnetwork covers `subnetwork_size` weights."""
    if kind not in LAPLACE_KINDS:
        raise ConfigError(f"Laplace kind {kind!r} is not one of {list(LAPLACE_KINDS)}.")
    spec = KINDS[kind]
    if data is None and spec.storage == "subnetwork":  # the diagonal chooses the weights and covers the rest
        diagonal, gradient = curvature.diagonal_ggn(model, theta_map, x, y)
        indices = choose(diagonal, model.prior_precision, subnetwork_size)
        block = curvature.selected_ggn(model, theta_map, x, indices)
        data = SubnetworkCurvature(indices, diagonal, block=block), gradient
    if data is None and spec.storage == "ekfac":  # KFAC's factors choose the bases the sums are taken in
        data = data_curvature(spec, model, theta_map, x, y, bases=curvature.kfac_eigenbases(model, theta_map, x, y),
                              gradient=False)
    precision, _ = data if data is not None else data_curvature(spec, model, theta_map, x, y, gradient=False)
    if spec.storage == "ekfac" and not isinstance(precision, EigenbasisSums):
        raise ValueError("an EK-FAC fit needs the sums at its bases, not the first pass's KFAC factors")
    if isinstance(precision, EigenbasisSums):
        return GaussianPosterior(model, theta_map.copy(), EigenKronecker.of(precision, model.prior_precision),
                                 theta_map.copy(), kind)
    if isinstance(precision, KroneckerFactors):
        return GaussianPosterior(model, theta_map.copy(), Kronecker.of(precision, model.prior_precision),
                                 theta_map.copy(), kind)
    if spec.storage == "subnetwork" and not isinstance(precision, SubnetworkCurvature):
        raise ValueError("a subnetwork fit needs the block over its chosen weights, not the first pass's diagonal")
    if isinstance(precision, SubnetworkCurvature):
        return GaussianPosterior(model, theta_map.copy(), _subnetwork(precision, model.prior_precision),
                                 theta_map.copy(), kind)
    _add_to_diagonal(precision, model.prior_precision)  # in place: no second P × P matrix
    diagnostics = {}
    if KINDS[kind].curvature == "hessian":  # the exact Hessian: may be indefinite at a saddle
        precision, diagnostics = _clip_indefinite_hessian(precision, model.prior_precision)
    return GaussianPosterior(model, theta_map.copy(), matrix_of(KINDS[kind], precision), theta_map.copy(), kind,
                             diagnostics)


def _subnetwork(data: SubnetworkCurvature, prior_precision: float) -> Subnetwork:
    block = data.block.copy()
    _add_to_diagonal(block, prior_precision)
    rest = np.delete(data.diagonal, data.indices) + prior_precision
    return Subnetwork(data.indices, matrix_of(KINDS["subnetwork"], block), Diagonal(rest))


def _clip_indefinite_hessian(precision: np.ndarray, floor: float) -> tuple[np.ndarray, dict]:
    """At a saddle (optimisers stop there) the exact Hessian is indefinite and defines no Gaussian:
    floor its eigenvalues at the prior precision, and record that it happened."""
    eigenvalues, vectors = scipy.linalg.eigh(precision)
    n_negative = int(np.sum(eigenvalues <= 0))
    diagnostics = {"hessian_min_eig": float(eigenvalues[0]), "hessian_negative_eigs": n_negative}
    if n_negative:
        eigenvalues = np.maximum(eigenvalues, floor)
        precision = (vectors * eigenvalues) @ vectors.T
    return precision, diagnostics


# Above this many covered parameters a dense posterior of a kind with `covariance_form` keeps Σ only:
# LAPACK's Cholesky inverse overwrites Λ with Σ, and Λ is not kept (half the memory; see matrices.py).
# Below, both are kept, Σ from the solve the committed artifacts were made with.
COVARIANCE_FORM_MIN_PARAMS = 2000


def matrix_of(kind: Kind, precision: np.ndarray) -> GaussianMatrix:
    """The matrix type for a precision: a diagonal; Σ alone for a large kind that allows it (Σ written into
    `precision`'s memory); else Λ with the covariance that Woodbury downdates need."""
    if precision.ndim == 1:
        return Diagonal(precision)
    if len(precision) > COVARIANCE_FORM_MIN_PARAMS and kind.covariance_form:
        return CovarianceOnly(dense.inverse_spd(precision, overwrite=True))
    invert = dense.inverse_spd if len(precision) > COVARIANCE_FORM_MIN_PARAMS else dense.inverse_spd_small
    try:
        covariance = invert(precision)
    except (np.linalg.LinAlgError, NotPositiveDefinite):
        covariance = None  # an indefinite exact Hessian: no covariance, reported downstream
    return Dense(precision, covariance)


def _add_to_diagonal(matrix: np.ndarray, value: float) -> None:
    """matrix += value·I in place (a vector holds a diagonal)."""
    if matrix.ndim == 1:
        matrix += value
    else:
        matrix[np.diag_indices_from(matrix)] += value


def log_marginal_likelihood(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray) -> float:
    """Laplace evidence log p(D) ≈ log p(D | θ*) + log p(θ*) + (k/2) log 2π − ½ log det Λ."""
    m = posterior.model
    f = outputs(m.spec, posterior.linearisation_point, x)
    data_eigs = posterior.precision_eigenvalues() - m.prior_precision
    theta = posterior.linearisation_point[posterior.index]
    return _evidence(_log_likelihood(m, f, y)(m.noise_std), theta, data_eigs, m.prior_precision, 1.0)


def optimize_hyperparameters(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray) -> GaussianPosterior:
    """Choose prior precision α and noise σ (σ only for a Gaussian likelihood) by maximising the Laplace
    evidence at fixed θ*.

    The data curvature scales as 1/σ², so the stored precision is rescaled
    consistently: Λ' = (Λ − αI)·σ²/σ'² + α'I. θ* itself is kept (post-hoc tuning).
    """
    m = posterior.model
    data_eigs = posterior.precision_eigenvalues() - m.prior_precision
    if np.any(data_eigs < -1e-9 * max(1.0, np.abs(data_eigs).max())):
        raise ConfigError(f"marginal-likelihood tuning needs positive semi-definite curvature; the "
                          f"{posterior.kind} curvature has negative eigenvalues. Use a GGN structure.")
    f = outputs(m.spec, posterior.linearisation_point, x)
    theta, log_likelihood = posterior.linearisation_point[posterior.index], _log_likelihood(m, f, y)
    moving = 2 if m.gaussian else 1  # a Bernoulli likelihood has no σ: only α moves

    def unpack(log_params: np.ndarray) -> tuple[float, float]:
        values = np.exp(log_params)
        return float(values[0]), float(values[1]) if moving == 2 else m.noise_std

    def negative(log_params: np.ndarray) -> float:
        alpha, sigma = unpack(log_params)
        return -_evidence(log_likelihood(sigma), theta, data_eigs, alpha, (m.noise_std / sigma) ** 2)

    best = scipy.optimize.minimize(negative, np.log([m.prior_precision, m.noise_std][:moving]), method="Nelder-Mead",
                                   options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 2000})
    alpha, sigma = unpack(best.x)
    tuned = RegressionModel(m.spec, alpha, sigma, m.likelihood)
    scale = (m.noise_std / sigma) ** 2
    if posterior.spec.storage in ("kronecker", "ekfac"):  # they hold the data term apart from the prior
        return posterior.with_updates(model=tuned, matrix=posterior.matrix.retuned(scale, alpha))
    if posterior.spec.storage == "subnetwork":  # block and rest alike: no P × P matrix
        sub = posterior.matrix
        identity = np.eye(sub.block.size)
        block = (sub.block.precision() - m.prior_precision * identity) * scale + alpha * identity
        rest = (sub.rest.values - m.prior_precision) * scale + alpha
        return posterior.with_updates(model=tuned, matrix=Subnetwork(sub.indices, matrix_of(posterior.spec, block),
                                                                     Diagonal(rest)))
    precision = posterior.precision if posterior.precision is not None else posterior.dense_precision()
    data = precision - m.prior_precision * _identity_like(precision)
    precision = data * (m.noise_std / sigma) ** 2 + alpha * _identity_like(precision)
    return posterior.with_updates(model=tuned, matrix=matrix_of(posterior.spec, precision))


def _log_likelihood(model: RegressionModel, f: np.ndarray, y: np.ndarray):
    """log p(y | f) summed over the records, as a function of the noise σ (a Bernoulli likelihood has none)."""
    if not model.gaussian:
        value = -model.loss(f, y)
        return lambda sigma: value
    rss, n = np.sum((y - f) ** 2), len(y)
    return lambda sigma: -0.5 * rss / sigma**2 - n * np.log(sigma) - 0.5 * n * np.log(2 * np.pi)


def _evidence(log_lik: float, theta: np.ndarray, data_eigs: np.ndarray, alpha: float, curvature_scale: float
              ) -> float:
    """log p(D | θ*) + log p(θ*) + (k/2) log 2π − ½ log det Λ, with Λ's data eigenvalues scaled by
    `curvature_scale` (σ_fitted²/σ²: the GGN of a Gaussian likelihood is proportional to 1/σ²)."""
    log_prior = -0.5 * alpha * theta @ theta + 0.5 * len(theta) * np.log(alpha / (2 * np.pi))
    eigs = data_eigs * curvature_scale + alpha
    if np.any(eigs <= 0):
        raise NotPositiveDefinite("the Laplace precision is not positive definite; its evidence is undefined")
    return float(log_lik + log_prior + 0.5 * len(theta) * np.log(2 * np.pi) - 0.5 * np.sum(np.log(eigs)))


def _identity_like(matrix: np.ndarray) -> np.ndarray:
    return np.ones(len(matrix)) if matrix.ndim == 1 else np.eye(len(matrix))


