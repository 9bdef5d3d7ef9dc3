"""A Hessian-free Newton step for the mean (Martens, 2010): conjugate gradients on GGN-vector products.

The division (divide.py) moves the mean by the step δ that solves Λ_new δ = b, with
b = −sign·(H(μ − θ*) + g) for the records' curvature H and NLL gradient g at θ* (sign −1: forget), and
Λ_new, H in the posterior's structure. With `mean_update: cg` the same equation is solved with the
exact GGN instead:
    Λ_new v = Σ_{i ∈ D_new} J_iᵀ W_i J_i v + α v,    H v = Σ_{i ∈ records} J_iᵀ W_i J_i v,
D_new the records the posterior holds after the update (the retained ones, after forgetting). That is
the full GGN's Newton step, so it composes like the full-GGN division (forgetting A then B gives the
step of forgetting A ∪ B, to CG's tolerance) whatever the structure of the precision, and no P × P
matrix and no Jacobian row of all records is ever held: each product is a forward pass carrying a
tangent and a backward pass (network.gauss_newton_product), in row batches.

The precision stays the structure's: its Λ_new (the division's) preconditions CG, M⁻¹ = Λ_new⁻¹
through the structure's `solve` (`cg_preconditioner: structure`), or nothing does (`none`). Which is
faster depends on how the spectrum of M⁻¹Λ_new clusters: a structure spreads the data's curvature
over whole layers, and in the cases measured (docs/design.md) the preconditioned CG took more
iterations than the plain one, not fewer. CG stops when the residual ‖b − Λ_new δ‖ (updated
recursively) is at most `cg_tolerance`·‖b‖, or after `cg_iterations` iterations, and takes the last
iterate either way. The cost, stated as it is: each iteration is one pass over D_new (about one
gradient pass of the retained objective); H(μ − θ*) is one pass over the records themselves, and is
skipped at μ = θ*.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bayesunlearn.model.curvature import row_batches
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.network import gauss_newton_product
from bayesunlearn.posteriors.matrices import GaussianMatrix
from bayesunlearn.posteriors.posterior import GaussianPosterior

Operator = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Solution:
    """CG's step and what it cost."""

    step: np.ndarray
    iterations: int
    residual: float   # ‖b − Λδ‖ / ‖b‖ at the step taken (recursive residual; 0 when b = 0)
    passes: int       # passes over the records Λ is made of: one per iteration
    converged: bool   # the residual reached the tolerance within the iteration budget

    def report(self) -> dict:
        return {"cg_iterations": self.iterations, "cg_residual": self.residual, "cg_passes": self.passes,
                "cg_converged": self.converged}


def ggn_operator(model: RegressionModel, theta: np.ndarray, x: np.ndarray, index: slice, shift: float) -> Operator:
    """v ↦ (Σ_i J_iᵀ W_i J_i + shift·I) v over the parameters in `index` (the others held at 0), summed over
    row batches of x: one pass over the records per call."""
    spec = model.spec
    width = sum(a + b + 1 for a, b in spec.shapes)  # floats per output row a pass holds
    batches = row_batches(len(x), width * spec.outputs)

    def apply(v: np.ndarray) -> np.ndarray:
        full = np.zeros(spec.n_params)
        full[index] = v
        total = np.zeros(spec.n_params)
        for rows in batches:
            total += gauss_newton_product(spec, theta, x[rows], full, model.output_hessian_times)
        return total[index] + shift * v

    return apply


def conjugate_gradients(apply: Operator, rhs: np.ndarray, precondition: Operator, tolerance: float,
                        iterations: int) -> Solution:
    """Preconditioned CG for A δ = rhs from δ = 0 (A and the preconditioner symmetric positive definite)."""
    step, norm = np.zeros_like(rhs), float(np.linalg.norm(rhs))
    if norm == 0.0:
        return Solution(step, 0, 0.0, 0, True)
    residual = rhs.copy()
    preconditioned = precondition(residual)
    direction, product = preconditioned.copy(), float(residual @ preconditioned)
    relative = 1.0
    for iteration in range(1, iterations + 1):
        image = apply(direction)
        length = product / float(direction @ image)
        step += length * direction
        residual -= length * image
        relative = float(np.linalg.norm(residual)) / norm
        if relative <= tolerance:
            return Solution(step, iteration, relative, iteration, True)
        preconditioned = precondition(residual)
        product, previous = float(residual @ preconditioned), product
        direction = preconditioned + (product / previous) * direction
    return Solution(step, iterations, relative, iterations, False)


def newton_step(posterior: GaussianPosterior, x: np.ndarray, gradient: np.ndarray, sign: float,
                held: np.ndarray, preconditioner: GaussianMatrix | None, tolerance: float, iterations: int
                ) -> Solution:
    """The full GGN's step for removing (sign −1) or adding (+1) the records x, whose NLL gradient at θ* over
    the covered parameters is `gradient`, from a posterior that holds the records with inputs `held`
    afterwards (the GGN needs no targets); preconditioned by a structure's Λ_new, or not at all (None)."""
    model, theta, index = posterior.model, posterior.linearisation_point, posterior.index
    offset = (posterior.mean - theta)[index]
    moved = ggn_operator(model, theta, x, index, 0.0)(offset) if np.any(offset) else np.zeros_like(offset)
    rhs = -sign * (moved + gradient)
    apply = ggn_operator(model, theta, held, index, model.prior_precision)
    precondition = preconditioner.solve if preconditioner is not None else (lambda v: v)
    return conjugate_gradients(apply, rhs, precondition, tolerance, iterations)
