"""Laplace unlearning: divide the Gaussian posterior by the forgotten records' likelihood.

With H_f and g_f the GGN and NLL gradient of the forgotten records at θ*,
    Λ_r = Λ − H_f,     Λ_r μ_r = Λ μ − H_f θ* + g_f.
This is Gaussian division by the linearised likelihood of D_f, so it is exact for
the linearised network (DESIGN.md oracle 3) and for Bayesian linear regression
(oracle 1), and repeated application composes (oracle 4). When μ = θ* it is the
Newton step μ_r = θ* + Λ_r⁻¹ g_f on the retained objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .curvature import data_curvature
from .laplace import LaplacePosterior, NotPositiveDefinite


@dataclass(frozen=True)
class UnlearningReport:
    n_forgotten: int
    min_eig_precision: float
    n_negative_eigs: int
    step_norm: float  # ‖μ_r − μ‖: how far the forgotten data had pulled the mean

    def to_dict(self) -> dict:
        return {"n_forgotten": self.n_forgotten, "min_eig_precision": self.min_eig_precision,
                "n_negative_eigs": self.n_negative_eigs, "step_norm": self.step_norm}


def forget(posterior: LaplacePosterior, x_forget: np.ndarray, y_forget: np.ndarray
           ) -> tuple[LaplacePosterior, UnlearningReport]:
    """Remove the records (x_forget, y_forget) from a full-GGN Laplace posterior."""
    return _combine(posterior, x_forget, y_forget, sign=-1.0)


def relearn(posterior: LaplacePosterior, x_add: np.ndarray, y_add: np.ndarray
            ) -> tuple[LaplacePosterior, UnlearningReport]:
    """The inverse of `forget`: multiply the linearised likelihood of (x_add, y_add) back in."""
    return _combine(posterior, x_add, y_add, sign=+1.0)


def _combine(posterior: LaplacePosterior, x: np.ndarray, y: np.ndarray, sign: float
             ) -> tuple[LaplacePosterior, UnlearningReport]:
    theta_star = posterior.linearisation_point
    # GGN and NLL gradient of these records at θ*; divide (sign −1) or multiply (+1) them in.
    hessian, gradient = data_curvature(posterior.model, theta_star, x, y)
    precision = posterior.precision + sign * hessian
    precision = 0.5 * (precision + precision.T)  # keep exact symmetry against round-off
    eigenvalues = scipy.linalg.eigvalsh(precision)
    n_negative = int(np.sum(eigenvalues <= 0))
    if n_negative:
        raise NotPositiveDefinite(
            f"after forgetting {len(x)} records the precision has {n_negative} non-positive "
            f"eigenvalues (smallest {eigenvalues[0]:.3g}): the curvature removed was not part of the stored "
            f"precision (different θ*, prior or noise). Refit the Laplace posterior at the current MAP.")
    rhs = -sign * (hessian @ (posterior.mean - theta_star) + gradient)
    step = scipy.linalg.cho_solve(scipy.linalg.cho_factor(precision, lower=True), rhs)
    unlearned = posterior.with_updates(mean=posterior.mean + step, precision=precision)
    report = UnlearningReport(len(x), float(eigenvalues[0]), n_negative, float(np.linalg.norm(step)))
    return unlearned, report
