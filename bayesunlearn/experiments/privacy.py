"""A per-record membership test of the forgotten records (U-LiRA style): can they still be told apart?

Population loss-threshold AUCs average over records and overstate privacy. This
test asks, record by record, whether a forgotten record's loss under the judged
model is typical of models that never saw it. K shadow retrains on the retained
data give, per record, the mean m and sample standard deviation s of its loss;
the record is *told apart* when its loss under the judged model lies below the
one-sided (1 − α) prediction bound of a new draw,
    m − t_{K−1, 1−α} · s · √(1 + 1/K),
which holds with probability exactly α for a model drawn like the shadows when
the losses are Gaussian (Student t because m and s are estimated from K shadows).
Run on a fresh retrain that is not among the shadows, the share told apart is
the figure to compare with: about α.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.stats

from bayesunlearn.io.sections import Train
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.training import fit_map
from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
from bayesunlearn.posteriors.posterior import GaussianPosterior


def record_losses(posterior: GaussianPosterior, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each record's negative log predictive probability under the posterior's (linearised) predictive."""
    return posterior.predictive_nll(x, y)


def told_apart(shadow_losses: np.ndarray, losses: np.ndarray, alpha: float) -> np.ndarray:
    """Per record: is its loss (n,) below the (1 − α) prediction bound of the shadows' losses (K, n)?"""
    k = shadow_losses.shape[0]
    if k < 2:
        raise ValueError(f"the per-record test needs at least 2 shadow retrains, not {k}")
    mean, sd = shadow_losses.mean(axis=0), shadow_losses.std(axis=0, ddof=1)
    bound = mean - scipy.stats.t.ppf(1 - alpha, k - 1) * sd * np.sqrt(1 + 1 / k)
    return losses < bound


@dataclass(frozen=True, eq=False)
class RecordTest:
    """The per-record test of one deletion: the records it judges (the forgotten ones) and their losses under K
    shadow retrains."""

    x: np.ndarray
    y: np.ndarray
    shadow_losses: np.ndarray  # (K, n_forgotten)
    alpha: float

    @classmethod
    def of(cls, shadow_posteriors: list[GaussianPosterior], x: np.ndarray, y: np.ndarray, alpha: float) -> RecordTest:
        return cls(x, y, np.stack([record_losses(p, x, y) for p in shadow_posteriors]), alpha)

    @property
    def spread(self) -> float:
        """The median over the records of the shadows' loss standard deviation (nats): ~0 where the retrains
        agree to rounding, and then the test tells apart any posterior whose losses differ from theirs at all."""
        return float(np.median(self.shadow_losses.std(axis=0, ddof=1)))

    def share(self, posterior: GaussianPosterior) -> float:
        """The share of the forgotten records the test tells apart under `posterior`."""
        return float(np.mean(told_apart(self.shadow_losses, record_losses(posterior, self.x, self.y), self.alpha)))


def shadows(kind: str, model: RegressionModel, x_r: np.ndarray, y_r: np.ndarray, seeds: Iterable[int],
            train: Train, settings: FitSettings) -> list[GaussianPosterior]:
    """Retrains from scratch on the retained records, one per seed, as posteriors of `kind`."""
    return [fit_posterior(kind, model, fit_map(model, x_r, y_r, model.spec.init(seed), train)[0], x_r, y_r, settings)
            for seed in seeds]
