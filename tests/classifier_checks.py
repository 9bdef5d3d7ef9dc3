"""Checks every classifier likelihood's structures must pass at a fitted θ*: each structure agrees with the
full GGN, forgetting composes, relearning restores, and the forgotten precision is the structure refitted
on the retained records (oracle 4)."""

from __future__ import annotations

import numpy as np


def forget_mask(n: int, size: int, seed: int) -> np.ndarray:
    """`size` records of n, chosen at random (seeded)."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:size]] = True
    return mask


def fitted(model, x: np.ndarray, y: np.ndarray) -> tuple:
    """The classifier at its MAP (Adam, then Levenberg–Marquardt on the likelihood's GGN) and 12 records to
    forget: (model, x, y, θ*, the fit's report, mask)."""
    from bayesunlearn.io.sections import Train
    from bayesunlearn.model.training import fit_map

    theta, info = fit_map(model, x, y, model.spec.init(0), Train(adam_steps=3000, polish_iterations=300,
                                                                 grad_tolerance=1e-6))
    return model, x, y, theta, info, forget_mask(len(x), 12, seed=5)


def composes_and_restores(model, x: np.ndarray, y: np.ndarray, theta: np.ndarray, mask: np.ndarray,
                          kind: str) -> None:
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget, relearn

    original = fit_laplace(model, theta, x, y, kind, subnetwork_size=20)
    first, second = np.flatnonzero(mask)[:5], np.flatnonzero(mask)[5:]
    at_once, _ = forget(original, x[mask], y[mask])
    step, _ = forget(original, x[first], y[first])
    in_steps, _ = forget(step, x[second], y[second])
    np.testing.assert_allclose(in_steps.mean, at_once.mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(in_steps.dense_precision(), at_once.dense_precision(), rtol=1e-8, atol=1e-9)
    restored, _ = relearn(at_once, x[mask], y[mask])
    np.testing.assert_allclose(restored.mean, original.mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(restored.dense_precision(), original.dense_precision(), rtol=1e-8, atol=1e-9)


def equals_the_refit(model, x: np.ndarray, y: np.ndarray, theta: np.ndarray, mask: np.ndarray, kind: str) -> None:
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget

    unlearned, _ = forget(fit_laplace(model, theta, x, y, kind), x[mask], y[mask])
    refit = fit_laplace(model, theta, x[~mask], y[~mask], kind)
    np.testing.assert_allclose(unlearned.dense_precision(), refit.dense_precision(), rtol=1e-9, atol=1e-9)


def structures_agree(model, x: np.ndarray, y: np.ndarray, theta: np.ndarray, indices: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The diagonal, last-layer and selected-weights GGNs are the full GGN's parts; returns the full (GGN, g)."""
    from bayesunlearn.model.curvature import data_curvature, diagonal_ggn, restricted_ggn, selected_ggn

    ggn, grad = data_curvature(model, theta, x, y)
    diagonal, diag_grad = diagonal_ggn(model, theta, x, y)
    np.testing.assert_allclose(diagonal, np.diag(ggn), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(diag_grad, grad, rtol=1e-11, atol=1e-13)
    last = slice(model.spec.n_params - model.spec.n_last_layer, None)
    block, _ = restricted_ggn(model, theta, x, y, last, diagonal=False)
    np.testing.assert_allclose(block, ggn[last, last], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(selected_ggn(model, theta, x, indices), ggn[np.ix_(indices, indices)],
                               rtol=1e-11, atol=1e-13)
    return ggn, grad
