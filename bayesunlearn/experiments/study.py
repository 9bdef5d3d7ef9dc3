"""The comparison study: which method holds, and where each one breaks.

For every deletion mode (random records, or a contiguous block of inputs —
"cluster" — growing from the right edge, so that 50 % is the whole right
cluster), forgotten fraction and seed: retrain each posterior kind from
scratch on the retained data, run every method from the original posterior,
and record the predictive KL to the retrain for the unlearned and the
original posterior. `gain` < 1 means unlearning helped.

The seed draws the random deletion; the retrain always starts from the
original's initialisation seed (the reference of the pipeline), so the gain
measures unlearning rather than the distance between modes. Cluster deletions
do not depend on the seed and run once per fraction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesunlearn.experiments.evaluation import mean_predictive_kl
from bayesunlearn.io.progress import progress
from bayesunlearn.experiments.grid import MODES, Cell, forget_mask, study_grid, summarise  # noqa: F401  (MODES, summarise: public here too)
from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
from bayesunlearn.unlearning.methods import apply
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.io.sections import Method, Train
from bayesunlearn.model.training import fit_map


@dataclass(frozen=True)
class Problem:
    """What every cell shares: the data, the methods and how to fit (seed0: the original's init seed)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    methods: dict[str, Method]
    train: Train
    settings: FitSettings
    seed0: int

    @property
    def kinds(self) -> list[str]:
        return sorted({m.posterior for m in self.methods.values()})


def fit_originals(model: RegressionModel, problem: Problem) -> dict[str, GaussianPosterior]:
    """The full-data posterior of every kind the methods need, at the MAP from `seed0`."""
    theta, _ = fit_map(model, problem.x, problem.y, model.spec.init(problem.seed0), problem.train)
    return {k: fit_posterior(k, model, theta, problem.x, problem.y, problem.settings) for k in problem.kinds}


def study_cell(model: RegressionModel, problem: Problem, cell: Cell, originals: dict | None = None,
               keep: bool = False) -> tuple[list[dict], dict]:
    """Rows of one cell (one per method), and its posteriors per method if `keep`.

    Fits the originals first when not given (e.g. a sweep task for a new network
    size). A cell that would forget every record has no rows.
    """
    x, y = problem.x, problem.y
    f = forget_mask(x, cell.mode, cell.fraction, cell.seed)
    if f.all():
        return [], {}
    originals = fit_originals(model, problem) if originals is None else originals
    theta_r, _ = fit_map(model, x[~f], y[~f], model.spec.init(problem.seed0), problem.train)
    retrains = {k: fit_posterior(k, model, theta_r, x[~f], y[~f], problem.settings) for k in problem.kinds}
    x_eval = np.concatenate([problem.x_test, x[f]])
    rows, kept = [], {}
    for name, method in problem.methods.items():
        original, retrain = originals[method.posterior], retrains[method.posterior]
        try:
            unlearned, report = apply(method, original, x[f], y[f], (x[~f], y[~f]))
        except Exception as err:  # a refused repair is a result of the study, not its end
            unlearned, report = None, {"status": "failed", "reason": str(err)}
        if keep:
            kept[name] = {"original": original, "retrained": retrain, "unlearned": unlearned, "mask": f}
        kl_original = mean_predictive_kl(retrain, original, x_eval)
        kl_unlearned = mean_predictive_kl(retrain, unlearned, x_eval) if unlearned is not None else np.nan
        rows.append({"mode": cell.mode, "fraction": cell.fraction, "seed": cell.seed, "method": name,
                     "posterior": method.posterior, "operator": method.operator,
                     "n_forgotten": int(f.sum()), "failed": int(unlearned is None),
                     "pred_kl_unlearned_retrained": kl_unlearned, "pred_kl_original_retrained": kl_original,
                     "gain": kl_unlearned / kl_original if kl_original > 0 else np.nan,
                     "n_negative_eigs": report.get("n_negative_eigs", np.nan),
                     "step_length": report.get("step_length", np.nan)})
    return rows, kept


def run_study(model: RegressionModel, x: np.ndarray, y: np.ndarray, x_test: np.ndarray,
              originals: dict, methods: dict[str, Method], train: Train, settings: FitSettings,
              modes: Iterable[str], fractions: Iterable[float], seeds: Iterable[int], seed0: int,
              keep: tuple | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per (mode, fraction, seed, method), and the posteriors of the `keep` case.

    `keep` = (mode, fraction, seed) names one case whose original, retrained and
    unlearned posteriors are returned for plotting (e.g. the whole-cluster deletion).
    """
    problem = Problem(x, y, x_test, methods, train, settings, seed0)
    rows, kept = [], {}
    for cell in progress(study_grid(modes, fractions, seeds), desc="study", unit="cell"):
        cell_rows, cell_kept = study_cell(model, problem, cell, originals,
                                          keep=(cell.mode, cell.fraction, cell.seed) == keep)
        rows += cell_rows
        kept.update(cell_kept)
    return pd.DataFrame(rows), kept
