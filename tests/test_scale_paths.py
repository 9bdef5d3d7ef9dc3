"""The large-problem code paths (batched curvature, in-place BLAS/LAPACK updates) agree with the small ones."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("structure", ["full_ggn", "diag_ggn", "last_layer"])
def test_batched_curvature_matches_one_shot(fitted, monkeypatch, structure):
    from bayesunlearn.model import curvature
    from bayesunlearn.kinds import KINDS
    from bayesunlearn.posteriors.laplace import data_curvature

    one = data_curvature(KINDS[structure], fitted.model, fitted.theta, fitted.x, fitted.y)
    monkeypatch.setattr(curvature, "JACOBIAN_BUDGET", 7 * fitted.model.spec.n_params)
    assert len(curvature.row_batches(len(fitted.x), fitted.model.spec.n_params)) > 1
    batched = data_curvature(KINDS[structure], fitted.model, fitted.theta, fitted.x, fitted.y)
    for a, b in zip(one, batched, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())
    if structure == "full_ggn":
        np.testing.assert_array_equal(batched[0], batched[0].T)


def test_dense_helpers_match_numpy():
    from bayesunlearn.numerics import dense

    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 60))
    spd = a @ a.T + np.eye(40)
    np.testing.assert_allclose(dense.inverse_spd(spd), np.linalg.inv(spd), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dense.inverse_spd(spd), dense.inverse_spd_small(spd), rtol=1e-10, atol=1e-12)
    u = rng.standard_normal((40, 5))
    for c in (spd.copy(), np.asfortranarray(spd)):
        out = dense.rank_update(c, u, -0.5)
        assert out is c
        np.testing.assert_allclose(c, spd - 0.5 * u @ u.T, rtol=1e-13, atol=1e-12)
        np.testing.assert_array_equal(c, c.T)
    for c in (spd.copy(), np.asfortranarray(spd)):
        out = dense.add_outer(c, u, -0.5)
        assert out is c
        np.testing.assert_allclose(c, spd - 0.5 * u @ u.T, rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(c, c.T, rtol=1e-15, atol=1e-15)
    for c in (spd, np.asfortranarray(spd)):
        np.testing.assert_allclose(dense.symmetric_times(c, u), spd @ u, rtol=1e-13, atol=1e-12)
    for c in (spd.copy(), np.asfortranarray(spd)):
        out = dense.inverse_spd(c, overwrite=True)
        assert out is c  # Σ in Λ's memory
        np.testing.assert_allclose(c, np.linalg.inv(spd), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(c, c.T)
    with pytest.raises(dense.NotPositiveDefinite):
        dense.inverse_spd(spd - 2 * np.eye(40) * np.linalg.eigvalsh(spd).max(), overwrite=True)


def test_in_place_downdate_matches_copying(fitted):
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget

    m = fitted.forget_mask
    copying, report = forget(fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y),
                             fitted.x[m], fitted.y[m])
    original = fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y)
    in_place, report_in_place = forget(original, fitted.x[m], fitted.y[m], in_place=True)
    assert report.solver == report_in_place.solver == "woodbury"
    assert np.shares_memory(in_place.covariance, original.covariance)
    for name in ("mean", "precision", "covariance"):
        a, b = getattr(copying, name), getattr(in_place, name)
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-11 * np.abs(a).max())


def test_covariance_form_matches_precision_form(fitted, monkeypatch, tmp_path):
    """A large full GGN is held as Σ only: every use of it agrees with the small (Λ and Σ) form."""
    from bayesunlearn.posteriors import laplace
    from bayesunlearn.posteriors.matrices import CovarianceOnly, matrix_from_arrays
    from bayesunlearn.posteriors.posterior import GaussianPosterior
    from bayesunlearn.unlearning.divide import forget, relearn

    def covariance_form(posterior):
        return isinstance(posterior.matrix, CovarianceOnly)

    m, x, y = fitted.forget_mask, fitted.x, fitted.y
    both = laplace.fit_laplace(fitted.model, fitted.theta, x, y)
    monkeypatch.setattr(laplace, "COVARIANCE_FORM_MIN_PARAMS", 0)
    lean = laplace.fit_laplace(fitted.model, fitted.theta, x, y)
    assert covariance_form(lean) and not covariance_form(both) and lean.n_covered == both.n_covered

    def close(a, b, rtol=1e-9):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())

    close(lean.covariance, both.covariance)
    close(lean.dense_precision(), both.precision)
    close(np.sort(lean.precision_eigenvalues()), np.sort(both.precision_eigenvalues()))
    for a, b in zip(lean.predictive(x[:20]), both.predictive(x[:20]), strict=True):
        close(a, b)
    assert laplace.log_marginal_likelihood(lean, x, y) == pytest.approx(laplace.log_marginal_likelihood(both, x, y),
                                                                        rel=1e-10)
    tuned_lean, tuned_both = laplace.optimize_hyperparameters(lean, x, y), laplace.optimize_hyperparameters(both, x, y)
    assert covariance_form(tuned_lean)
    assert tuned_lean.model.prior_precision == pytest.approx(tuned_both.model.prior_precision, rel=1e-6)
    assert tuned_lean.model.noise_std == pytest.approx(tuned_both.model.noise_std, rel=1e-6)
    close(tuned_lean.covariance, tuned_both.covariance, rtol=1e-6)

    reference, _ = forget(both, x[m], y[m])
    copy = lean.with_updates(matrix=CovarianceOnly(lean.covariance.copy()))
    for in_place in (False, True):
        unlearned, report = forget(copy, x[m], y[m], in_place=in_place)
        assert report.solver == "woodbury" and covariance_form(unlearned)
        close(unlearned.covariance, reference.covariance)
        close(unlearned.mean, reference.mean)
    assert np.shares_memory(unlearned.covariance, copy.covariance)  # the in-place one overwrote Σ
    restored, report = relearn(unlearned, x[m], y[m])  # the dense path keeps the form
    assert report.solver == "dense" and covariance_form(restored)
    close(restored.covariance, both.covariance, rtol=1e-7)

    lean.save(tmp_path / "lean.npz")
    loaded = GaussianPosterior.load(tmp_path / "lean.npz")
    assert covariance_form(loaded) and np.array_equal(loaded.covariance, lean.covariance)
    with pytest.raises(ValueError, match="needs a precision or a covariance"):
        matrix_from_arrays({}, 1.0)
