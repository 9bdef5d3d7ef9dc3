"""Laplace posteriors and unlearning on the small fitted network (not closed-form)."""

from __future__ import annotations

import numpy as np
import pytest


def test_map_is_stationary_and_deterministic(fitted):
    from bayesunlearn.io.sections import Train
    from bayesunlearn.model.likelihood import objective
    from bayesunlearn.model.training import fit_map

    _, grad = objective(fitted.model, fitted.theta, fitted.x, fitted.y)
    assert np.linalg.norm(grad) < 1e-3
    config = Train(adam_steps=300, polish_iterations=5)
    first, _ = fit_map(fitted.model, fitted.x, fitted.y, fitted.model.spec.init(1), config)
    second, _ = fit_map(fitted.model, fitted.x, fitted.y, fitted.model.spec.init(1), config)
    assert first.tobytes() == second.tobytes()


def test_newton_step_moves_towards_the_warm_started_retained_map(fitted):
    """The step points at the retained-data MAP found from θ* and closes much of the gap.

    It cannot close all of it: the GGN drops the residual term of the Hessian
    (here about 35 % of the distance remains, cosine ≈ 0.87)."""
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.io.sections import Train
    from bayesunlearn.model.training import fit_map
    from bayesunlearn.unlearning.divide import forget

    f = fitted.forget_mask
    warm, info = fit_map(fitted.model, fitted.x[~f], fitted.y[~f], fitted.theta,
                         Train(adam_steps=0, polish_iterations=300))
    unlearned, _ = forget(fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y), fitted.x[f], fitted.y[f])
    before = np.linalg.norm(fitted.theta - warm)
    after = np.linalg.norm(unlearned.mean - warm)
    assert before > 1e-3, "the forgotten records must have moved the mode for this test to mean anything"
    cosine = (unlearned.mean - fitted.theta) @ (warm - fitted.theta) / (
        np.linalg.norm(unlearned.mean - fitted.theta) * before)
    assert cosine > 0.7, cosine
    assert after < 0.8 * before, (before, after, info)
    # the opposite sign would move away from the retained MAP
    assert np.linalg.norm(2 * fitted.theta - unlearned.mean - warm) > before


def test_refuses_to_divide_out_curvature_it_never_had(fitted):
    from bayesunlearn.errors import NotPositiveDefinite
    from bayesunlearn.posteriors.matrices import Dense
    from bayesunlearn.posteriors.posterior import GaussianPosterior
    from bayesunlearn.unlearning.divide import forget

    m = fitted.model
    prior_only = GaussianPosterior(m, fitted.theta, Dense(m.prior_precision * np.eye(len(fitted.theta))), fitted.theta)
    with pytest.raises(NotPositiveDefinite, match="non-positive eigenvalues"):
        forget(prior_only, fitted.x[:20], fitted.y[:20])


def test_posterior_roundtrip_is_byte_identical_and_tfp_agrees(fitted, tmp_path):
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.posteriors.posterior import GaussianPosterior

    posterior = fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y)
    posterior.save(tmp_path / "a.npz")
    loaded = GaussianPosterior.load(tmp_path / "a.npz")
    loaded.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert np.array_equal(loaded.precision, posterior.precision) and loaded.model == posterior.model
    dist = posterior.to_tfp()
    np.testing.assert_allclose(dist.mean().numpy(), posterior.mean, rtol=0, atol=0)
    np.testing.assert_allclose(dist.covariance().numpy() @ posterior.precision, np.eye(posterior.n_params),
                               atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]  # no temporary files left


def test_linearised_predictive_matches_monte_carlo(fitted, tf):
    """The GLM predictive is what sampling θ from the posterior through the linearised net gives."""
    from bayesunlearn.model.network import outputs_and_jacobians
    from bayesunlearn.posteriors.laplace import fit_laplace

    posterior = fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y)
    x = np.linspace(-2.5, 2.5, 7)[:, None]
    mean, var = posterior.predictive(x)
    samples = posterior.to_tfp().sample(20000, seed=(1, 2)).numpy()
    f, jac = outputs_and_jacobians(fitted.model.spec, fitted.theta, x)
    draws = f + (samples - fitted.theta) @ jac.T
    np.testing.assert_allclose(draws.mean(0), mean, atol=5 * np.sqrt(var.max() / 20000))
    np.testing.assert_allclose(draws.var(0) + fitted.model.noise_std**2, var, rtol=0.05)
