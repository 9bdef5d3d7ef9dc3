"""The gate judges the served predictive: the retained records' fit, membership, the operator's verdict."""

from __future__ import annotations

import numpy as np
import pytest

from bayesunlearn.io.contracts import Convergence
from bayesunlearn.io.sections import Gate
from bayesunlearn.unlearning.gate import gate, retained_nll_change


CONVERGED = Convergence(grad_norm=1e-9, grad_tolerance=1e-6)  # the original's MAP, as metrics/train.json records it


@pytest.fixture(scope="module")
def case(fitted):
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget

    original = fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y, "full_ggn")
    f = fitted.forget_mask
    unlearned, report = forget(original, fitted.x[f], fitted.y[f])
    parts = (fitted.x[~f], fitted.y[~f], fitted.x[f], fitted.y[f], fitted.x[:10], fitted.y[:10])
    return original, unlearned, {"status": "ok", **report.to_dict()}, parts


def test_the_newton_step_keeps_the_retained_fit_and_passes(case):
    original, unlearned, report, parts = case
    decision = gate("m", original, unlearned, report, *parts, Gate(method="m", posterior="full_ggn", max_mia_auc=1.0), CONVERGED)
    assert decision.passed and abs(decision.retained_nll_change) < 0.01
    assert retained_nll_change(original, original, parts[0], parts[1]) == 0.0


def test_a_step_that_spoils_the_retained_fit_falls_back_and_says_why(case):
    original, unlearned, report, parts = case
    spoiled = unlearned.with_updates(mean=unlearned.mean + 0.3 * np.random.default_rng(0).standard_normal(len(unlearned.mean)))
    decision = gate("m", original, spoiled, report, *parts, Gate(method="m", posterior="full_ggn", max_mia_auc=1.0), CONVERGED)
    assert decision.retained_nll_change > 0.01 and not decision.passed
    assert decision.reasons == [f"retained records' NLL rose by {decision.retained_nll_change:.3g} > 0.01 nats per record"]


def test_the_residual_at_the_moved_mean_is_reported_and_decides_only_when_a_limit_is_set(case):
    original, unlearned, report, parts = case
    loose = gate("m", original, unlearned, report, *parts, Gate(method="m", posterior="full_ggn", max_mia_auc=1.0), CONVERGED)
    limit = loose.residual_ratio / 2
    strict = gate("m", original, unlearned, report, *parts,
                  Gate(method="m", posterior="full_ggn", max_mia_auc=1.0, max_residual_ratio=limit), CONVERGED)
    assert loose.passed and not strict.passed and strict.reasons[0].startswith("gradient residual ratio")


def test_a_repair_the_gate_does_not_allow_falls_back(case):
    original, unlearned, report, parts = case
    decision = gate("m", original, unlearned, report | {"repair": "clip"}, *parts,
                    Gate(method="m", posterior="full_ggn", max_mia_auc=1.0), CONVERGED)
    assert not decision.passed and "needed repair 'clip'" in decision.reasons[0]


def test_an_original_whose_map_did_not_converge_falls_back_whatever_the_other_signals(case):
    """Laplace and the Newton step assume a mode: the same step that passes from a converged MAP is refused."""
    original, unlearned, report, parts = case
    thresholds = Gate(method="m", posterior="full_ggn", max_mia_auc=1.0)
    unconverged = Convergence(grad_norm=53.2, grad_tolerance=1e-6)
    decision = gate("m", original, unlearned, report, *parts, thresholds, unconverged)
    assert gate("m", original, unlearned, report, *parts, thresholds, CONVERGED).passed
    assert decision.decision == "fallback" and not decision.passed
    assert decision.reasons == ["the original's MAP did not converge (|grad| 53.2 > tolerance 1e-06)"]
    assert decision.original_grad_norm == 53.2
    at_the_tolerance = Convergence(grad_norm=1e-6, grad_tolerance=1e-6)
    assert gate("m", original, unlearned, report, *parts, thresholds, at_the_tolerance).passed
