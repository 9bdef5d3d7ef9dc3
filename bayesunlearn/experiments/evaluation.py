"""Judge an unlearned posterior against retrains from scratch and against the original.

Retraining is random (initialisation seed, mode), so "close to a retrain" is
measured against the spread among retrains: the noise floor is the median
predictive KL between retrains with different seeds.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable

import numpy as np

from bayesunlearn.io.progress import Bar, phase, progress
from bayesunlearn.numerics import metrics
from bayesunlearn.posteriors.fit import FitSettings, fit_from_scratch
from bayesunlearn.unlearning.methods import apply
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.io.datasets import Splits
from bayesunlearn.io.sections import Method, Train


def mean_predictive_kl(p: GaussianPosterior, q: GaussianPosterior, x: np.ndarray) -> float:
    """KL(p's predictive ‖ q's predictive), averaged over the rows of x."""
    if len(x) == 0:
        return float("nan")
    return float(np.mean(p.model.predictive_kl(p.predictive(x), q.predictive(x))))


def compare(original: GaussianPosterior, unlearned: GaussianPosterior, retrains: list[GaussianPosterior],
            splits: Splits, parameter_space: bool = True) -> dict:
    """Every metric of docs/methods.md that needs no timing; retrains[0] is the reference.

    `parameter_space=False` leaves out the KLs and W2 between parameter posteriors
    (a matrix square root per pair: the cost that dominates on thousands of parameters)."""
    reference = retrains[0]
    headline_x = np.concatenate([splits.x_test, splits.x_forgotten])
    out: dict = {}
    for name, post in (("unlearned", unlearned), ("original", original)):
        out[f"pred_kl_{name}_retrained"] = mean_predictive_kl(reference, post, headline_x)
        for part, x in (("test", splits.x_test), ("forgotten", splits.x_forgotten), ("retained", splits.x_retained)):
            out[f"pred_kl_{name}_retrained_{part}"] = mean_predictive_kl(reference, post, x)
        if parameter_space:
            out.update(parameter_distances(name, reference, post))
    floor_pairs = list(itertools.permutations(retrains, 2))
    out["pred_kl_retrain_floor"] = (statistics.median(mean_predictive_kl(a, b, headline_x) for a, b in floor_pairs)
                                    if floor_pairs else float("nan"))
    to_unlearned = statistics.median(mean_predictive_kl(r, unlearned, headline_x) for r in retrains)
    out["indistinguishability"] = _ratio(to_unlearned, out["pred_kl_retrain_floor"])
    out["gain"] = _ratio(out["pred_kl_unlearned_retrained"], out["pred_kl_original_retrained"])
    for name, post in (("original", original), ("unlearned", unlearned), ("retrained", reference)):
        out.update(_fit_quality(name, post, splits))
    return out


def parameter_distances(name: str, reference: GaussianPosterior, post: GaussianPosterior) -> dict:
    """KL both ways and W2 in parameter space (over the parameters the posteriors cover)."""
    idx = reference.index
    m_r, m_p = reference.mean[idx], post.mean[idx]
    return {
        f"kl_{name}_retrained": metrics.gaussian_kl(m_r, reference.dense_precision(), m_p, post.dense_precision()),
        f"kl_reverse_{name}_retrained": metrics.gaussian_kl(m_p, post.dense_precision(), m_r,
                                                            reference.dense_precision()),
        f"w2_{name}_retrained": metrics.wasserstein2(m_r, reference.dense_covariance(), m_p, post.dense_covariance()),
    }


def _fit_quality(name: str, post: GaussianPosterior, splits: Splits) -> dict:
    out = {}
    nll = {}
    for part, x, y in (("test", splits.x_test, splits.y_test), ("forgotten", splits.x_forgotten, splits.y_forgotten)):
        mean, var = post.predictive(x)
        nll[part] = post.model.predictive_nll(y, mean, var)
        if post.model.gaussian:
            out[f"{part}_rmse_{name}"] = metrics.rmse(y, mean)
        else:  # the probit-approximated class probabilities
            probability = post.model.class_probabilities(mean, var)
            out[f"{part}_accuracy_{name}"] = metrics.accuracy(y, probability)
            out[f"{part}_ece_{name}"] = metrics.expected_calibration_error(y, probability)
        out[f"{part}_nll_{name}"] = float(np.mean(nll[part])) if len(y) else float("nan")
    out[f"mia_auc_{name}"] = metrics.membership_auc(nll["forgotten"], nll["test"])
    return out


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("inf")


def time_unlearning_vs_retraining(method: Method, original: GaussianPosterior, splits: Splits, seed: int,
                                  train: Train, settings: FitSettings, repeats: int, bar: Bar | None = None) -> dict:
    """Wall time of unlearning and of a cold retrain of the same posterior kind, warm, side by side.

    `bar` (io.progress) counts the 2 × (repeats + 1) calls."""
    unlearn_seconds = time_warm(lambda: apply(method, original, splits.x_forgotten, splits.y_forgotten,
                                              (splits.x_retained, splits.y_retained)), repeats, bar,
                                "timing unlearning")
    retrain_seconds = time_warm(lambda: fit_from_scratch(method.posterior, original.model, splits.x_retained,
                                                         splits.y_retained, seed, train, settings), repeats, bar,
                                "timing a retrain from scratch")
    return {"unlearn_seconds": unlearn_seconds, "retrain_seconds": retrain_seconds,
            "speedup": retrain_seconds / unlearn_seconds}


def time_warm(fn: Callable[[], object], repeats: int, bar: Bar | None = None, what: str = "") -> float:
    """Median wall time of `fn` over `repeats` calls after one untimed warm-up call; `bar` counts every call
    (outside the timed span) under the phase `what`."""
    bar = progress(disable=True) if bar is None else bar
    phase(bar, what)
    fn()
    times = []
    for _ in range(max(1, repeats)):
        bar.update()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    bar.update()
    return float(statistics.median(times))
