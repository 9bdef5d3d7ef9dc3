"""EK-FAC (posteriors/ekfac.py): its sums against the dense GGN rotated into KFAC's bases, the cases where it
is exact, and forgetting against a fit on the retained records at the same bases. Every oracle holds at any
θ*, so no training."""

from __future__ import annotations

import numpy as np
import pytest

from bayesunlearn.kinds import KINDS
from bayesunlearn.model.curvature import data_curvature, eigenbases, kronecker_factors
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.network import MLPSpec, outputs_and_jacobians
from bayesunlearn.posteriors.laplace import data_curvature as kind_curvature, fit_laplace
from bayesunlearn.unlearning.divide import forget
from test_kronecker import (algebra_agrees_with_the_dense_form, close, composes_restores_and_loads, layer_slices,
                            problem)

LIKELIHOODS = ("gaussian", "bernoulli", "categorical")


def classifier_problem(likelihood: str, hidden=(5, 4), n=40, seed=0):
    """A random network and records of any likelihood (no training: every oracle holds at any θ)."""
    if likelihood == "gaussian":
        return problem(hidden, n, seed)
    rng = np.random.default_rng(seed)
    outputs = 3 if likelihood == "categorical" else 1
    model = RegressionModel(MLPSpec(3, hidden, outputs=outputs), 0.7, 1.0, likelihood)
    x = rng.normal(size=(n, 3))
    return model, rng.normal(0, 0.6, model.spec.n_params), x, rng.integers(0, outputs + (outputs == 1), n) * 1.0


def rotated_blocks(model, theta, x, y):
    """Per layer: (the basis Q_A ⊗ Q_G, the exact GGN block), the GGN computed densely from the Jacobians."""
    ggn, _ = data_curvature(model, theta, x, y)
    left, right = eigenbases(kronecker_factors(model, theta, x, y))
    return [(np.kron(a, g), ggn[cols, cols]) for a, g, cols in zip(left, right, layer_slices(model.spec), strict=True)]


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_the_sums_are_the_exact_ggn_block_rotated_into_kfacs_bases(likelihood):
    """s_l = diag(Bᵀ GGN_l B), B = Q_A ⊗ Q_G; and EK-FAC is never further from the block than KFAC (both
    are diagonal in B, and s is the closest diagonal in Frobenius norm)."""
    model, theta, x, y = classifier_problem(likelihood)
    ekfac = fit_laplace(model, theta, x, y, "ekfac")
    kfac = fit_laplace(model, theta, x, y, "kfac").dense_precision()
    alpha, errors = model.prior_precision, []
    for (basis, block), s, cols in zip(rotated_blocks(model, theta, x, y), ekfac.matrix.sums,
                                       layer_slices(model.spec), strict=True):
        close(s.ravel(), np.diag(basis.T @ block @ basis))
        prior = alpha * np.eye(len(block))
        errors.append([np.linalg.norm(approximation[cols, cols] - prior - block) / np.linalg.norm(block)
                       for approximation in (ekfac.dense_precision(), kfac)])
    assert all(own <= other + 1e-12 for own, other in errors)
    assert errors[0][0] < errors[0][1]  # the first layer: the refitted eigenvalues are strictly closer


def test_a_records_projection_is_its_jacobian_row_in_the_basis():
    """One record's sums are the squares of (Q_A ⊗ Q_G)ᵀ J_i, its Jacobian row (÷σ) rotated: no P-vector
    is formed for it, and the product form agrees with the dense one."""
    from bayesunlearn.model.curvature import eigenbasis_sums

    model, theta, x, y = problem()
    left, right = eigenbases(kronecker_factors(model, theta, x, y))
    _, jac = outputs_and_jacobians(model.spec, theta, x)
    for i in (0, 7, 31):
        sums = eigenbasis_sums(model, theta, x[i:i + 1], y[i:i + 1], left, right).sums
        for a, g, s, cols in zip(left, right, sums, layer_slices(model.spec), strict=True):
            close(s.ravel(), (np.kron(a, g).T @ jac[i, cols] / model.noise_std) ** 2)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_one_record_gives_the_exact_ggn_blocks(likelihood):
    """A record's GGN block is ããᵀ ⊗ G_i, which KFAC's bases of that record diagonalise exactly."""
    model, theta, x, y = classifier_problem(likelihood, n=1)
    precision = fit_laplace(model, theta, x, y, "ekfac").dense_precision()
    ggn, _ = data_curvature(model, theta, x, y)
    for cols in layer_slices(model.spec):
        close(precision[cols, cols], ggn[cols, cols] + model.prior_precision * np.eye(cols.stop - cols.start))


def test_a_gaussian_network_without_hidden_layers_and_a_gaussian_output_layer_are_exact():
    model, theta, x, y = problem(hidden=())
    close(fit_laplace(model, theta, x, y, "ekfac").dense_precision(),
          fit_laplace(model, theta, x, y, "full_ggn").dense_precision())
    model, theta, x, y = problem()
    last = fit_laplace(model, theta, x, y, "last_layer").dense_precision()
    close(fit_laplace(model, theta, x, y, "ekfac").dense_precision()[-len(last):, -len(last):], last)


def test_the_matrix_algebra_and_the_predictive_agree_with_the_dense_form():
    algebra_agrees_with_the_dense_form("ekfac")
    model, theta, x, y = problem()
    posterior = fit_laplace(model, theta, x, y, "ekfac")
    f, jac = outputs_and_jacobians(model.spec, theta, x[:7])
    mean, variance = posterior.predictive(x[:7])  # the linearised predictive at μ = θ*
    close(mean, f)
    covariance = np.linalg.inv(posterior.dense_precision())
    close(variance, np.einsum("ij,jk,ik->i", jac, covariance, jac) + model.noise_std**2)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_forgetting_equals_ekfac_of_the_retained_records_at_the_same_bases(likelihood, tmp_path):
    model, theta, x, y = classifier_problem(likelihood, n=60)
    posterior = fit_laplace(model, theta, x, y, "ekfac")
    forgotten = np.zeros(len(x), dtype=bool)
    forgotten[[3, 8, 15, 16, 40, 51]] = True
    unlearned, report = forget(posterior, x[forgotten], y[forgotten])
    bases = posterior.matrix.left, posterior.matrix.right
    data = kind_curvature(KINDS["ekfac"], model, theta, x[~forgotten], y[~forgotten], bases=bases)
    refit = fit_laplace(model, theta, x[~forgotten], y[~forgotten], "ekfac", data)
    assert (report.solver, report.repair, unlearned.matrix.count) == ("ekfac", "none", 54)
    close(unlearned.dense_precision(), refit.dense_precision())
    g_f = kronecker_factors(model, theta, x[forgotten], y[forgotten]).gradient
    close(unlearned.mean, theta + np.linalg.solve(refit.dense_precision(), g_f))  # the Newton step
    loaded = composes_restores_and_loads(posterior, unlearned, x, y, forgotten, tmp_path)
    assert loaded.matrix.count == 54
    for a, b in zip((*loaded.matrix.left, *loaded.matrix.right), (*bases[0], *bases[1]), strict=True):
        assert np.array_equal(a, b)  # the bases are kept, bit for bit


def test_the_first_pass_alone_is_not_a_fit():
    model, theta, x, y = problem()
    with pytest.raises(ValueError, match="sums at its bases"):
        fit_laplace(model, theta, x, y, "ekfac", (kronecker_factors(model, theta, x, y), np.zeros(len(theta))))
