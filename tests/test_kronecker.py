"""KFAC (posteriors/kronecker.py): its factors against their definitions, the structures it must equal,
and forgetting against a fit on the retained records. Every oracle holds at any θ*, so no training."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from bayesunlearn.errors import NotPositiveDefinite
from bayesunlearn.io.sections import DivideOptions
from bayesunlearn.model.curvature import data_curvature, kronecker_factors
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.network import MLPSpec, outputs_and_jacobians
from bayesunlearn.posteriors.laplace import fit_laplace, log_marginal_likelihood
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.unlearning.divide import forget, relearn


def close(actual, expected, tol=1e-10):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


def problem(hidden=(6, 4), n=40, seed=0):
    rng = np.random.default_rng(seed)
    model = RegressionModel(MLPSpec(3, hidden), prior_precision=0.7, noise_std=0.3)
    theta = rng.normal(0, 0.6, model.spec.n_params)
    x = rng.normal(size=(n, 3))
    return model, theta, x, np.sin(x[:, 0]) + rng.normal(0, 0.3, n)


def layer_slices(spec):
    offset, out = 0, []
    for fan_in, fan_out in spec.shapes:
        out.append(slice(offset, offset + (fan_in + 1) * fan_out))
        offset += (fan_in + 1) * fan_out
    return out


def test_factors_equal_their_definitions_and_one_record_gives_the_exact_ggn():
    """G_l = Σ δδᵀ/σ² is the bias columns' GGN; A_l ⊗ G_l of one record is that record's GGN block
    (its Jacobian row is ã ⊗ δ); the gradient is Jᵀ(f − y)/σ²."""
    model, theta, x, y = problem()
    factors = kronecker_factors(model, theta, x, y)
    f, jac = outputs_and_jacobians(model.spec, theta, x)
    close(factors.gradient, jac.T @ (f - y) / model.noise_std**2)
    assert factors.count == len(x)
    total = [np.zeros((s.stop - s.start,) * 2) for s in layer_slices(model.spec)]
    for i in range(len(x)):
        one = kronecker_factors(model, theta, x[i:i + 1], y[i:i + 1])
        for layer, cols in enumerate(layer_slices(model.spec)):
            fan_out = model.spec.shapes[layer][1]
            block = np.outer(jac[i, cols], jac[i, cols]) / model.noise_std**2
            close(np.kron(one.inputs[layer], one.sensitivities[layer]), block)
            bias = jac[i, cols][-fan_out:]
            close(one.sensitivities[layer], np.outer(bias, bias) / model.noise_std**2)
            total[layer] += np.kron(one.inputs[layer], one.sensitivities[layer])
    exact, _ = data_curvature(model, theta, x, y)
    for layer, cols in enumerate(layer_slices(model.spec)):
        close(total[layer], exact[cols, cols])  # Σ_i of per-record Kronecker products: the exact block
    first = np.column_stack([x, np.ones(len(x))])
    close(factors.inputs[0], first.T @ first)


def test_kfac_is_the_full_ggn_for_a_linear_model_and_the_last_layer_block_is_exact():
    model, theta, x, y = problem(hidden=())
    linear = fit_laplace(model, theta, x, y, "kfac")
    close(linear.dense_precision(), fit_laplace(model, theta, x, y, "full_ggn").dense_precision(), 1e-12)
    model, theta, x, y = problem()
    kfac = fit_laplace(model, theta, x, y, "kfac").dense_precision()
    last = fit_laplace(model, theta, x, y, "last_layer").dense_precision()
    k = len(last)
    close(kfac[-k:, -k:], last, 1e-12)


def test_the_matrix_algebra_agrees_with_its_dense_form():
    algebra_agrees_with_the_dense_form("kfac")


def algebra_agrees_with_the_dense_form(kind: str) -> None:
    """Eigenvalues, Σ, Λv, Λ⁻¹v, the predictive variance and the evidence of a structure against its dense Λ."""
    model, theta, x, y = problem()
    posterior = fit_laplace(model, theta, x, y, kind)
    matrix, precision = posterior.matrix, posterior.dense_precision()
    close(np.sort(matrix.eigenvalues()), scipy.linalg.eigvalsh(precision))
    close(matrix.covariance(), np.linalg.inv(precision))
    v = np.random.default_rng(1).normal(size=posterior.n_params)
    close(matrix.apply(v), precision @ v)
    close(matrix.solve(v), np.linalg.solve(precision, v))
    _, jac = outputs_and_jacobians(model.spec, theta, x[:7])
    close(matrix.variance(jac), np.einsum("ij,jk,ik->i", jac, np.linalg.inv(precision), jac))
    f, _ = outputs_and_jacobians(model.spec, theta, x)
    rss, p = np.sum((y - f) ** 2), posterior.n_params
    expected = (-0.5 * rss / model.noise_std**2 - len(y) * np.log(model.noise_std * np.sqrt(2 * np.pi))
                - 0.5 * model.prior_precision * theta @ theta + 0.5 * p * np.log(model.prior_precision)
                - 0.5 * np.linalg.slogdet(precision)[1])
    assert log_marginal_likelihood(posterior, x, y) == pytest.approx(expected, rel=1e-12)


def test_forgetting_equals_the_kfac_of_the_retained_records_and_composes(tmp_path):
    model, theta, x, y = problem(n=60)
    posterior = fit_laplace(model, theta, x, y, "kfac")
    forgotten = np.zeros(len(x), dtype=bool)
    forgotten[[3, 8, 15, 16, 40, 51]] = True
    unlearned, report = forget(posterior, x[forgotten], y[forgotten])
    refit = fit_laplace(model, theta, x[~forgotten], y[~forgotten], "kfac")
    assert (report.solver, report.repair, unlearned.matrix.count) == ("kronecker", "none", 54)
    close(unlearned.dense_precision(), refit.dense_precision())
    g_f = kronecker_factors(model, theta, x[forgotten], y[forgotten]).gradient
    close(unlearned.mean, theta + np.linalg.solve(refit.dense_precision(), g_f))  # the Newton step
    loaded = composes_restores_and_loads(posterior, unlearned, x, y, forgotten, tmp_path)
    assert loaded.matrix.count == 54


def composes_restores_and_loads(posterior, unlearned, x, y, forgotten, folder) -> GaussianPosterior:
    """Forgetting in two parts equals forgetting at once, relearning restores the original, and the unlearned
    posterior survives save and load bit for bit; returns the loaded one."""
    a, b = np.flatnonzero(forgotten)[:2], np.flatnonzero(forgotten)[2:]
    twice = forget(forget(posterior, x[a], y[a])[0], x[b], y[b])[0]
    close(twice.mean, unlearned.mean)
    close(twice.dense_precision(), unlearned.dense_precision())
    restored, _ = relearn(unlearned, x[forgotten], y[forgotten])
    close(restored.mean, posterior.mean)
    close(restored.dense_precision(), posterior.dense_precision())
    unlearned.save(folder / "posterior.npz")
    loaded = GaussianPosterior.load(folder / "posterior.npz")
    assert np.array_equal(loaded.mean, unlearned.mean)
    assert np.array_equal(loaded.dense_precision(), unlearned.dense_precision())
    return loaded


@pytest.mark.parametrize("kind", ["kfac", "ekfac"])
def test_removing_records_the_fit_never_held_is_refused_or_floored(kind):
    model, theta, x, y = problem()
    posterior = fit_laplace(model, theta, x, y, kind)
    stranger = np.full((5, 3), 40.0), np.zeros(5)
    with pytest.raises(NotPositiveDefinite, match="not all in the fit"):
        forget(posterior, *stranger, DivideOptions(repair="refuse"))
    for repair in ("clip", "damp"):
        repaired, report = forget(posterior, *stranger, DivideOptions(repair=repair))
        assert report.repair == repair and report.n_negative_eigs > 0 and (report.damping > 0) == (repair == "damp")
        if kind == "kfac":  # each factor is positive semi-definite again
            for factor in (*repaired.matrix.inputs, *repaired.matrix.sensitivities):
                assert np.linalg.eigvalsh(factor).min() >= -1e-9 * np.abs(factor).max()
        else:  # each eigenvalue sum is ≥ 0 again
            assert min(s.min() for s in repaired.matrix.sums) >= 0.0
    with pytest.raises(NotPositiveDefinite, match="cannot remove"):
        forget(posterior, np.zeros((41, 3)), np.zeros(41))


@pytest.mark.parametrize("kind", ["kfac", "ekfac", "subnetwork"])
def test_evidence_tuning_rescales_the_structure_like_a_refit(kind):
    """Marginal-likelihood tuning keeps θ* and rescales the stored curvature: it must equal a fit with the
    tuned prior and noise (the subnetwork keeps its weights: the ranking of diag + α does not change)."""
    from bayesunlearn.posteriors.laplace import optimize_hyperparameters

    model, theta, x, y = problem()
    posterior = fit_laplace(model, theta, x, y, kind, subnetwork_size=30)
    tuned = optimize_hyperparameters(posterior, x, y)
    assert tuned.model.noise_std != model.noise_std
    refit = fit_laplace(tuned.model, theta, x, y, kind, subnetwork_size=30)
    close(tuned.dense_precision(), refit.dense_precision())
    precision = refit.dense_precision()
    f, _ = outputs_and_jacobians(model.spec, theta, x)
    m, p = tuned.model, len(theta)
    expected = (-0.5 * np.sum((y - f) ** 2) / m.noise_std**2 - len(y) * np.log(m.noise_std * np.sqrt(2 * np.pi))
                - 0.5 * m.prior_precision * theta @ theta + 0.5 * p * np.log(m.prior_precision)
                - 0.5 * np.linalg.slogdet(precision)[1])
    assert log_marginal_likelihood(tuned, x, y) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("kind", ["kfac", "ekfac", "subnetwork"])
def test_forgetting_nothing_changes_nothing_and_forgetting_everything_leaves_the_prior(kind):
    model, theta, x, y = problem()
    posterior = fit_laplace(model, theta, x, y, kind, subnetwork_size=30)
    same, _ = forget(posterior, x[:0], y[:0])
    close(same.mean, posterior.mean, 1e-14)
    close(same.dense_precision(), posterior.dense_precision(), 1e-14)
    empty, _ = forget(posterior, x, y, DivideOptions(repair="clip"))
    close(empty.dense_precision(), model.prior_precision * np.eye(len(theta)), 1e-9)
    _, gradient = data_curvature(model, theta, x, y)
    close(empty.mean, theta + gradient / model.prior_precision, 1e-9)  # the Newton step to the prior's mode


def test_the_damped_step_models_the_forgotten_records_with_their_own_curvature():
    """For KFAC the division's H_f = Λ − Λ_r can be indefinite; the damped step's quadratic model uses the
    forgotten records' own KFAC, a positive semi-definite curvature."""
    from bayesunlearn.unlearning.divide import records_curvature

    model, theta, x, y = problem()
    posterior = fit_laplace(model, theta, x, y, "kfac")
    curvature = records_curvature(posterior, x[:6], y[:6])
    v = np.random.default_rng(5).normal(size=(20, len(theta)))
    assert min(u @ curvature.apply_model(u) for u in v) >= 0
    own = kronecker_factors(model, theta, x[:6], y[:6])
    expected = np.concatenate([(a @ block @ g / 6).ravel() for a, g, block in
                               zip(own.inputs, own.sensitivities, posterior.matrix._blocks(v[0]), strict=True)])
    close(curvature.apply_model(v[0]), expected, 1e-12)
    damped, report = forget(posterior, x[:6], y[:6], DivideOptions(mean_update="damped"))
    assert 0 < report.step_length <= 1
