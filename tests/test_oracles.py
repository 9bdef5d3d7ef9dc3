"""The exact oracles of docs/design.md, to float64 precision."""

from __future__ import annotations

import numpy as np
import pytest

import blr

TOL = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def linear(tf):
    """A network without hidden layers is linear regression on Φ = [x, 1]."""
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 3))
    y = x @ np.array([0.5, -1.0, 2.0]) + 0.3 + 0.2 * rng.standard_normal(60)
    model = RegressionModel(MLPSpec(3, ()), prior_precision=0.7, noise_std=0.2)
    phi = np.hstack([x, np.ones((60, 1))])
    forget = np.zeros(60, dtype=bool)
    forget[[1, 5, 8, 13, 21, 34]] = True
    return model, x, y, phi, forget


def test_blr_laplace_is_the_exact_posterior(linear):
    from bayesunlearn.posteriors.laplace import fit_laplace

    model, x, y, phi, _ = linear
    mean, precision = blr.posterior(phi, y, model.prior_precision, model.noise_std)
    posterior = fit_laplace(model, mean, x, y)
    np.testing.assert_allclose(posterior.precision, precision, **TOL)


def test_blr_forgetting_equals_fitting_on_the_retained_data(linear):
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget

    model, x, y, phi, f = linear
    mean, _ = blr.posterior(phi, y, model.prior_precision, model.noise_std)
    unlearned, report = forget(fit_laplace(model, mean, x, y), x[f], y[f])
    mean_r, precision_r = blr.posterior(phi[~f], y[~f], model.prior_precision, model.noise_std)
    np.testing.assert_allclose(unlearned.precision, precision_r, **TOL)
    np.testing.assert_allclose(unlearned.mean, mean_r, **TOL)
    assert report.n_negative_eigs == 0 and report.min_eig_precision > 0


def test_newton_step_equals_natural_parameter_form(linear):
    """At μ = θ* the division is one Newton step: μ_r = θ* + Λ_r⁻¹ g_f."""
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget

    model, x, y, phi, f = linear
    mean, precision = blr.posterior(phi, y, model.prior_precision, model.noise_std)
    g_f = phi[f].T @ (phi[f] @ mean - y[f]) / model.noise_std**2
    precision_r = precision - phi[f].T @ phi[f] / model.noise_std**2
    newton = mean + np.linalg.solve(precision_r, g_f)
    unlearned, _ = forget(fit_laplace(model, mean, x, y), x[f], y[f])
    np.testing.assert_allclose(unlearned.mean, newton, **TOL)


def linearised_problem(fitted):
    """Features J_i and targets y_i − f(x_i, θ*) + J_iθ* of the network linearised at θ*."""
    from bayesunlearn.model.network import outputs_and_jacobians

    f, jac = outputs_and_jacobians(fitted.model.spec, fitted.theta, fitted.x)
    return jac, fitted.y - f + jac @ fitted.theta


def test_ggn_laplace_is_the_linearised_networks_posterior(fitted):
    from bayesunlearn.posteriors.laplace import fit_laplace

    jac, target = linearised_problem(fitted)
    m = fitted.model
    _, precision = blr.posterior(jac, target, m.prior_precision, m.noise_std)
    np.testing.assert_allclose(fit_laplace(m, fitted.theta, fitted.x, fitted.y).precision, precision, **TOL)


def test_unlearning_the_linearised_network_equals_refitting_it_on_retained_data(fitted):
    from bayesunlearn.posteriors.matrices import Dense
    from bayesunlearn.posteriors.posterior import GaussianPosterior
    from bayesunlearn.unlearning.divide import forget

    jac, target = linearised_problem(fitted)
    m, f = fitted.model, fitted.forget_mask
    mean, precision = blr.posterior(jac, target, m.prior_precision, m.noise_std)
    original = GaussianPosterior(m, mean, Dense(precision), fitted.theta)
    unlearned, _ = forget(original, fitted.x[f], fitted.y[f])
    mean_r, precision_r = blr.posterior(jac[~f], target[~f], m.prior_precision, m.noise_std)
    np.testing.assert_allclose(unlearned.precision, precision_r, **TOL)
    np.testing.assert_allclose(unlearned.mean, mean_r, **TOL)


def test_forgetting_in_steps_equals_forgetting_at_once_and_relearning_restores(fitted):
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget, relearn

    x, y, f = fitted.x, fitted.y, np.flatnonzero(fitted.forget_mask)
    a, b = f[: len(f) // 2], f[len(f) // 2:]
    original = fit_laplace(fitted.model, fitted.theta, x, y)
    once, _ = forget(original, x[f], y[f])
    first, _ = forget(original, x[a], y[a])
    twice, _ = forget(first, x[b], y[b])
    np.testing.assert_allclose(twice.mean, once.mean, **TOL)
    np.testing.assert_allclose(twice.precision, once.precision, **TOL)
    restored, _ = relearn(once, x[f], y[f])
    np.testing.assert_allclose(restored.mean, original.mean, **TOL)
    np.testing.assert_allclose(restored.precision, original.precision, **TOL)
