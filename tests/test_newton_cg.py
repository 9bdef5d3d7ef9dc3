"""`mean_update: cg` (unlearning/newton_cg.py): the GGN-vector product against the dense GGN, the CG step against
the full GGN's Newton step for every Laplace structure (and at 10k parameters against a dense solve), composition,
relearning, the report and the settings. Every oracle holds at any θ*, so no training."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bayesunlearn.errors import ConfigError
from bayesunlearn.io.sections import Divide, DivideOptions
from bayesunlearn.model.curvature import data_curvature
from bayesunlearn.model.network import MLPSpec, gauss_newton_product, outputs_and_jacobians
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.posteriors.laplace import fit_laplace
from bayesunlearn.unlearning.divide import forget, relearn
from bayesunlearn.unlearning.methods import apply
from test_ekfac import LIKELIHOODS, classifier_problem

TIGHT = DivideOptions(mean_update="cg", cg_tolerance=1e-13, cg_iterations=2000)


def masked(n: int, rows) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_the_ggn_vector_product_is_the_dense_ggn_times_the_vector(likelihood, activation):
    model, theta, x, y = classifier_problem(likelihood)
    model = RegressionModel(MLPSpec(3, (5, 4), activation, model.spec.outputs), 0.7, model.noise_std, likelihood)
    ggn, _ = data_curvature(model, theta, x, y)
    v = np.random.default_rng(2).normal(size=len(theta))
    product = gauss_newton_product(model.spec, theta, x, v, model.output_hessian_times)
    np.testing.assert_allclose(product, ggn @ v, rtol=0, atol=1e-12 * np.abs(ggn @ v).max())


@pytest.mark.parametrize("kind", ["full_ggn", "full_hessian", "diag_ggn", "kfac", "ekfac", "subnetwork"])
@pytest.mark.parametrize("likelihood", ["gaussian", "categorical"])
def test_the_cg_step_of_every_structure_is_the_full_ggns_newton_step(kind, likelihood, request):
    """The precision stays the structure's; the mean takes the full GGN's step, preconditioned or not."""
    if kind == "full_hessian":
        request.getfixturevalue("tf")  # the exact Hessian is TensorFlow's
    model, theta, x, y = classifier_problem(likelihood, n=60)
    forgotten = masked(60, [2, 9, 10, 33, 47])
    full, _ = forget(fit_laplace(model, theta, x, y, "full_ggn"), x[forgotten], y[forgotten])
    original = fit_laplace(model, theta, x, y, kind, subnetwork_size=20)
    structure, _ = forget(original, x[forgotten], y[forgotten], DivideOptions(repair="clip"))
    for preconditioner in ("structure", "none"):
        options = TIGHT.model_copy(update={"cg_preconditioner": preconditioner, "repair": "clip"})
        unlearned, report = forget(original, x[forgotten], y[forgotten], options, retained=(x[~forgotten],
                                                                                             y[~forgotten]))
        np.testing.assert_allclose(unlearned.mean, full.mean, rtol=0, atol=1e-9 * np.abs(full.mean).max())
        np.testing.assert_array_equal(unlearned.dense_precision(), structure.dense_precision())
        assert report.cg.converged and report.cg.passes == report.cg.iterations > 0


def test_the_last_layers_cg_step_is_its_exact_newton_step():
    """The last layer's Gaussian covers its own block, where the division is already exact: CG over that block
    lands on the same step, and the other weights stay at θ*."""
    model, theta, x, y = classifier_problem("bernoulli", n=60)
    forgotten = masked(60, [1, 4, 5, 20, 21, 50])
    original = fit_laplace(model, theta, x, y, "last_layer")
    newton, _ = forget(original, x[forgotten], y[forgotten])
    cg, _ = forget(original, x[forgotten], y[forgotten], TIGHT, retained=(x[~forgotten], y[~forgotten]))
    np.testing.assert_allclose(cg.mean, newton.mean, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(cg.mean[: original.index.start], theta[: original.index.start])


@pytest.mark.parametrize("kind", ["kfac", "ekfac"])
def test_forgetting_in_two_halves_equals_at_once_and_relearning_restores(kind):
    model, theta, x, y = classifier_problem("bernoulli", n=80)
    first, second = masked(80, [3, 7, 11, 40]), masked(80, [12, 13, 60, 71, 79])
    both = first | second
    original = fit_laplace(model, theta, x, y, kind)
    at_once, _ = forget(original, x[both], y[both], TIGHT, retained=(x[~both], y[~both]))
    half, _ = forget(original, x[first], y[first], TIGHT, retained=(x[~first], y[~first]))
    assert np.any(half.mean != half.linearisation_point)  # the second step starts away from θ*
    in_halves, _ = forget(half, x[second], y[second], TIGHT, retained=(x[~both], y[~both]))
    scale = np.abs(at_once.mean - theta).max()
    np.testing.assert_allclose(in_halves.mean, at_once.mean, rtol=0, atol=1e-10 * scale)
    restored, _ = relearn(at_once, x[both], y[both], TIGHT, held=(x, y))
    np.testing.assert_allclose(restored.mean, original.mean, rtol=0, atol=1e-10 * scale)


def test_the_report_states_the_cost_and_a_spent_budget_keeps_its_iterate():
    model, theta, x, y = classifier_problem("gaussian", n=60)
    forgotten = masked(60, [0, 1, 2])
    original = fit_laplace(model, theta, x, y, "kfac")
    retained = (x[~forgotten], y[~forgotten])
    _, report = forget(original, x[forgotten], y[forgotten], DivideOptions(mean_update="cg"), retained=retained)
    row = report.to_dict()
    assert row["cg_converged"] and row["cg_residual"] <= 1e-6 and row["cg_passes"] == row["cg_iterations"] > 1
    short, report = forget(original, x[forgotten], y[forgotten],
                           DivideOptions(mean_update="cg", cg_iterations=1), retained=retained)
    assert (report.cg.iterations, report.cg.converged) == (1, False) and report.cg.residual > 1e-6
    assert np.any(short.mean != original.mean)
    _, plain = forget(original, x[forgotten], y[forgotten])
    assert not any(key.startswith("cg_") for key in plain.to_dict())  # other methods' reports keep their keys


def test_a_cg_method_reads_the_retained_records():
    model, theta, x, y = classifier_problem("gaussian", n=40)
    method = Divide(posterior="ekfac", operator="divide", mean_update="cg")
    assert method.reads_retained
    original = fit_laplace(model, theta, x, y, "ekfac")
    with pytest.raises(ConfigError, match="mean_update: cg reads the retained records"):
        apply(method, original, x[:4], y[:4])
    _, row = apply(method, original, x[:4], y[:4], (x[4:], y[4:]))
    assert row["status"] == "ok" and row["cg_converged"]


def test_at_ten_thousand_parameters_cg_to_tolerance_is_the_dense_ggn_newton_step():
    """P = 10,273 and 270 retained records: the dense oracle solves Λ_r δ = g_f in the records' space,
    Λ_r⁻¹g = (g − J_rᵀ(σ²α I + J_r J_rᵀ)⁻¹ J_r g)/α, exact to rounding; CG never forms J or a P × P matrix."""
    rng = np.random.default_rng(0)
    model = RegressionModel(MLPSpec(8, (96, 96)), prior_precision=1.0, noise_std=1.0)
    p = model.spec.n_params
    x = rng.normal(size=(300, 8))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * rng.normal(size=300)
    theta = rng.normal(size=p) / np.sqrt(np.repeat([9, 97, 97], [9 * 96, 97 * 96, 97]))  # LeCun-like scales
    forgotten = masked(300, rng.permutation(300)[:30])
    f_r, j_r = outputs_and_jacobians(model.spec, theta, x[~forgotten])
    f_f, j_f = outputs_and_jacobians(model.spec, theta, x[forgotten])
    gradient = j_f.T @ (f_f - y[forgotten])  # σ = 1, α = 1
    exact = gradient - j_r.T @ np.linalg.solve(np.eye(len(j_r)) + j_r @ j_r.T, j_r @ gradient)
    original = fit_laplace(model, theta, x, y, "ekfac")
    start = time.perf_counter()
    unlearned, report = forget(original, x[forgotten], y[forgotten],
                               DivideOptions(mean_update="cg", cg_tolerance=1e-10, cg_iterations=2000),
                               retained=(x[~forgotten], y[~forgotten]))
    seconds = time.perf_counter() - start
    assert np.abs(unlearned.mean - theta - exact).max() <= 1e-8 * max(1.0, np.abs(exact).max())
    assert report.cg.converged and report.cg.residual <= 1e-10 and report.cg.passes == report.cg.iterations
    print(f"P={p}: {report.cg.iterations} iterations, residual {report.cg.residual:.2e}, {seconds:.2f} s, "
          f"max |δ − δ_dense| {np.abs(unlearned.mean - theta - exact).max():.2e}")
