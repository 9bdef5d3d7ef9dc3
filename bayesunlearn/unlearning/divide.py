"""Unlearning by Gaussian division: remove the forgotten records' linearised likelihood.

With H_f and g_f the curvature and NLL gradient of the forgotten records at θ*
(in the posterior's own structure),
    Λ_r = Λ − H_f,     Λ_r μ_r = Λ μ − H_f θ* + g_f.
This is exact for the linearised network (docs/design.md, oracle 3) and for Bayesian
linear regression (oracle 1), and repeated application composes (oracle 4).
When μ = θ* it is the Newton step μ_r = θ* + Λ_r⁻¹ g_f on the retained objective.

What can go wrong, and what the options do about it:
- Λ_r not positive definite (exact Hessian, large or clustered deletions):
  `repair` = "clip" floors the eigenvalues, "damp" adds δI, "refuse" raises.
- The Newton step overshoots when the forgotten data moved the mode a lot:
  `mean_update` = "damped" shortens it to where a quadratic model of the
  forgotten records' NLL still predicts their actual NLL (no retained data
  needed); "none" keeps the mean and only updates the precision.
- The step falls short when the retained optimum lies beyond the quadratic
  model at θ*: `refine` = k continues the same iteration on the retained
  records (`refine`, below); with `refine_tolerance` it runs to a mode of the retained objective and
  the Laplace posterior is refitted there (`refine_to_mode`).
- The structure's step is only as good as its Λ_r: `mean_update` = "cg" takes the full GGN's
  step instead, by conjugate gradients on GGN-vector products over the retained records,
  preconditioned by the structure's Λ_r (newton_cg.py); the precision stays the structure's.
- For the GGN, H_f = J_fᵀ W J_f (W = I/σ², or diag p(1 − p)) has rank |D_f|: when |D_f| < P and the
  covariance is stored, the downdate uses Woodbury in O(|D_f|·P²) and checks
  positive definiteness on the |D_f| × |D_f| capacitance matrix. With
  `in_place=True` it overwrites the input's Σ (and Λ, unless the posterior is
  in covariance form) with rank-|D_f| GEMM updates: no new P × P matrices.
The algebra of each storage (diagonal, dense, covariance-only, Kronecker, EK-FAC) is the matrix
type's (posteriors/matrices.py); this module computes H_f and g_f and moves the mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from bayesunlearn.errors import ConfigError
from bayesunlearn.io.sections import DivideOptions
from bayesunlearn.model.curvature import (diagonal_ggn, eigenbasis_sums, kronecker_factors, selected_factor,
                                          selected_jacobian)
from bayesunlearn.model.likelihood import objective
from bayesunlearn.model.network import outputs, outputs_and_jacobians
from bayesunlearn.numerics.threads import one_blas_thread
from bayesunlearn.posteriors.ekfac import EigenKronecker
from bayesunlearn.posteriors.kronecker import Kronecker
from bayesunlearn.posteriors.laplace import data_curvature, fit_laplace
from bayesunlearn.posteriors.matrices import Curvature
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.posteriors.subnetwork import SubnetworkCurvature
from bayesunlearn.unlearning import newton_cg


@dataclass(frozen=True)
class UnlearningReport:
    n_forgotten: int
    min_eig_precision: float      # of Λ − H_f before any repair (NaN when too large to compute)
    n_negative_eigs: int          # eigenvalues ≤ 0 before repair (−1 when not computed)
    repair: str                   # "none" when Λ_r was positive definite, else the repair applied
    damping: float                # δ added by "damp", or the floor used by "clip"
    step_length: float            # fraction of the Newton step taken
    step_norm: float              # ‖μ_r − μ‖
    solver: str                   # "dense", "woodbury", "diagonal", "kronecker" or "ekfac"
    cg: newton_cg.Solution | None = None  # mean_update "cg": its iterations, residual and passes

    def to_dict(self) -> dict:
        """The report as flat numbers; the cg_ entries only for a CG step (other reports keep their keys)."""
        out = {name: value for name, value in asdict(self).items() if name != "cg"}
        return out if self.cg is None else {**out, **self.cg.report()}


DEFAULT_OPTIONS = DivideOptions()


Records = tuple[np.ndarray, np.ndarray]


def forget(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray,
           options: DivideOptions = DEFAULT_OPTIONS, in_place: bool = False, retained: Records | None = None
           ) -> tuple[GaussianPosterior, UnlearningReport]:
    """Remove the records (x, y) from `posterior`.

    in_place: the Woodbury downdate may overwrite `posterior`'s matrices (do not
    use `posterior` afterwards); other paths still copy.
    retained: the records the posterior keeps, read only by mean_update "cg".
    """
    with one_blas_thread():  # the P × P products inside ask for all threads (numerics/threads.py)
        return _combine(posterior, x, y, -1.0, options, in_place, retained)


def relearn(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray,
            options: DivideOptions = DEFAULT_OPTIONS, held: Records | None = None
            ) -> tuple[GaussianPosterior, UnlearningReport]:
    """The inverse of `forget`: multiply the linearised likelihood of (x, y) back in. held: every record the
    posterior holds afterwards, (x, y) among them, read only by mean_update "cg"."""
    with one_blas_thread():
        return _combine(posterior, x, y, +1.0, options, held=held)


def records_curvature(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray, sign: float = -1.0
                      ) -> Curvature:
    """H_f and g_f of the records at θ*, in the posterior's structure. A full GGN is kept as its
    rank-|D_f| factor J_fᵀ/σ or J_fᵀ√w (one Jacobian pass; the P × P matrix is formed only if needed). For KFAC,
    H_f is the change of Λ when the records' factors are removed (sign −1) or added (+1); for EK-FAC, their
    sums at the posterior's bases (positive semi-definite: the change of Λ, exactly); for a subnetwork,
    the GGN over its weights (as the factor J_Sᵀ/σ) and the diagonal over the rest."""
    kind = posterior.spec
    if kind.storage == "kronecker":
        factors = kronecker_factors(posterior.model, posterior.linearisation_point, x, y)
        base, changed = posterior.matrix, posterior.matrix.plus(factors, sign)
        own = Kronecker.of(factors, 0.0)  # the records' KFAC alone: A_f ⊗ G_f / n_f
        return Curvature(factors.gradient, structured=factors, model=own.apply,
                         operator=lambda v: sign * (changed.apply(v) - base.apply(v)))
    if kind.storage == "ekfac":  # the records' own EK-FAC at the posterior's bases: exactly the change of Λ
        sums = eigenbasis_sums(posterior.model, posterior.linearisation_point, x, y, posterior.matrix.left,
                               posterior.matrix.right)
        own = EigenKronecker.of(sums, 0.0)
        return Curvature(sums.gradient, structured=sums, operator=own.apply)
    if kind.storage == "subnetwork":
        model, theta, indices = posterior.model, posterior.linearisation_point, posterior.matrix.indices
        diagonal, gradient = diagonal_ggn(model, theta, x, y)
        if model.gaussian:
            factor = selected_jacobian(model, theta, x, indices).T / model.noise_std
        else:
            factor, _ = selected_factor(model, theta, x, indices)  # scale 1: F Fᵀ is the block
        records = SubnetworkCurvature(indices, diagonal, factor=factor)
        return Curvature(gradient, structured=records, operator=records.apply)
    if kind.curvature == "ggn" and kind.storage == "dense" and kind.covers == "all" and len(x):
        model = posterior.model
        f, jac = outputs_and_jacobians(model.spec, posterior.linearisation_point, x)
        if model.gaussian:
            sigma = model.noise_std
            return Curvature(jac.T @ (f - y) / sigma**2, factor=jac.T / sigma)
        weighted, _ = model.weigh(jac, f)  # scale 1 off the Gaussian: H_f = F Fᵀ
        return Curvature(jac.T @ model.error(f, y), factor=weighted.T)
    matrix, gradient = data_curvature(kind, posterior.model, posterior.linearisation_point, x, y)
    return Curvature(gradient, matrix=matrix)


def _combine(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray, sign: float,
             options: DivideOptions, in_place: bool = False, held: Records | None = None
             ) -> tuple[GaussianPosterior, UnlearningReport]:
    theta_star, idx = posterior.linearisation_point, posterior.index
    if options.mean_update == "cg" and held is None:
        raise ConfigError("mean_update: cg solves with the GGN of the records the posterior keeps, and none were "
                          "given")
    curvature = records_curvature(posterior, x, y, sign)
    rhs = -sign * (curvature.apply((posterior.mean - theta_star)[idx]) + curvature.gradient)
    floor = posterior.model.prior_precision if options.eig_floor is None else options.eig_floor
    update = posterior.matrix.add(curvature, sign, rhs, floor, options, in_place)
    step, step_length, solution = update.step, 1.0, None
    if options.mean_update == "none":
        step_length = 0.0
    elif options.mean_update == "damped":
        step_length = _trusted_step_length(posterior, x, y, update.step, curvature, options.trust_tolerance)
    elif options.mean_update == "cg":
        preconditioner = update.matrix if options.cg_preconditioner == "structure" else None
        solution = newton_cg.newton_step(posterior, x, curvature.gradient, sign, held[0], preconditioner,
                                         options.cg_tolerance, options.cg_iterations)
        step = solution.step
    full_step = np.zeros_like(posterior.mean)
    full_step[idx] = step_length * step
    result = posterior.with_updates(mean=posterior.mean + full_step, matrix=update.matrix)
    return result, UnlearningReport(len(x), update.min_eig, update.n_negative, update.repair, update.damping,
                                    step_length, float(np.linalg.norm(full_step)), update.solver, solution)


def _trusted_step_length(posterior: GaussianPosterior, x, y, step, curvature: Curvature, tolerance: float
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
                     + 0.5 * (d_new @ curvature.apply_model(d_new) - d_old @ curvature.apply_model(d_old)))
        if abs(predicted) < 1e-12 or abs(actual / predicted - 1.0) <= tolerance:
            return t
        t *= 0.5
    return 0.0


def _forgotten_nll(posterior: GaussianPosterior, x, y, theta) -> float:
    return posterior.model.loss(outputs(posterior.model.spec, theta, x), y)


@dataclass(frozen=True)
class Refinement:
    """What refining did: Newton steps taken, passes over the retained records (each an objective and gradient,
    or the refit's curvature) and ‖∇L_r‖ at the refined mean against the tolerance asked."""

    steps: int
    passes: int
    grad_norm: float
    tolerance: float

    @property
    def converged(self) -> bool:
        return self.grad_norm <= self.tolerance

    def report(self) -> dict:
        return {"refine_steps": self.steps, "refine_passes": self.passes, "refine_grad_norm": self.grad_norm,
                "refine_converged": self.converged}


def refine(posterior: GaussianPosterior, x_r: np.ndarray, y_r: np.ndarray, steps: int
           ) -> tuple[GaussianPosterior, int]:
    """Up to `steps` further Newton steps μ ← μ − Λ_r⁻¹ ∇L_r(μ) on the retained objective L_r; returns the
    posterior with the refined mean and the number of steps taken.

    From θ*, where ∇L_r = −g_f, the first such step is the forgetting step itself, so this continues the
    iteration the division starts, with the retained gradient in place of the quadratic model of the
    forgotten records. Λ_r stays as the division left it (a gradient pass per trial step, no new curvature). A
    step is halved until L_r decreases and refining stops at the first that cannot. The network stays
    linearised at θ*, where Λ_r was computed: the predictive's variance J Σ Jᵀ needs the Jacobian that Λ_r
    was built from (linearising at the refined mean instead made the toy data's served predictive
    further from the retrains than the original's).
    """
    mean, refinement = _newton_steps(posterior, x_r, y_r, steps, 0.0)
    return posterior.with_updates(mean=mean), refinement.steps


def refine_to_mode(posterior: GaussianPosterior, x_r: np.ndarray, y_r: np.ndarray, steps: int, tolerance: float
                   ) -> tuple[GaussianPosterior, Refinement]:
    """The same Newton steps until ‖∇L_r(μ)‖ ≤ `tolerance` (at most `steps`), then the Laplace posterior of the
    same kind refitted on the retained records at the refined mean, and linearised there.

    At a mode of L_r (to the tolerance a retrain's MAP is held to) the refit is the Laplace approximation a
    retrain would fit in that basin: its precision is built from the Jacobian at the mean the predictive is
    linearised at. Kept at θ*, a mean moved far lands where the linearised network no longer follows the
    network (on the penguins table, refining to the tolerance at θ* left the served predictive as far from the
    retrains as one step did). The refit costs one curvature pass over the retained records. When the budget
    ends first the refit still happens, and the report says the mean did not converge.
    """
    mean, refinement = _newton_steps(posterior, x_r, y_r, steps, tolerance)
    covered = posterior.mean[posterior.index].size  # a subnetwork refits with as many weights as it covers
    refitted = fit_laplace(posterior.model, mean, x_r, y_r, posterior.kind, subnetwork_size=covered)
    return refitted, replace(refinement, passes=refinement.passes + 1)


def _newton_steps(posterior: GaussianPosterior, x_r: np.ndarray, y_r: np.ndarray, steps: int, tolerance: float
                  ) -> tuple[np.ndarray, Refinement]:
    """Up to `steps` steps μ ← μ − Λ_r⁻¹ ∇L_r(μ), each halved until L_r decreases, stopping at ‖∇L_r‖ ≤
    `tolerance` or at a step that cannot lower L_r; the refined mean and the passes over the retained records."""
    idx, mean = posterior.index, posterior.mean.copy()
    value, gradient = objective(posterior.model, mean, x_r, y_r)
    taken, passes = 0, 1
    while taken < steps and np.linalg.norm(gradient) > tolerance:
        step = np.zeros_like(mean)
        step[idx] = -posterior.matrix.solve(gradient[idx])
        for _ in range(10):  # t = 1, ½, …, 2⁻⁹
            trial, trial_gradient = objective(posterior.model, mean + step, x_r, y_r)
            passes += 1
            if trial < value:
                break
            step *= 0.5
        else:
            break
        mean, value, gradient, taken = mean + step, trial, trial_gradient, taken + 1
    return mean, Refinement(taken, passes, float(np.linalg.norm(gradient)), tolerance)
