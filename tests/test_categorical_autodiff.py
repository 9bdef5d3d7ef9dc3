"""The TensorFlow side of the categorical likelihood: the same network, density, curvature and fits as NumPy's.

A K-class model's TF forward pass gives (n, K) logits and its Jacobian (n·K, P) record-major rows; both must
equal model/network.py's, and the TFP Categorical's log-density must equal likelihood.nll, or training, the
exact Hessian and VI would fit a different model than the one Laplace and unlearning evaluate.
"""

from __future__ import annotations

import numpy as np
import pytest

N, CLASSES, INPUTS = 30, 3, 2


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping clusters: separable enough to fit, not so separable that the MAP runs off."""
    rng = np.random.default_rng(5)
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    y = np.repeat(np.arange(CLASSES), N // CLASSES).astype(np.float64)
    return centres[y.astype(int)] + rng.standard_normal((N, INPUTS)), y


def categorical(hidden: tuple[int, ...]):
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    return RegressionModel(MLPSpec(INPUTS, hidden, "tanh", CLASSES), 1.0, 1.0, "categorical")


@pytest.fixture(scope="module")
def hidden(tf):
    """A 2-4-3 network at a random θ (not an optimum, so gradient terms are not zero)."""
    model = categorical((4,))
    return model, model.spec.init(0) + 0.3 * np.random.default_rng(1).standard_normal(model.spec.n_params)


@pytest.fixture(scope="module")
def linear(tf):
    """Linear softmax regression (no hidden layer): f is linear in θ, so the GGN is the exact Hessian."""
    model = categorical(())
    return model, 0.5 * np.random.default_rng(2).standard_normal(model.spec.n_params)


def fit(model, data, polish_iterations: int, grad_tolerance: float):
    """200 Adam steps leave the polish most of the way to go, so it is the polish that is tested."""
    from bayesunlearn.io.sections import Train
    from bayesunlearn.model.training import fit_map

    x, y = data
    return fit_map(model, x, y, model.spec.init(0), Train(seed=0, adam_steps=200, learning_rate=0.01, polish="lm",
                                                          polish_iterations=polish_iterations,
                                                          grad_tolerance=grad_tolerance))


@pytest.fixture(scope="module")
def fitted(hidden, data):
    """The 2-4-3 network's MAP. Gauss–Newton converges only linearly here (the GGN leaves out curvature of
    the hidden layer: 95 to 440 polish steps over data seeds), hence the generous budget; each step is ~1 ms."""
    model, _ = hidden
    theta, info = fit(model, data, polish_iterations=1000, grad_tolerance=1e-6)
    return model, theta, info


def test_forward_and_jacobians_equal_numpys(hidden, data):
    from bayesunlearn.model import autodiff
    from bayesunlearn.model.network import outputs, outputs_and_jacobians

    model, theta = hidden
    x, _ = data
    logits = autodiff.forward(model.spec, autodiff.as_tensor(theta), autodiff.as_tensor(x)).numpy()
    assert logits.shape == (N, CLASSES)
    np.testing.assert_allclose(logits.ravel(), outputs(model.spec, theta, x), rtol=0, atol=1e-12)
    jac = autodiff.jacobians(model.spec, autodiff.as_tensor(theta), autodiff.as_tensor(x)).numpy()
    f, expected = outputs_and_jacobians(model.spec, theta, x)
    assert jac.shape == expected.shape == (N * CLASSES, model.spec.n_params)
    np.testing.assert_allclose(jac, expected, rtol=0, atol=1e-12)


def test_numpy_objective_is_minus_the_tf_log_joint(hidden, data, tf):
    from bayesunlearn.model import autodiff
    from bayesunlearn.model.likelihood import nll, objective

    model, theta = hidden
    x, y = data
    theta_t, x_t, y_t = (autodiff.as_tensor(a) for a in (theta, x, y))
    with tf.GradientTape() as tape:
        tape.watch(theta_t)
        log_joint = autodiff.log_joint(model, theta_t, x_t, y_t)
    value, grad = objective(model, theta, x, y)
    assert value == pytest.approx(-float(log_joint), rel=1e-10)
    np.testing.assert_allclose(grad, -tape.gradient(log_joint, theta_t).numpy(), rtol=1e-10, atol=1e-10)
    per_record = autodiff.per_example_nll(model, theta_t, x_t, y_t).numpy()
    assert per_record.shape == (N,)
    assert per_record.sum() == pytest.approx(nll(model, theta, x, y)[0], rel=1e-10)


@pytest.mark.parametrize("name", ["linear", "hidden"])
def test_exact_hessian_is_the_ggn_only_without_a_hidden_layer(name, request, data):
    """Hessian = GGN + Σ_i Σ_k (∂ℓ/∂f_ik) ∇²f_ik, and ∇²f = 0 exactly when f is linear in θ."""
    from bayesunlearn.model.autodiff import nll_hessian
    from bayesunlearn.model.curvature import data_curvature

    model, theta = request.getfixturevalue(name)
    x, y = data
    hessian, grad = nll_hessian(model, theta, x, y)
    ggn, ggn_grad = data_curvature(model, theta, x, y)
    np.testing.assert_allclose(grad, ggn_grad, rtol=1e-10, atol=1e-12)
    difference = np.abs(hessian - ggn).max() / np.abs(ggn).max()
    if name == "linear":
        assert difference < 1e-10
    else:
        assert difference > 1e-3


def test_lm_step_solves_with_numpys_ggn(hidden, data, tf):
    """With no damping the Levenberg–Marquardt candidate is θ − (GGN + αI)⁻¹ ∇L, with curvature.py's GGN."""
    from bayesunlearn.model.autodiff import as_tensor
    from bayesunlearn.model.curvature import data_curvature
    from bayesunlearn.model.likelihood import objective
    from bayesunlearn.model.training import _compiled

    model, theta = hidden
    x, y = data
    _, curvatures, trial = _compiled(model)
    theta_t, x_t, y_t = as_tensor(theta), as_tensor(x), as_tensor(y)
    _, grad, matrix, scale = curvatures["lm"][0](theta_t, x_t, y_t)
    candidate, _ = trial(theta_t, grad, matrix, scale, tf.constant(0.0, tf.float64), x_t, y_t)
    ggn = data_curvature(model, theta, x, y)[0] + model.prior_precision * np.eye(model.spec.n_params)
    expected = theta - np.linalg.solve(ggn, objective(model, theta, x, y)[1])
    np.testing.assert_allclose(candidate.numpy(), expected, rtol=1e-8, atol=1e-10)


def test_fit_map_reaches_a_stationary_point(fitted, data):
    from bayesunlearn.model.network import outputs

    model, theta, info = fitted
    x, y = data
    assert info["polish_converged"], info
    assert info["grad_norm"] < 1e-6, info
    predicted = np.argmax(outputs(model.spec, theta, x).reshape(N, CLASSES), axis=1)
    assert np.mean(predicted == y) > 0.8  # the clusters overlap a little


def test_lm_is_newton_for_linear_softmax(linear, data):
    """Without a hidden layer the GGN is the exact Hessian, so the polish converges quadratically: a few steps
    to rounding level. A GGN with wrong output weights would converge linearly and fail this."""
    model, _ = linear
    _, info = fit(model, data, polish_iterations=10, grad_tolerance=1e-8)
    assert info["polish_converged"] and info["grad_norm"] < 1e-8, info


def test_mc_log_likelihood_is_minus_the_nll_per_sample_also_in_chunks(fitted, data, tf, monkeypatch):
    from bayesunlearn.model.autodiff import as_tensor
    from bayesunlearn.model.likelihood import nll
    from bayesunlearn.posteriors import vi

    model, theta, _ = fitted
    x, y = data
    thetas = theta + 0.05 * np.random.default_rng(3).standard_normal((4, len(theta)))
    expected = [-nll(model, t, x, y)[0] for t in thetas]
    np.testing.assert_allclose(vi.mc_log_likelihood(model, as_tensor(thetas), as_tensor(x), as_tensor(y)).numpy(),
                               expected, rtol=1e-10)
    monkeypatch.setattr(vi, "ACTIVATION_BUDGET", 4 * 4 * 7)  # chunks of 7 records, the last one padded
    np.testing.assert_allclose(vi.mc_log_likelihood(model, as_tensor(thetas), as_tensor(x), as_tensor(y)).numpy(),
                               expected, rtol=1e-10)
