"""The Bernoulli likelihood (binary classification): its curvature, Newton step, evidence and predictive
against closed forms of logistic regression; and the structures' algebra and VI on a small classifier of
each likelihood (Bernoulli and categorical)."""

from __future__ import annotations

import classifier_checks
import numpy as np
import pytest

TOL = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def logistic(tf):
    """A network without hidden layers and a Bernoulli likelihood is logistic regression on Φ = [x, 1]."""
    return classifier_checks.logistic_problem()


@pytest.fixture(scope="module")
def classifier(tf):
    return classifier_checks.classifier("bernoulli")


@pytest.fixture(scope="module", params=["bernoulli", "categorical"])
def any_classifier(tf, request):
    """The checks every classifier likelihood passes run on both."""
    return classifier_checks.classifier(request.param)


def test_map_of_a_linear_classifier_is_logistic_regressions(logistic):
    from bayesunlearn.io.sections import Train
    from bayesunlearn.model.likelihood import objective
    from bayesunlearn.model.training import fit_map

    model, x, y, _, _, theta_star = logistic
    theta, info = fit_map(model, x, y, np.zeros(4), Train(adam_steps=500, polish_iterations=100,
                                                          grad_tolerance=1e-11))
    assert info["grad_norm"] < 1e-9
    np.testing.assert_allclose(theta, theta_star, **TOL)
    assert np.linalg.norm(objective(model, theta_star, x, y)[1]) < 1e-10


def test_ggn_of_a_linear_classifier_is_the_exact_hessian(logistic):
    from bayesunlearn.model.autodiff import nll_hessian
    from bayesunlearn.model.curvature import data_curvature

    model, x, y, phi, _, theta = logistic
    p = 1.0 / (1.0 + np.exp(-phi @ theta))
    ggn, grad = data_curvature(model, theta, x, y)
    np.testing.assert_allclose(ggn, phi.T @ (phi * (p * (1 - p))[:, None]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, phi.T @ (p - y), rtol=1e-12, atol=1e-12)
    hessian, tf_grad = nll_hessian(model, theta, x, y)
    np.testing.assert_allclose(ggn, hessian, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad, tf_grad, rtol=1e-10, atol=1e-12)


def test_newton_iterations_from_the_forgetting_step_reach_the_retrained_map(logistic):
    """Forgetting is the first Newton step on the retained objective; more steps converge to its MAP."""
    model, x, y, phi, mask, theta_star = logistic
    unlearned = classifier_checks.newton_reaches_the_retrained_map(logistic, classifier_checks.logistic_map)
    # the first step's precision is the retained records' GGN at θ*
    p = 1.0 / (1.0 + np.exp(-phi[~mask] @ theta_star))
    np.testing.assert_allclose(unlearned.precision, phi[~mask].T @ (phi[~mask] * (p * (1 - p))[:, None])
                               + model.prior_precision * np.eye(4), **TOL)


def test_laplace_evidence_of_logistic_regression_matches_the_closed_form(logistic):
    from bayesunlearn.posteriors.laplace import fit_laplace, log_marginal_likelihood, optimize_hyperparameters

    model, x, y, phi, _, theta = logistic
    alpha = model.prior_precision
    p = 1.0 / (1.0 + np.exp(-phi @ theta))
    log_lik = float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
    precision = phi.T @ (phi * (p * (1 - p))[:, None]) + alpha * np.eye(4)
    log_prior = -0.5 * alpha * theta @ theta + 2 * np.log(alpha / (2 * np.pi))
    expected = log_lik + log_prior + 2 * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(precision)[1]
    posterior = fit_laplace(model, theta, x, y, "full_ggn")
    assert log_marginal_likelihood(posterior, x, y) == pytest.approx(expected, rel=1e-12)

    tuned = optimize_hyperparameters(posterior, x, y)
    assert tuned.model.noise_std == model.noise_std and tuned.model.likelihood == "bernoulli"
    best = log_marginal_likelihood(tuned, x, y)
    for factor in (0.99, 1.01):  # a maximum in α at fixed θ*
        nearby = fit_laplace(tuned.model.__class__(model.spec, tuned.model.prior_precision * factor, 1.0,
                                                   "bernoulli"), theta, x, y, "full_ggn")
        assert log_marginal_likelihood(nearby, x, y) < best
    np.testing.assert_allclose(tuned.precision, precision - alpha * np.eye(4)
                               + tuned.model.prior_precision * np.eye(4), rtol=1e-12, atol=1e-12)


def test_classifier_map_is_stationary_and_curvatures_agree(classifier):
    from bayesunlearn.model.autodiff import nll_hessian
    from bayesunlearn.model.network import outputs_and_jacobians

    model, x, y, theta, info, _ = classifier
    assert info["polish_converged"] and info["grad_norm"] < 1e-6
    ggn, grad = classifier_checks.structures_agree(model, x, y, theta, np.array([0, 5, 17, model.spec.n_params - 1]))
    f, jac = outputs_and_jacobians(model.spec, theta, x)
    p = 1.0 / (1.0 + np.exp(-f))
    np.testing.assert_allclose(ggn, jac.T @ (jac * (p * (1 - p))[:, None]), rtol=1e-11, atol=1e-12)
    _, tf_grad = nll_hessian(model, theta, x, y)
    np.testing.assert_allclose(grad, tf_grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["full_ggn", "diag_ggn", "last_layer", "kfac", "ekfac", "subnetwork"])
def test_forgetting_composes_and_relearning_restores(any_classifier, kind):
    model, x, y, theta, _, mask = any_classifier
    classifier_checks.composes_and_restores(model, x, y, theta, mask, kind)


@pytest.mark.parametrize("kind", ["full_ggn", "diag_ggn", "last_layer", "kfac"])
def test_forgotten_precision_equals_the_structure_refitted_on_the_retained_records(any_classifier, kind):
    model, x, y, theta, _, mask = any_classifier
    classifier_checks.equals_the_refit(model, x, y, theta, mask, kind)


def test_probit_predictive_against_quadrature():
    """E[sigmoid(f)] for f ~ N(m, v): the probit approximation within its known error, exact at v = 0."""
    from bayesunlearn.numerics import metrics

    mean, var = np.array([-3.0, -0.5, 0.0, 1.0, 2.5, 4.0]), np.array([0.0, 0.3, 2.0, 1.0, 4.0, 9.0])
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    exact = np.array([np.sum(weights / (1 + np.exp(-(m + np.sqrt(v) * nodes)))) / np.sqrt(2 * np.pi)
                      for m, v in zip(mean, var, strict=True)])
    approx = 1.0 / (1.0 + np.exp(-metrics.probit_logit(mean, var)))
    assert np.abs(approx - exact).max() < 0.02
    assert approx[0] == pytest.approx(1.0 / (1.0 + np.exp(3.0)), rel=1e-15)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(metrics.bernoulli_nll(y, mean, var), -np.log(np.where(y == 1, approx, 1 - approx)),
                               rtol=1e-12)
    kl = metrics.bernoulli_kl(mean, var, mean[::-1], var[::-1])
    q = approx[::-1]
    np.testing.assert_allclose(kl, approx * np.log(approx / q) + (1 - approx) * np.log((1 - approx) / (1 - q)),
                               rtol=1e-10)
    assert np.all(metrics.bernoulli_kl(mean, var, mean, var) == 0.0)


def test_accuracy_and_calibration_error():
    from bayesunlearn.numerics import metrics

    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    probability = np.array([0.9, 0.2, 0.4, 0.95, 0.65])
    assert metrics.accuracy(y, probability) == pytest.approx(3 / 5)
    # confidences 0.9, 0.8, 0.6, 0.95, 0.65 in bins [.5,.6) [.6,.7) [.8,.9) [.9,1]: 0.6, 0.65 share a bin
    expected = (2 / 5 * abs(0.0 - 0.625) + 1 / 5 * abs(1 - 0.8) + 2 / 5 * abs(1 - 0.925))
    assert metrics.expected_calibration_error(y, probability) == pytest.approx(expected, rel=1e-12)
    perfect = np.full(1000, 0.75)
    outcomes = np.r_[np.ones(750), np.zeros(250)]
    assert metrics.expected_calibration_error(outcomes, perfect) == pytest.approx(0.0, abs=1e-12)


def test_tensorflow_log_joint_is_the_numpy_objective(classifier):
    from bayesunlearn.model.autodiff import as_tensor, log_joint
    from bayesunlearn.model.likelihood import objective

    model, x, y, theta, _, _ = classifier
    moved = theta + 0.1
    value = float(log_joint(model, as_tensor(moved), as_tensor(x), as_tensor(y)))
    assert value == pytest.approx(-objective(model, moved, x, y)[0], rel=1e-12)


def test_model_round_trips_and_gaussian_files_keep_their_keys(classifier):
    from bayesunlearn.model.likelihood import RegressionModel

    model = classifier[0]
    assert RegressionModel.from_dict(model.to_dict()) == model
    gaussian = RegressionModel(model.spec, 1.0, 0.1)
    assert "likelihood" not in gaussian.to_dict() and RegressionModel.from_dict(gaussian.to_dict()) == gaussian
    with pytest.raises(ValueError, match="likelihood"):
        RegressionModel(model.spec, 1.0, 0.1, "poisson")


def test_vi_uses_the_likelihood_and_forgets_with_the_eubo(any_classifier):
    """VI's Monte Carlo log-likelihood (TensorFlow Probability) is the NumPy loss per sample; a mean-field fit
    and an EUBO forgetting step on it run to finite results of the same model."""
    from bayesunlearn.io.sections import VI, VariationalUnlearning
    from bayesunlearn.model.autodiff import as_tensor
    from bayesunlearn.model.network import outputs
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.posteriors.vi import fit_vi, mc_log_likelihood
    from bayesunlearn.unlearning.methods import apply

    model, x, y, theta, _, mask = any_classifier
    thetas = np.stack([theta, theta + 0.05])
    log_lik = mc_log_likelihood(model, as_tensor(thetas), as_tensor(x), as_tensor(y)).numpy()
    np.testing.assert_allclose(log_lik, [-model.loss(outputs(model.spec, t, x), y) for t in thetas], rtol=1e-12)
    q = fit_vi(model, x, y, fit_laplace(model, theta, x, y, "diag_ggn"), "mean_field", VI(steps=300))
    assert q.model == model and np.isfinite(q.mean).all() and np.isfinite(q.matrix.precision_diagonal()).all()
    assert not np.array_equal(q.mean, theta)  # the steps moved it
    method = VariationalUnlearning(posterior="vi_mean_field", operator="eubo", threshold=1e-33, steps=100)
    unlearned, report = apply(method, q, x[mask], y[mask])
    assert report["status"] == "ok" and np.isfinite(unlearned.mean).all() and unlearned.model == model
    assert unlearned.mean.shape == q.mean.shape
