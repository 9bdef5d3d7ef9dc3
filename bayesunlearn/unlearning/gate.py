"""The quality gate: is an unlearned posterior good enough to serve, judged without a retrain?

In production the reference retrain is exactly what we avoid, so the gate uses
signals that cost at most one pass over the retained data, and judges what is
served, the posterior's (linearised) predictive:
- the operator's own verdict: it did not fail, and Λ_r was positive definite
  without repair (or the repair is one the operator allows);
- the change in the retained records' fit: their mean negative log predictive
  density under the unlearned predictive minus under the original's. A retrain
  minimises the retained objective and the original already fits those records,
  so forgetting should barely change their fit; a posterior that fits them
  markedly worse has moved away from every retrain (e.g. a diagonal Newton step
  that ignores the correlations);
- a loss-threshold membership-inference AUC of forgotten vs unseen test
  records: high means the forgotten records still look like training data (it
  catches an operator that did nothing only where the original had memorised
  the records).
An original whose MAP did not converge (|∇L| above `train.grad_tolerance`)
is refused outright: the Laplace posterior and the Newton step both assume a
mode, so none of the signals above vouch for a step taken from elsewhere.
The gradient residual ‖∇L_r(μ_u)‖ / ‖∇L_r(μ)‖ of the network evaluated at the
moved mean is always reported; it decides only when `max_residual_ratio` is set,
for users who serve the network at the mean rather than the linearised
predictive (on real tables it is far above 1 even when the served predictive is
within the retrain noise: docs/methods.md, "On real tables").
"""

from __future__ import annotations

import numpy as np

from bayesunlearn.io.contracts import ORIGINAL_MAP, Convergence, GateReport
from bayesunlearn.io.sections import Gate
from bayesunlearn.model.likelihood import objective
from bayesunlearn.numerics import metrics
from bayesunlearn.posteriors.posterior import GaussianPosterior


def retained_nll_change(original: GaussianPosterior, unlearned: GaussianPosterior, x_r: np.ndarray,
                        y_r: np.ndarray) -> float:
    """Mean negative log predictive density of the retained records, unlearned minus original (nats)."""
    if len(y_r) == 0:
        return 0.0
    return float(np.mean(unlearned.predictive_nll(x_r, y_r)) - np.mean(original.predictive_nll(x_r, y_r)))


def gate(method: str, original: GaussianPosterior, unlearned: GaussianPosterior, report: dict,
         x_r: np.ndarray, y_r: np.ndarray, x_f: np.ndarray, y_f: np.ndarray, x_test: np.ndarray,
         y_test: np.ndarray, thresholds: Gate, original_fit: Convergence) -> GateReport:
    model = unlearned.model
    _, grad_u = objective(model, unlearned.mean, x_r, y_r)
    _, grad_o = objective(model, original.mean, x_r, y_r)
    residual_u, residual_o = float(np.linalg.norm(grad_u)), float(np.linalg.norm(grad_o))
    ratio = residual_u / residual_o if residual_o > 0 else float("inf")
    fit_change = retained_nll_change(original, unlearned, x_r, y_r)
    auc = None  # None when nothing is forgotten (e.g. right after a purge): no membership to test
    if len(y_f):
        auc = metrics.membership_auc(unlearned.predictive_nll(x_f, y_f), unlearned.predictive_nll(x_test, y_test))
    status, repair = report.get("status", "ok"), report.get("repair", "none")
    reasons = [problem] if (problem := original_fit.problem(ORIGINAL_MAP)) else []
    if status != "ok":
        reasons.append(f"unlearning failed: {report.get('reason', '')}")
    if repair not in thresholds.allowed_repairs:
        reasons.append(f"precision needed repair '{repair}' ({report.get('n_negative_eigs')} negative eigenvalues)")
    if not fit_change <= thresholds.max_retained_nll_change:
        reasons.append(f"retained records' NLL rose by {fit_change:.3g} > {thresholds.max_retained_nll_change:g} "
                       "nats per record")
    if thresholds.max_residual_ratio is not None and not ratio <= thresholds.max_residual_ratio:
        reasons.append(f"gradient residual ratio {ratio:.3g} > {thresholds.max_residual_ratio:g}")
    if auc is not None and not auc <= thresholds.max_mia_auc:
        reasons.append(f"membership AUC {auc:.3g} > {thresholds.max_mia_auc:g}")
    return GateReport(method=method, decision="fallback" if reasons else "pass", passed=not reasons,
                      reasons=reasons, retained_nll_change=fit_change, residual_ratio=ratio,
                      residual_unlearned=residual_u, residual_original=residual_o,
                      original_grad_norm=original_fit.grad_norm, mia_auc=auc,
                      unlearn_status=status, repair=repair, n_forgotten=len(y_f))
