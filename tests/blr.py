"""Closed-form Bayesian linear regression: the exact oracle for every Gaussian operator.

Prior θ ~ N(0, α⁻¹I), likelihood y ~ N(Φθ, σ²I):
    Λ = αI + ΦᵀΦ/σ²,   Λm = Φᵀy/σ²,
and the evidence log p(y) = log N(y; 0, σ²I + ΦΦᵀ/α).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def posterior(phi: np.ndarray, y: np.ndarray, alpha: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and precision of p(θ | y)."""
    precision = alpha * np.eye(phi.shape[1]) + phi.T @ phi / sigma**2
    mean = scipy.linalg.cho_solve(scipy.linalg.cho_factor(precision), phi.T @ y / sigma**2)
    return mean, precision


def log_evidence(phi: np.ndarray, y: np.ndarray, alpha: float, sigma: float) -> float:
    """log p(y | Φ) with θ integrated out."""
    cov = sigma**2 * np.eye(len(y)) + phi @ phi.T / alpha
    chol = scipy.linalg.cholesky(cov, lower=True)
    white = scipy.linalg.solve_triangular(chol, y, lower=True)
    return float(-0.5 * (white @ white) - np.sum(np.log(np.diag(chol))) - 0.5 * len(y) * np.log(2 * np.pi))
