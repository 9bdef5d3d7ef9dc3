"""`refine`: Newton steps on the retained records after the forgetting step, preconditioned by Λ_r.

Oracles: on Bayesian linear regression the division is already exact, so refining moves nothing; on logistic
regression the first refining step from θ* is the forgetting step itself, and enough of them reach the
retrained MAP (closed form) to √ε. On a nonlinear classifier, refining never raises the retained objective.
"""

from __future__ import annotations

import blr
import classifier_checks
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bayesunlearn.errors import ConfigError
from bayesunlearn.io.sections import Divide
from bayesunlearn.model.likelihood import RegressionModel, objective
from bayesunlearn.model.network import MLPSpec
from bayesunlearn.posteriors.laplace import fit_laplace
from bayesunlearn.unlearning.divide import forget, refine, refine_to_mode
from bayesunlearn.unlearning.methods import apply

TOL = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def logistic(tf):
    return classifier_checks.logistic_problem()


def test_one_refining_step_from_any_mean_is_exact_on_linear_regression():
    """Bayesian linear regression: L_r is quadratic with Hessian Λ_r, so one step lands on the retrained
    mean from wherever the mean starts; from the division's (already exact) mean it stays put."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 2))
    y = x @ np.array([0.7, -1.2]) + 0.1 * rng.standard_normal(60)
    model = RegressionModel(MLPSpec(2, ()), prior_precision=0.8, noise_std=0.3)
    phi, f = np.hstack([x, np.ones((60, 1))]), classifier_checks.forget_mask(60, 9, seed=1)
    mean, _ = blr.posterior(phi, y, model.prior_precision, model.noise_std)
    unlearned, _ = forget(fit_laplace(model, mean, x, y), x[f], y[f])
    retrained, _ = blr.posterior(phi[~f], y[~f], model.prior_precision, model.noise_std)
    for start in (unlearned.mean, unlearned.mean + rng.standard_normal(3)):
        refined, _ = refine(unlearned.with_updates(mean=start), x[~f], y[~f], 1)
        np.testing.assert_allclose(refined.mean, retrained, **TOL)
        np.testing.assert_array_equal(refined.linearisation_point, mean)  # still linearised at θ*


def test_every_structure_solves_with_its_precision(tf):
    """Λ⁻¹(Λv) = v for each storage refining uses: dense with and without Σ, Σ alone, diagonal, KFAC,
    EK-FAC, subnetwork and the last layer's block."""
    from bayesunlearn.posteriors.matrices import CovarianceOnly, Dense

    model, x, y, theta, _, _ = classifier_checks.classifier("bernoulli")
    matrices = [fit_laplace(model, theta, x, y, kind).matrix
                for kind in ("full_ggn", "diag_ggn", "kfac", "ekfac", "subnetwork", "last_layer")]
    dense = matrices[0].precision()
    matrices += [Dense(dense), CovarianceOnly(np.linalg.inv(dense))]
    rng = np.random.default_rng(0)
    for matrix in matrices:
        v = rng.standard_normal(matrix.size)
        np.testing.assert_allclose(matrix.solve(matrix.precision() @ v), v, rtol=1e-8, atol=1e-8)


def test_the_first_refining_step_from_the_map_is_the_forgetting_step(logistic):
    """∇L_r(θ*) = −g_f at the MAP, so μ ← θ* − Λ_r⁻¹∇L_r(θ*) is the division's Newton step."""
    model, x, y, _, mask, theta_star = logistic
    unlearned, report = forget(fit_laplace(model, theta_star, x, y, "full_ggn"), x[mask], y[mask])
    assert report.step_length == 1.0
    at_map = unlearned.with_updates(mean=theta_star.copy())
    refined, taken = refine(at_map, x[~mask], y[~mask], 1)
    assert taken == 1
    np.testing.assert_allclose(refined.mean, unlearned.mean, **TOL)


def test_refining_reaches_the_retrained_map(logistic):
    model, x, y, phi, mask, theta_star = logistic
    unlearned, _ = forget(fit_laplace(model, theta_star, x, y, "full_ggn"), x[mask], y[mask])
    retrained = classifier_checks.logistic_map(phi[~mask], y[~mask], model.prior_precision)
    before = np.abs(unlearned.mean - retrained).max()
    one, _ = refine(unlearned, x[~mask], y[~mask], 1)
    many, taken = refine(unlearned, x[~mask], y[~mask], 100)
    assert np.abs(one.mean - retrained).max() < 0.5 * before  # Λ_r is close to the retrained curvature
    # to √ε: a step is taken only when it lowers L_r, and closer than that no step changes L_r's rounded value
    np.testing.assert_allclose(many.mean, retrained, rtol=1e-7, atol=1e-7)
    assert taken < 100  # it stops once no step lowers L_r


@pytest.fixture(scope="module")
def classifier(tf):
    """The Bernoulli classifier and its full-GGN posterior, fitted once (forgetting copies it)."""
    model, x, y, theta, _, mask = classifier_checks.classifier("bernoulli")
    return model, x, y, mask, fit_laplace(model, theta, x, y)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), size=st.integers(1, 40), steps=st.integers(0, 4))
def test_refining_never_raises_the_retained_objective(classifier, seed, size, steps):
    model, x, y, _, original = classifier
    mask = classifier_checks.forget_mask(len(x), size, seed)
    method = Divide(posterior="full_ggn", operator="divide", mean_update="damped")
    unlearned, _ = apply(method, original, x[mask], y[mask])
    refined, taken = refine(unlearned, x[~mask], y[~mask], steps)
    before, after = (objective(model, p.mean, x[~mask], y[~mask])[0] for p in (unlearned, refined))
    assert after <= before and min(steps, 1) <= taken <= steps  # −Λ_r⁻¹∇L_r descends: a first step is found
    assert (after < before) == (taken > 0)
    np.testing.assert_array_equal(refined.precision, unlearned.precision)  # Λ_r as the division left it


def test_a_refining_method_needs_the_retained_records(classifier):
    _, x, y, mask, original = classifier
    method = Divide(posterior="full_ggn", operator="divide", refine=2)
    with pytest.raises(ConfigError, match="retained records"):
        apply(method, original, x[mask], y[mask])
    _, report = apply(method, original, x[mask], y[mask], (x[~mask], y[~mask]))
    assert 0 <= report["refine_steps"] <= 2



# --- refine_tolerance: Newton steps to a mode of L_r, then the Laplace refitted there --------------------------
def test_refining_to_a_tolerance_reaches_the_retrained_map_and_refits_its_ggn(logistic):
    """Logistic regression: the refined mean is the retrained MAP (closed form) to the tolerance, and the
    precision is the retained records' GGN at that mean, Φᵀ diag(p(1 − p)) Φ + αI, linearised there."""
    model, x, y, phi, mask, theta_star = logistic
    unlearned, _ = forget(fit_laplace(model, theta_star, x, y, "full_ggn"), x[mask], y[mask])
    refitted, refinement = refine_to_mode(unlearned, x[~mask], y[~mask], 100, 1e-6)
    retrained = classifier_checks.logistic_map(phi[~mask], y[~mask], model.prior_precision)
    assert refinement.converged and refinement.grad_norm <= 1e-6
    # L_r is α-strongly convex, so ‖μ − θ_r‖ ≤ ‖∇L_r(μ)‖ / α
    assert np.linalg.norm(refitted.mean - retrained) <= refinement.grad_norm / model.prior_precision
    np.testing.assert_array_equal(refitted.linearisation_point, refitted.mean)
    p = 1.0 / (1.0 + np.exp(-phi[~mask] @ refitted.mean))
    ggn = phi[~mask].T @ (phi[~mask] * (p * (1 - p))[:, None]) + model.prior_precision * np.eye(phi.shape[1])
    np.testing.assert_allclose(refitted.dense_precision(), ggn, rtol=1e-10, atol=1e-10)


def test_refining_to_a_tolerance_lands_where_levenberg_marquardt_does(classifier):
    """On a nonlinear classifier: the mode training's second-order polish reaches from the same start, to what
    the tolerance allows, and the precision is the posterior refitted there."""
    from bayesunlearn.io.sections import Train
    from bayesunlearn.model.training import fit_map

    model, x, y, mask, original = classifier
    method = Divide(posterior="full_ggn", operator="divide", mean_update="damped")
    unlearned, _ = apply(method, original, x[mask], y[mask])
    refitted, refinement = refine_to_mode(unlearned, x[~mask], y[~mask], 200, 1e-6)
    polished, info = fit_map(model, x[~mask], y[~mask], unlearned.mean,
                             Train(adam_steps=0, polish="lm", polish_iterations=500, grad_tolerance=1e-6))
    assert refinement.converged and info["polish_converged"] and 1 <= refinement.steps < 200
    assert np.linalg.norm(objective(model, refitted.mean, x[~mask], y[~mask])[1]) == refinement.grad_norm <= 1e-6
    # two points with ‖∇L_r‖ ≤ 1e-6 near a mode whose Hessian's smallest eigenvalue is λ: about 2e-6 / λ apart
    hessian = fit_laplace(model, refitted.mean, x[~mask], y[~mask], "full_hessian").dense_precision()
    smallest = np.linalg.eigvalsh(hessian)[0]
    assert smallest > 0 and np.linalg.norm(refitted.mean - polished) <= 1.1 * 2e-6 / smallest
    expected = fit_laplace(model, refitted.mean, x[~mask], y[~mask], "full_ggn")
    np.testing.assert_allclose(refitted.dense_precision(), expected.dense_precision(), rtol=1e-12, atol=1e-12)


def test_refining_counts_its_passes_and_says_when_the_budget_ran_out(classifier, monkeypatch):
    """Every objective-and-gradient evaluation on the retained records is a pass, and the refit one more; a
    budget too small for the tolerance still refits, and reports that the mean did not converge."""
    from bayesunlearn.unlearning import divide

    model, x, y, mask, original = classifier
    unlearned, _ = apply(Divide(posterior="full_ggn", operator="divide", mean_update="none"), original,
                         x[mask], y[mask])
    calls = []
    counted = divide.objective
    monkeypatch.setattr(divide, "objective", lambda *args: calls.append(1) or counted(*args))
    full, done = refine_to_mode(unlearned, x[~mask], y[~mask], 200, 1e-6)
    assert done.converged and done.passes == len(calls) + 1 and done.steps + 1 <= len(calls)
    calls.clear()
    short, cut = refine_to_mode(unlearned, x[~mask], y[~mask], 1, 1e-6)
    assert cut.steps == 1 and not cut.converged and cut.grad_norm > 1e-6 and cut.passes == len(calls) + 1
    assert cut.report() == {"refine_steps": 1, "refine_passes": cut.passes, "refine_grad_norm": cut.grad_norm,
                            "refine_converged": False}
    np.testing.assert_array_equal(short.linearisation_point, short.mean)  # refitted all the same


def test_a_method_refining_to_a_tolerance_reports_it_and_needs_a_budget(classifier):
    _, x, y, mask, original = classifier
    method = Divide(posterior="full_ggn", operator="divide", refine=100, refine_tolerance=1e-6)
    posterior, report = apply(method, original, x[mask], y[mask], (x[~mask], y[~mask]))
    assert report["refine_converged"] and report["refine_grad_norm"] <= 1e-6
    assert report["refine_passes"] > report["refine_steps"] >= 1
    np.testing.assert_array_equal(posterior.linearisation_point, posterior.mean)
    with pytest.raises(ValueError, match="set refine to at least 1"):
        Divide(posterior="full_ggn", operator="divide", refine_tolerance=1e-6)
