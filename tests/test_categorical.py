"""The categorical likelihood (K classes): its curvature, Newton step, evidence and predictive against closed
forms of multinomial logistic regression, and the structures on a small three-class network (the checks
shared with the Bernoulli likelihood, and VI, run on both in tests/test_classification.py)."""

from __future__ import annotations

import classifier_checks
import numpy as np
import pytest

TOL = dict(rtol=1e-9, atol=1e-9)
K = classifier_checks.K


def _probabilities(phi: np.ndarray, theta: np.ndarray) -> np.ndarray:
    logits = phi @ theta.reshape(phi.shape[1], K)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _closed_form(phi: np.ndarray, y: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression's NLL Hessian Σ_i φ_iφ_iᵀ ⊗ (diag p_i − p_ip_iᵀ) and gradient
    Σ_i φ_i ⊗ (p_i − e_y), with θ the (d + 1) × K matrix [W; b] flattened row-major."""
    p = _probabilities(phi, theta)
    hessian = sum(np.kron(np.outer(f, f), np.diag(q) - np.outer(q, q)) for f, q in zip(phi, p, strict=True))
    gradient = (phi.T @ (p - np.eye(K)[y.astype(int)])).ravel()
    return hessian, gradient


def _closed_form_map(phi: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    theta = np.zeros(phi.shape[1] * K)
    for _ in range(100):
        hessian, gradient = _closed_form(phi, y, theta)
        step = np.linalg.solve(hessian + alpha * np.eye(len(theta)), gradient + alpha * theta)
        theta -= step
        if np.abs(step).max() < 1e-15:
            break
    return theta


@pytest.fixture(scope="module")
def softmax_regression():
    """A network without hidden layers and K outputs with a categorical likelihood is multinomial logistic
    regression on Φ = [x, 1]."""
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    x, y = classifier_checks.softmax_data(120, 2, seed=3)
    model = RegressionModel(MLPSpec(2, (), outputs=K), prior_precision=0.5, noise_std=1.0, likelihood="categorical")
    return classifier_checks.linear_problem(model, x, y, _closed_form_map)


@pytest.fixture(scope="module")
def classifier(tf):
    return classifier_checks.classifier("categorical")


def test_jacobian_rows_are_each_output_derivatives():
    """Record-major output rows: row i·K + k of J is ∂f_k(x_i)/∂θ, against central differences."""
    from bayesunlearn.model.network import MLPSpec, outputs, outputs_and_jacobians, outputs_and_vjp

    spec = MLPSpec(3, (5, 4), "tanh", outputs=K)
    rng = np.random.default_rng(0)
    theta, x = rng.standard_normal(spec.n_params) * 0.5, rng.standard_normal((6, 3))
    f, jac = outputs_and_jacobians(spec, theta, x)
    assert f.shape == (6 * K,) and jac.shape == (6 * K, spec.n_params)
    np.testing.assert_allclose(f, outputs(spec, theta, x), rtol=0, atol=0)
    h = 1e-6
    numeric = np.column_stack([(outputs(spec, theta + h * e, x) - outputs(spec, theta - h * e, x)) / (2 * h)
                               for e in np.eye(spec.n_params)])
    np.testing.assert_allclose(jac, numeric, rtol=1e-7, atol=1e-8)
    v = rng.standard_normal(6 * K)
    np.testing.assert_allclose(outputs_and_vjp(spec, theta, x, lambda _: v)[1], jac.T @ v, rtol=1e-12, atol=1e-12)


def test_ggn_of_a_linear_softmax_model_is_the_closed_form_hessian(softmax_regression):
    from bayesunlearn.model.curvature import data_curvature, diagonal_ggn, kronecker_factors
    from bayesunlearn.model.likelihood import nll

    model, x, y, phi, _, theta = softmax_regression
    hessian, gradient = _closed_form(phi, y, theta)
    ggn, grad = data_curvature(model, theta, x, y)
    np.testing.assert_allclose(ggn, hessian, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, gradient, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nll(model, theta, x, y)[1], gradient, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(diagonal_ggn(model, theta, x, y)[0], np.diag(hessian), rtol=1e-12, atol=1e-12)
    # KFAC of one record is exact: A ⊗ G with A its input's outer product, G its output Hessian
    factors = kronecker_factors(model, theta, x[:1], y[:1])
    np.testing.assert_allclose(np.kron(factors.inputs[0], factors.sensitivities[0]), _closed_form(phi[:1], y[:1],
                               theta)[0], rtol=1e-12, atol=1e-12)


def test_map_of_a_linear_softmax_model_is_multinomial_logistic_regressions(softmax_regression, tf):
    from bayesunlearn.io.sections import Train
    from bayesunlearn.model.likelihood import objective
    from bayesunlearn.model.training import fit_map

    model, x, y, _, _, theta_star = softmax_regression
    theta, info = fit_map(model, x, y, np.zeros(model.spec.n_params),
                          Train(adam_steps=500, polish_iterations=100, grad_tolerance=1e-11))
    assert info["grad_norm"] < 1e-9
    np.testing.assert_allclose(theta, theta_star, **TOL)
    assert np.linalg.norm(objective(model, theta_star, x, y)[1]) < 1e-10


def test_newton_iterations_from_the_forgetting_step_reach_the_retrained_map(softmax_regression):
    model, x, y, phi, mask, theta_star = softmax_regression
    unlearned = classifier_checks.newton_reaches_the_retrained_map(softmax_regression, _closed_form_map)
    np.testing.assert_allclose(unlearned.precision, _closed_form(phi[~mask], y[~mask], theta_star)[0]
                               + model.prior_precision * np.eye(model.spec.n_params), **TOL)


def test_laplace_evidence_of_softmax_regression_matches_the_closed_form(softmax_regression):
    from bayesunlearn.posteriors.laplace import fit_laplace, log_marginal_likelihood, optimize_hyperparameters

    model, x, y, phi, _, theta = softmax_regression
    alpha, p = model.prior_precision, model.spec.n_params
    log_lik = float(np.sum(np.log(_probabilities(phi, theta)[np.arange(len(y)), y.astype(int)])))
    precision = _closed_form(phi, y, theta)[0] + alpha * np.eye(p)
    log_prior = -0.5 * alpha * theta @ theta + 0.5 * p * np.log(alpha / (2 * np.pi))
    expected = log_lik + log_prior + 0.5 * p * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(precision)[1]
    posterior = fit_laplace(model, theta, x, y, "full_ggn")
    assert log_marginal_likelihood(posterior, x, y) == pytest.approx(expected, rel=1e-12)
    tuned = optimize_hyperparameters(posterior, x, y)
    assert tuned.model.likelihood == "categorical" and tuned.model.noise_std == model.noise_std
    best = log_marginal_likelihood(tuned, x, y)
    for factor in (0.99, 1.01):
        nearby = fit_laplace(tuned.model.__class__(model.spec, tuned.model.prior_precision * factor, 1.0,
                                                   "categorical"), theta, x, y, "full_ggn")
        assert log_marginal_likelihood(nearby, x, y) < best


def test_classifier_map_is_stationary_and_structures_agree_with_the_full_ggn(classifier):
    from bayesunlearn.model.network import outputs_and_jacobians

    model, x, y, theta, info, _ = classifier
    assert info["polish_converged"] and info["grad_norm"] < 1e-6
    assert model.spec.n_last_layer == 9 * K
    ggn, _ = classifier_checks.structures_agree(model, x, y, theta, np.array([0, 5, 17, 30, model.spec.n_params - 1]))
    f, jac = outputs_and_jacobians(model.spec, theta, x)
    logits = f.reshape(-1, K)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    blocks = jac.reshape(len(x), K, -1)
    explicit = sum(b.T @ (np.diag(q) - np.outer(q, q)) @ b for b, q in zip(blocks, prob, strict=True))
    np.testing.assert_allclose(ggn, explicit, rtol=1e-11, atol=1e-12)
    assert np.linalg.eigvalsh(ggn).min() > -1e-10  # positive semi-definite at any θ


def test_probit_predictive_against_monte_carlo_and_its_scores():
    """The multiclass probit approximation of E[softmax(f)] for independent f_k ~ N(m_k, v_k): exact at
    v = 0, close to Monte Carlo otherwise; its NLL, KL, accuracy and calibration error from it."""
    from bayesunlearn.numerics import metrics

    mean = np.array([[2.0, 0.0, -1.0], [0.3, 0.1, 0.2], [-1.0, 3.0, 0.5]])
    var = np.array([[0.0, 0.0, 0.0], [0.5, 1.0, 2.0], [3.0, 0.2, 1.0]])
    approx = metrics.class_probabilities(mean, var)
    np.testing.assert_allclose(approx.sum(axis=1), 1.0, rtol=1e-15)
    exact_row = np.exp(mean[0]) / np.exp(mean[0]).sum()
    np.testing.assert_allclose(approx[0], exact_row, rtol=1e-15)
    draws = mean[None] + np.sqrt(var)[None] * np.random.default_rng(0).standard_normal((200_000, 3, K))
    sampled = np.exp(draws - draws.max(axis=2, keepdims=True))
    monte_carlo = (sampled / sampled.sum(axis=2, keepdims=True)).mean(axis=0)
    plug_in = metrics.class_probabilities(mean, np.zeros_like(var))  # softmax of the mean: variance ignored
    assert np.abs(approx - monte_carlo).max() < 0.06  # the approximation's known error at variances ~1–3
    assert np.abs(approx - monte_carlo).sum() < np.abs(plug_in - monte_carlo).sum()
    y = np.array([0.0, 2.0, 1.0])
    np.testing.assert_allclose(metrics.categorical_nll(y, mean, var), -np.log(approx[[0, 1, 2], [0, 2, 1]]),
                               rtol=1e-12)
    q = metrics.class_probabilities(mean[::-1], var[::-1])
    np.testing.assert_allclose(metrics.categorical_kl(mean, var, mean[::-1], var[::-1]),
                               np.sum(approx * np.log(approx / q), axis=1), rtol=1e-10)
    assert np.all(metrics.categorical_kl(mean, var, mean, var) == 0.0)
    assert metrics.accuracy(y, approx) == pytest.approx(2 / 3)  # the middle record predicts class 0


def test_top_label_calibration_error_bins_over_one_kth_to_one():
    from bayesunlearn.numerics import metrics

    probability = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    y = np.array([0.0, 1.0, 2.0, 1.0])
    assert list(metrics.predicted_class(probability)) == [0, 0, 2, 1]  # a tie goes to the higher class
    # confidences 0.9, 0.4, 0.7, 0.5 on [1/3, 1] in 10 bins: bins 8, 0, 5, 2, each alone
    expected = (abs(1 - 0.9) + abs(0 - 0.4) + abs(1 - 0.7) + abs(1 - 0.5)) / 4
    assert metrics.expected_calibration_error(y, probability) == pytest.approx(expected, rel=1e-12)
    binary = np.array([0.9, 0.2, 0.4])  # a binary p(y = 1) is the two-column table (1 − p, p)
    np.testing.assert_array_equal(metrics.predicted_class(binary), metrics.predicted_class(
        np.column_stack([1 - binary, binary])))


def test_posterior_predictive_scores_each_record_once(classifier):
    from bayesunlearn.posteriors.laplace import fit_laplace

    model, x, y, theta, _, _ = classifier
    posterior = fit_laplace(model, theta, x, y, "full_ggn")
    mean, var = posterior.predictive(x[:7])
    assert mean.shape == var.shape == (7 * K,) and np.all(var > 0)
    nll = posterior.predictive_nll(x[:7], y[:7])
    assert nll.shape == (7,) and np.all(nll > 0)
    assert model.class_probabilities(mean, var).shape == (7, K)
    assert model.predictive_kl((mean, var), (mean, var)).shape == (7,)


def test_model_round_trips_and_checks_its_outputs(classifier):
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    model = classifier[0]
    assert RegressionModel.from_dict(model.to_dict()) == model and model.to_dict()["spec"]["outputs"] == K
    assert "outputs" not in MLPSpec(2, (8,)).to_dict()  # one-output files keep their bytes
    with pytest.raises(ValueError, match="output"):
        RegressionModel(MLPSpec(2, (8,)), 1.0, 1.0, "categorical")
    with pytest.raises(ValueError, match="output"):
        RegressionModel(model.spec, 1.0, 1.0, "bernoulli")


def test_output_layer_block_from_its_inputs_alone_is_the_full_ggns_over_batches(monkeypatch):
    """The last layer's block and gradient, formed from the last hidden layer's outputs without J, over
    several row batches, are the full GGN's and the NLL gradient's over those parameters."""
    from bayesunlearn.model import curvature
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    spec = MLPSpec(3, (6, 5), "tanh", K)
    model = RegressionModel(spec, 1.0, 1.0, "categorical")
    rng = np.random.default_rng(3)
    x, y, theta = rng.normal(size=(40, 3)), rng.integers(0, K, 40), rng.normal(size=spec.n_params)
    ggn, grad = curvature.data_curvature(model, theta, x, y)
    monkeypatch.setattr(curvature, "JACOBIAN_BUDGET", 7 * spec.n_params)
    assert len(curvature.row_batches(len(x), sum(a + b + 1 for a, b in spec.shapes) * K)) > 1
    last = slice(spec.n_params - spec.n_last_layer, spec.n_params)
    block, gradient = curvature.restricted_ggn(model, theta, x, y, last, diagonal=False)
    np.testing.assert_allclose(block, ggn[last, last], rtol=1e-12, atol=1e-12 * np.abs(ggn).max())
    np.testing.assert_allclose(gradient, grad[last], rtol=1e-12, atol=1e-12 * np.abs(grad).max())
    diagonal, _ = curvature.restricted_ggn(model, theta, x, y, last, diagonal=True)
    np.testing.assert_allclose(diagonal, np.diag(ggn)[last], rtol=1e-12, atol=1e-12 * np.abs(ggn).max())


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_output_factor_has_k_minus_one_rows_and_squares_to_the_output_hessian(classes):
    """B_iᵀB_i = diag(p_i) − p_ip_iᵀ with K − 1 rows, finite where a class has probability 1 or 0 (underflow)."""
    from scipy.special import softmax

    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    model = RegressionModel(MLPSpec(2, (), outputs=classes), 1.0, 1.0, "categorical")
    logits = np.random.default_rng(4).normal(size=(60, classes)) * 4
    logits[0, 0], logits[1, -1], logits[2, :] = 900.0, -900.0, 0.0  # one sure class; one impossible; a tie
    factor = model.output_factor(logits.ravel())
    p = softmax(logits, axis=1)
    assert factor.shape == (60, classes - 1, classes) and np.isfinite(factor).all()
    np.testing.assert_allclose(np.einsum("irk,irl->ikl", factor, factor),
                               p[:, :, None] * np.eye(classes) - p[:, :, None] * p[:, None, :], rtol=0, atol=1e-15)
