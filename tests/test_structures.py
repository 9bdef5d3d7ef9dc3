"""Laplace structures, repairs, mean updates, Woodbury and marginal-likelihood tuning."""

from __future__ import annotations

import numpy as np
import pytest

import blr

TOL = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def full(fitted):
    from bayesunlearn.posteriors.laplace import fit_laplace

    return fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y, "full_ggn")


def forgotten(fitted):
    f = fitted.forget_mask
    return fitted.x[f], fitted.y[f]


def test_woodbury_downdate_equals_the_dense_path(fitted, full):
    from bayesunlearn.io.sections import DivideOptions
    from bayesunlearn.unlearning.divide import forget

    fast, fast_report = forget(full, *forgotten(fitted), DivideOptions(woodbury=True))
    dense, dense_report = forget(full, *forgotten(fitted), DivideOptions(woodbury=False))
    assert (fast_report.solver, dense_report.solver) == ("woodbury", "dense")
    np.testing.assert_allclose(fast.mean, dense.mean, **TOL)
    np.testing.assert_allclose(fast.precision, dense.precision, **TOL)
    np.testing.assert_allclose(fast.covariance, dense.covariance, rtol=1e-9, atol=1e-9 * np.abs(dense.covariance).max())
    assert fast_report.min_eig_precision == pytest.approx(dense_report.min_eig_precision, rel=1e-9)


def test_diagonal_and_last_layer_agree_with_full_restricted_to_their_structure(fitted, full):
    from bayesunlearn.model.network import outputs_and_jacobians
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget

    x_f, y_f = forgotten(fitted)
    full_r, _ = forget(full, x_f, y_f)
    diag = fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y, "diag_ggn")
    np.testing.assert_allclose(diag.precision, np.diag(full.precision), **TOL)
    diag_r, report = forget(diag, x_f, y_f)
    np.testing.assert_allclose(diag_r.precision, np.diag(full_r.precision), **TOL)
    assert report.solver == "diagonal"

    last = fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y, "last_layer")
    idx = last.index
    np.testing.assert_allclose(last.precision, full.precision[idx, idx], **TOL)
    # closed form: Bayesian linear regression on the last layer's features [φ(x), 1]
    out, jac = outputs_and_jacobians(fitted.model.spec, fitted.theta, fitted.x)
    phi, f = jac[:, idx], fitted.forget_mask
    np.testing.assert_allclose(phi @ fitted.theta[idx], out, **TOL)  # the output is linear in the last layer
    m, target = fitted.model, fitted.y
    mean, _ = blr.posterior(phi, target, m.prior_precision, m.noise_std)
    mean_r, precision_r = blr.posterior(phi[~f], target[~f], m.prior_precision, m.noise_std)
    start = last.with_updates(mean=np.concatenate([fitted.theta[: idx.start], mean]))
    last_r, _ = forget(start, x_f, y_f)
    np.testing.assert_allclose(last_r.precision, precision_r, **TOL)
    np.testing.assert_allclose(last_r.mean[idx], mean_r, **TOL)
    np.testing.assert_array_equal(last_r.mean[: idx.start], fitted.theta[: idx.start])


def test_exact_hessian_equals_ggn_for_a_linear_model(tf):
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((30, 2)), rng.standard_normal(30)
    model = RegressionModel(MLPSpec(2, ()), 0.5, 0.3)
    theta = rng.standard_normal(3)
    np.testing.assert_allclose(fit_laplace(model, theta, x, y, "full_hessian").precision,
                               fit_laplace(model, theta, x, y, "full_ggn").precision, **TOL)


@pytest.fixture(scope="module")
def hessian_cluster(fitted):
    """The exact-Hessian posterior and the right input cluster: the case that goes indefinite."""
    from bayesunlearn.posteriors.laplace import fit_laplace

    post = fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y, "full_hessian")
    right = fitted.x[:, 0] > 0
    return post, fitted.x[right], fitted.y[right]


def test_indefinite_precision_is_reported_and_repaired_as_asked(hessian_cluster):
    from bayesunlearn.errors import NotPositiveDefinite
    from bayesunlearn.io.sections import DivideOptions
    from bayesunlearn.unlearning.divide import forget

    post, x_f, y_f = hessian_cluster
    with pytest.raises(NotPositiveDefinite, match=r"non-positive eigenvalues .*'clip' or 'damp'"):
        forget(post, x_f, y_f, DivideOptions(repair="refuse"))
    floor = post.model.prior_precision
    clipped, report = forget(post, x_f, y_f, DivideOptions(repair="clip"))
    assert report.n_negative_eigs > 0 and report.min_eig_precision < 0 and report.repair == "clip"
    assert np.linalg.eigvalsh(clipped.precision).min() == pytest.approx(floor, rel=1e-8)
    damped, report = forget(post, x_f, y_f, DivideOptions(repair="damp"))
    assert report.repair == "damp" and report.damping == pytest.approx(floor - report.min_eig_precision)
    assert np.linalg.eigvalsh(damped.precision).min() == pytest.approx(floor, rel=1e-6)


def test_mean_update_variants(fitted, full, hessian_cluster):
    from bayesunlearn.io.sections import DivideOptions
    from bayesunlearn.unlearning.divide import forget

    x_f, y_f = forgotten(fitted)
    kept, report = forget(full, x_f, y_f, DivideOptions(mean_update="none"))
    np.testing.assert_array_equal(kept.mean, full.mean)
    assert report.step_length == 0.0
    newton, _ = forget(full, x_f, y_f, DivideOptions(mean_update="newton"))
    damped, report = forget(full, x_f, y_f, DivideOptions(mean_update="damped"))
    assert 0.0 < report.step_length <= 1.0
    np.testing.assert_allclose(damped.mean - full.mean, report.step_length * (newton.mean - full.mean), **TOL)
    # forgetting a whole cluster moves the mode far: the quadratic model stops being trusted
    _, x_c, y_c = hessian_cluster
    _, cluster_report = forget(full, x_c, y_c, DivideOptions(mean_update="damped"))
    assert cluster_report.step_length < 1.0


def test_damped_step_is_the_full_step_when_the_model_is_quadratic(tf):
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec
    from bayesunlearn.io.sections import DivideOptions
    from bayesunlearn.unlearning.divide import forget

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, 2)), rng.standard_normal(40)
    model = RegressionModel(MLPSpec(2, ()), 1.0, 0.5)
    phi = np.hstack([x, np.ones((40, 1))])
    mean, _ = blr.posterior(phi, y, 1.0, 0.5)
    _, report = forget(fit_laplace(model, mean, x, y), x[:10], y[:10], DivideOptions(mean_update="damped"))
    assert report.step_length == 1.0


def test_laplace_evidence_is_exact_for_linear_regression_and_tuning_rescales_consistently(tf):
    from bayesunlearn.posteriors.laplace import fit_laplace, log_marginal_likelihood, optimize_hyperparameters
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    rng = np.random.default_rng(6)
    x = rng.standard_normal((50, 2))
    y = x @ [1.0, -0.5] + 0.3 * rng.standard_normal(50)
    model = RegressionModel(MLPSpec(2, ()), 2.0, 0.7)
    phi = np.hstack([x, np.ones((50, 1))])
    mean, _ = blr.posterior(phi, y, 2.0, 0.7)
    post = fit_laplace(model, mean, x, y)
    assert log_marginal_likelihood(post, x, y) == pytest.approx(blr.log_evidence(phi, y, 2.0, 0.7), rel=1e-10)
    tuned = optimize_hyperparameters(post, x, y)
    assert log_marginal_likelihood(tuned, x, y) > log_marginal_likelihood(post, x, y)
    assert tuned.model.noise_std == pytest.approx(0.3, rel=0.3)
    refit = fit_laplace(tuned.model, mean, x, y)
    np.testing.assert_allclose(tuned.precision, refit.precision, **TOL)


def test_method_specs_load_without_tensorflow():
    """gate/serve/summarize name methods; parsing them must not pay TensorFlow's start-up."""
    import subprocess
    import sys

    check = ("import sys, bayesunlearn.io.settings as s; s.load('params.yaml'); "
             "assert 'tensorflow' not in sys.modules, 'settings imported TensorFlow'")
    from conftest import REPO

    subprocess.run([sys.executable, "-c", check], check=True, cwd=REPO)


def test_kind_names_agree():
    """The settings accept exactly the kinds of the registry, and every kind can be built as a posterior."""
    import typing

    from bayesunlearn.kinds import KINDS, KindName

    assert set(typing.get_args(KindName)) == set(KINDS)
