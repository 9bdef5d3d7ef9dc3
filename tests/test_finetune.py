"""The fine-tuning baseline of `make bench` (bench/finetune.py): it optimises the retained objective from θ*,
keeps the original curvature, and fits its step count to a time budget."""

from __future__ import annotations

import numpy as np

from bayesunlearn.io.datasets import Splits
from bayesunlearn.io.sections import Train
from bayesunlearn.model.training import objective
from bayesunlearn.posteriors.laplace import fit_laplace
from bench import finetune


def test_finetuning_moves_theta_star_toward_the_retained_optimum_and_keeps_the_curvature(fitted):
    keep = ~fitted.forget_mask
    splits = Splits(fitted.x[keep], fitted.y[keep], fitted.x[~keep], fitted.y[~keep], fitted.x[:2], fitted.y[:2])
    original = fit_laplace(fitted.model, fitted.theta, fitted.x, fitted.y, "full_ggn")
    tuned = finetune.finetune(original, splits, Train(learning_rate=1e-3), steps=2000)
    before = objective(fitted.model, fitted.theta, splits.x_retained, splits.y_retained)[0]
    after = objective(fitted.model, tuned.mean, splits.x_retained, splits.y_retained)[0]
    assert after < before  # the retained objective, which a retrain minimises
    assert tuned.matrix is original.matrix and np.array_equal(tuned.linearisation_point, tuned.mean)
    steps = finetune.steps_within(0.05, original, splits, Train())
    assert steps > 1 and finetune.steps_within(0.0, original, splits, Train()) == 1
