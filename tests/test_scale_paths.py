"""The large-problem code paths (batched curvature, in-place BLAS/LAPACK updates) agree with the small ones."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("structure", ["full_ggn", "diag_ggn", "last_layer"])
def test_batched_curvature_matches_one_shot(fitted, monkeypatch, structure):
    from bayesunlearn import curvature
    from bayesunlearn.posterior import GaussianPosterior

    index = GaussianPosterior(fitted.model, fitted.theta, np.zeros(0), fitted.theta, structure).index
    one = curvature.structured_curvature(fitted.model, fitted.theta, fitted.x, fitted.y, structure, index)
    monkeypatch.setattr(curvature, "JACOBIAN_BUDGET", 7 * fitted.model.spec.n_params)
    assert len(curvature.row_batches(len(fitted.x), fitted.model.spec.n_params)) > 1
    batched = curvature.structured_curvature(fitted.model, fitted.theta, fitted.x, fitted.y, structure, index)
    for a, b in zip(one, batched, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())
    if structure == "full_ggn":
        np.testing.assert_array_equal(batched[0], batched[0].T)


def test_dense_helpers_match_numpy():
    from bayesunlearn import dense

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
    f = np.asfortranarray(spd)
    np.testing.assert_allclose(dense.times(f, u), spd @ u, rtol=1e-13, atol=1e-12)


def test_in_place_downdate_matches_copying(fitted):
    from bayesunlearn.laplace import fit_laplace
    from bayesunlearn.unlearn import forget

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
