"""The UCI protocol of `make bench` (bench/uci.py): its splits, and the identities its predictives must meet."""

from __future__ import annotations

import numpy as np
from conftest import REPO

from bayesunlearn.io import datasets, settings
from bench import uci


def test_the_splits_are_random_90_10_partitions_fixed_by_the_seed():
    train, test = uci.split_indices(1030, seed=3)
    assert len(test) == 103 and len(train) == 927 and not set(train) & set(test)
    assert sorted({*train, *test}) == list(range(1030))
    again, other = uci.split_indices(1030, seed=3), uci.split_indices(1030, seed=4)
    assert np.array_equal(again[1], test) and not np.array_equal(other[1], test)


def test_one_split_on_concrete_reports_original_units_and_the_laplace_mean_is_the_maps():
    params = settings.load(REPO / "params.yaml")
    params = params.model_copy(update={"train": params.train.model_copy(update={"adam_steps": 300,
                                                                                 "polish_iterations": 5}),
                                       "vi": params.vi.model_copy(update={"steps": 20})})
    frame = datasets.packaged("concrete").iloc[:300]
    x, y = datasets.arrays(frame)
    result = uci.run_split(x, y, seed=0, params=params)
    # the linearised predictive's mean at θ* is the network's output there: the same RMSE to rounding
    assert abs(result.rmse["ggn_laplace"] - result.rmse["map"]) < 1e-9 * result.rmse["map"]
    assert 1.0 < result.rmse["map"] < 3 * y.std()  # MPa, not standardised units
    assert all(np.isfinite(v) for v in result.log_likelihood.values())
    assert result.noise_std > 0 and result.prior_precision > 0
