"""The comparison study on a small problem: its grid, its failure handling, its summary."""

from __future__ import annotations

import numpy as np
import pytest

from bayesunlearn.experiments.study import forget_mask


def test_cluster_mode_forgets_a_contiguous_block_from_the_right_edge():
    x = np.linspace(-2, 2, 20)[:, None]
    mask = forget_mask(x, "cluster", 0.5, seed=0)
    assert mask.sum() == 10 and (x[mask, 0] > 0).all()
    random = forget_mask(x, "random", 0.25, seed=1)
    assert random.sum() == 5 and not np.array_equal(random, forget_mask(x, "random", 0.25, seed=2))
    with pytest.raises(ValueError, match="deletion mode"):
        forget_mask(x, "sideways", 0.1, seed=0)


def test_study_runs_every_method_on_the_grid_and_records_failures(fitted):
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.posteriors.fit import FitSettings
    from bayesunlearn.io.sections import Divide, Train
    from bayesunlearn.experiments.study import run_study, summarise

    methods = {
        "newton": Divide(posterior="full_ggn", operator="divide"),
        "hessian_refuse": Divide(posterior="full_hessian", operator="divide", repair="refuse"),
    }
    originals = {k: fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y, k)
                 for k in ("full_ggn", "full_hessian")}
    results, kept = run_study(fitted.model, fitted.x, fitted.y, fitted.x[:10], originals, methods,
                              Train(adam_steps=500, polish_iterations=20), FitSettings(),
                              ["random", "cluster"], [0.5], [0], 0, keep=("cluster", 0.5, 0))
    assert len(results) == 2 * 2 and set(results["method"]) == set(methods)
    newton = results[results["method"] == "newton"]
    assert (newton["failed"] == 0).all() and (newton["gain"] > 0).all()
    refused = results[(results["method"] == "hessian_refuse") & (results["failed"] == 1)]
    assert len(refused) >= 1  # forgetting half the data leaves the exact Hessian indefinite
    assert refused["pred_kl_unlearned_retrained"].isna().all()  # a failure is never scored as a success
    assert set(kept) == set(methods) and kept["newton"]["unlearned"] is not None
    summary = summarise(results)
    assert set(summary.columns) >= {"median_gain", "failed", "runs"} and (summary["runs"] == 1).all()
