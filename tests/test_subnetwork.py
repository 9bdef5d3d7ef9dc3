"""Subnetwork Laplace (posteriors/subnetwork.py): the full GGN when it covers every weight, the full GGN
restricted to what it covers otherwise, and forgetting equal to a fit on the retained records."""

from __future__ import annotations

import numpy as np

from bayesunlearn.kinds import KINDS
from bayesunlearn.model.curvature import data_curvature as full_curvature
from bayesunlearn.model.curvature import diagonal_ggn, selected_jacobian
from bayesunlearn.model.network import outputs_and_jacobians
from bayesunlearn.posteriors.laplace import data_curvature, fit_laplace
from bayesunlearn.posteriors.subnetwork import choose
from bayesunlearn.unlearning.divide import forget
from test_kronecker import close, composes_restores_and_loads, problem


def test_the_curvature_without_a_jacobian_equals_the_one_with_it():
    model, theta, x, y = problem()
    f, jac = outputs_and_jacobians(model.spec, theta, x)
    diagonal, gradient = diagonal_ggn(model, theta, x, y)
    close(diagonal, np.sum(jac * jac, axis=0) / model.noise_std**2, 1e-12)
    close(gradient, jac.T @ (f - y) / model.noise_std**2, 1e-12)
    indices = np.array([0, 5, 17, 30, model.spec.n_params - 1])
    close(selected_jacobian(model, theta, x, indices), jac[:, indices], 1e-14)


def test_every_weight_gives_the_full_ggn_and_its_forgetting():
    model, theta, x, y = problem()
    full = fit_laplace(model, theta, x, y, "full_ggn")
    sub = fit_laplace(model, theta, x, y, "subnetwork", subnetwork_size=model.spec.n_params)
    close(sub.dense_precision(), full.dense_precision(), 1e-12)
    forgotten = np.arange(len(x)) % 7 == 0
    a, _ = forget(full, x[forgotten], y[forgotten])
    b, report = forget(sub, x[forgotten], y[forgotten])
    assert report.solver == "subnetwork woodbury"
    close(b.mean, a.mean, 1e-9)
    close(b.dense_precision(), a.dense_precision(), 1e-9)
    close(b.predictive(x)[1], a.predictive(x)[1], 1e-9)


def test_a_smaller_subnetwork_is_the_full_ggn_restricted_to_it():
    model, theta, x, y = problem()
    sub = fit_laplace(model, theta, x, y, "subnetwork", subnetwork_size=20)
    full = fit_laplace(model, theta, x, y, "full_ggn").dense_precision()
    indices = sub.matrix.indices
    diagonal = np.diag(full)
    assert len(indices) == 20 and np.all(np.diff(indices) > 0)
    assert diagonal[indices].max() <= np.delete(diagonal, indices).min()  # the largest marginal variances
    close(sub.dense_precision()[np.ix_(indices, indices)], full[np.ix_(indices, indices)], 1e-12)
    rest = np.delete(np.arange(model.spec.n_params), indices)
    close(np.diag(sub.dense_precision())[rest], diagonal[rest], 1e-12)
    dense = sub.dense_precision()
    assert np.count_nonzero(dense) == 20 * 20 + len(rest)  # nothing between the block and the rest
    _, jac = outputs_and_jacobians(model.spec, theta, x[:9])
    close(sub.matrix.variance(jac), np.einsum("ij,jk,ik->i", jac, np.linalg.inv(dense), jac))


def test_forgetting_equals_the_fit_on_the_retained_records_and_composes(tmp_path):
    model, theta, x, y = problem(n=60)
    posterior = fit_laplace(model, theta, x, y, "subnetwork", subnetwork_size=25)
    forgotten = np.zeros(len(x), dtype=bool)
    forgotten[[2, 9, 11, 33, 34, 58]] = True
    unlearned, report = forget(posterior, x[forgotten], y[forgotten])
    same_weights = data_curvature(KINDS["subnetwork"], model, theta, x[~forgotten], y[~forgotten],
                                  posterior.matrix.indices)
    refit = fit_laplace(model, theta, x[~forgotten], y[~forgotten], "subnetwork", same_weights)
    close(unlearned.dense_precision(), refit.dense_precision())
    _, g_f = full_curvature(model, theta, x[forgotten], y[forgotten])
    close(unlearned.mean, theta + np.linalg.solve(refit.dense_precision(), g_f))  # the Newton step
    loaded = composes_restores_and_loads(posterior, unlearned, x, y, forgotten, tmp_path)
    assert np.array_equal(loaded.matrix.indices, unlearned.matrix.indices)


def test_the_choice_is_deterministic_with_ties():
    assert choose(np.array([3.0, 1.0, 1.0, 2.0, 1.0]), 1.0, 2).tolist() == [1, 2]
    assert choose(np.ones(3), 1.0, 10).tolist() == [0, 1, 2]
    # a rounding apart is a tie too (sums over shards differ so): the lower index, not the smaller value
    assert choose(np.array([3.0, 1e-12, 0.0, 2.0]), 1.0, 1).tolist() == [1]
    assert choose(np.array([3.0, 1e-6, 0.0, 2.0]), 1.0, 1).tolist() == [2]  # a real difference still counts
    assert choose(np.array([0.0, 2.0, 5e-10, 1.0, 0.0]), 1.0, 2).tolist() == [0, 2]  # the band: 1 ± 1e-9


def test_a_block_held_as_covariance_alone_forgets_like_the_dense_one():
    """Above 2,000 weights the block is Σ alone and forgetting a few records is an in-place-capable Woodbury
    downdate whose smallest eigenvalue is not computed: the result still equals the fit on the retained records."""
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec
    from bayesunlearn.posteriors.matrices import CovarianceOnly

    rng = np.random.default_rng(6)
    model = RegressionModel(MLPSpec(3, (50, 40)), prior_precision=1.0, noise_std=0.3)
    theta, x = rng.normal(0, 0.3, model.spec.n_params), rng.normal(size=(40, 3))
    y = np.sin(x[:, 0])
    posterior = fit_laplace(model, theta, x, y, "subnetwork", subnetwork_size=2050)
    assert isinstance(posterior.matrix.block, CovarianceOnly)
    unlearned, report = forget(posterior, x[:5], y[:5])
    assert report.solver == "subnetwork woodbury" and np.isnan(report.min_eig_precision)
    assert report.n_negative_eigs == 0 and report.repair == "none"
    same_weights = data_curvature(KINDS["subnetwork"], model, theta, x[5:], y[5:], posterior.matrix.indices)
    refit = fit_laplace(model, theta, x[5:], y[5:], "subnetwork", same_weights)
    close(unlearned.matrix.covariance(), refit.matrix.covariance(), 1e-9)
    _, g_f = full_curvature(model, theta, x[:5], y[:5])
    close(unlearned.mean, theta + refit.matrix.covariance() @ g_f, 1e-9)
