"""The polish after Adam, and how a fit that stops short of `train.grad_tolerance` says so."""

from __future__ import annotations

import numpy as np
import pytest

from bayesunlearn.io.contracts import MapFit, RetrainReport, TrainReport
from bayesunlearn.io.sections import Train


@pytest.fixture(scope="module")
def problem(tf):
    """A 1-16-1 tanh network on 80 points of the two-cluster data (noise_std 0.1, as the default data)."""
    from bayesunlearn.io import datasets
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    frame = datasets.two_clusters(100, seed=3, noise_std=0.1, clusters=[[-2.0, -0.5], [0.5, 2.0]])
    train, _, _ = datasets.prepare(frame, test_fraction=0.2, seed=3, origin="test")
    return RegressionModel(MLPSpec(1, (16,)), prior_precision=1.0, noise_std=0.1), *datasets.arrays(train)


def test_newton_reaches_a_minimum_where_the_ggn_alone_stops_short(problem):
    """Same start, same budget of 100 trial steps: the GGN converges linearly (its model leaves out the residual
    term of the Hessian); the exact Hessian from half the budget converges, at a positive definite Hessian."""
    from bayesunlearn.model.autodiff import nll_hessian
    from bayesunlearn.model.training import fit_map

    model, x, y = problem
    config = Train(adam_steps=2000, polish_iterations=100, grad_tolerance=1e-6)
    _, ggn = fit_map(model, x, y, model.spec.init(0), config.model_copy(update={"polish": "lm"}))
    theta, newton = fit_map(model, x, y, model.spec.init(0), config.model_copy(update={"polish": "newton"}))
    assert not MapFit(**ggn).converged and ggn["grad_norm"] > 1e-3, ggn
    assert MapFit(**newton).converged and newton["polish_converged"] and newton["polish_iterations"] < 100, newton
    hessian = nll_hessian(model, theta, x, y)[0] + model.prior_precision * np.eye(len(theta))
    assert np.linalg.eigvalsh(hessian)[0] > 0  # a minimum, not a saddle
    again, _ = fit_map(model, x, y, model.spec.init(0), config.model_copy(update={"polish": "newton"}))
    assert again.tobytes() == theta.tobytes()


def test_a_fit_that_stops_short_says_so_in_one_line(problem):
    from bayesunlearn.model.training import fit_map

    model, x, y = problem
    _, info = fit_map(model, x, y, model.spec.init(0), Train(adam_steps=10, polish_iterations=0, grad_tolerance=1e-6))
    original = TrainReport(**info, n_params=model.spec.n_params, n_train=len(x))
    assert info["grad_tolerance"] == 1e-6 and not original.converged
    assert original.original_problem() == (f"the original's MAP did not converge (|grad| {info['grad_norm']:.3g} > "
                                           "tolerance 1e-06)")
    done = MapFit(**(info | {"grad_norm": 1e-7}))
    retrains = RetrainReport(fits={"seed_0": done, "seed_1": MapFit(**info)})
    assert retrains.problems() == [f"the retrain's MAP (seed 1) did not converge (|grad| {info['grad_norm']:.3g} > "
                                   "tolerance 1e-06): an unreliable reference"]
    assert retrains.max_grad_norm == info["grad_norm"]
    assert RetrainReport(fits={"seed_0": done}).problems() == [] and done.problem("x") is None
