"""Checks every classifier likelihood's structures must pass at a fitted θ*: each structure agrees with the
full GGN, forgetting composes, relearning restores, and the forgotten precision is the structure refitted
on the retained records (oracle 4)."""

from __future__ import annotations

import functools

import numpy as np

K = 3  # classes of the categorical examples


def logistic_data(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    logits = x @ rng.standard_normal(d) + 0.3
    return x, (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float64)


def softmax_data(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    logits = x @ rng.standard_normal((d, K)) + np.array([0.2, -0.1, 0.0])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return x, np.array([rng.choice(K, p=row) for row in p], dtype=np.float64)


def logistic_map(phi: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Logistic regression's MAP by Newton's method on the closed-form gradient and Hessian."""
    theta = np.zeros(phi.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-phi @ theta))
        step = np.linalg.solve(phi.T @ (phi * (p * (1 - p))[:, None]) + alpha * np.eye(len(theta)),
                               phi.T @ (p - y) + alpha * theta)
        theta -= step
        if np.abs(step).max() < 1e-15:
            break
    return theta


def forget_mask(n: int, size: int, seed: int) -> np.ndarray:
    """`size` records of n, chosen at random (seeded)."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:size]] = True
    return mask


@functools.cache
def logistic_problem() -> tuple:
    """Logistic regression (a network without hidden layers, Bernoulli likelihood) as `linear_problem`."""
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    x, y = logistic_data(120, 3, seed=4)
    model = RegressionModel(MLPSpec(3, ()), prior_precision=0.5, noise_std=1.0, likelihood="bernoulli")
    return linear_problem(model, x, y, logistic_map)


def linear_problem(model, x: np.ndarray, y: np.ndarray, closed_form_map) -> tuple:
    """A model without hidden layers is a generalised linear model on Φ = [x, 1]: (model, x, y, Φ, 15 records to
    forget, the MAP in closed form)."""
    phi = np.hstack([x, np.ones((len(x), 1))])
    return model, x, y, phi, forget_mask(len(x), 15, seed=2), closed_form_map(phi, y, model.prior_precision)


def newton_reaches_the_retrained_map(problem: tuple, closed_form_map):
    """Forgetting is the first Newton step on the retained objective (full GGN, no repair, a whole step); more
    steps converge quadratically to the retrained MAP, to 1e-9. Returns the unlearned posterior."""
    from bayesunlearn.model.curvature import data_curvature
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget

    model, x, y, phi, mask, theta_star = problem
    unlearned, report = forget(fit_laplace(model, theta_star, x, y, "full_ggn"), x[mask], y[mask])
    assert report.repair == "none" and report.step_length == 1.0
    retrained = closed_form_map(phi[~mask], y[~mask], model.prior_precision)
    prior = model.prior_precision * np.eye(model.spec.n_params)
    theta, errors = unlearned.mean, []
    for _ in range(8):
        errors.append(np.abs(theta - retrained).max())
        hessian, grad = data_curvature(model, theta, x[~mask], y[~mask])
        theta = theta - np.linalg.solve(hessian + prior, grad + model.prior_precision * theta)
    np.testing.assert_allclose(theta, retrained, rtol=1e-9, atol=1e-9)
    assert errors[1] < errors[0] ** 1.5  # quadratic convergence: the curvature is the right one
    return unlearned


def _fitted(model, x: np.ndarray, y: np.ndarray) -> tuple:
    from bayesunlearn.io.sections import Train
    from bayesunlearn.model.training import fit_map

    theta, info = fit_map(model, x, y, model.spec.init(0), Train(adam_steps=3000, polish_iterations=300,
                                                                 grad_tolerance=1e-6))
    return model, x, y, theta, info, forget_mask(len(x), 12, seed=5)


@functools.cache
def classifier(likelihood: str) -> tuple:
    """A 2-8-1 (Bernoulli) or 2-8-3 (categorical) tanh classifier on data a linear model cannot separate, at
    its MAP (Adam, then Levenberg–Marquardt on the likelihood's GGN), and 12 records to forget:
    (model, x, y, θ*, the fit's report, mask). Fitted once per test process."""
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    if likelihood == "bernoulli":
        x, y = logistic_data(150, 2, seed=7)
        y = np.where(np.abs(x[:, 0] * x[:, 1]) > 0.4, 1.0 - y, y)
        spec = MLPSpec(2, (8,))
    else:
        x, y = softmax_data(150, 2, seed=7)
        y = np.where(np.abs(x[:, 0] * x[:, 1]) > 0.5, (y + 1) % K, y)
        spec = MLPSpec(2, (8,), outputs=K)
    return _fitted(RegressionModel(spec, prior_precision=1.0, noise_std=1.0, likelihood=likelihood), x, y)


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
