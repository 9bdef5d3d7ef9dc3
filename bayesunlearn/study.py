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

import numpy as np
import pandas as pd

from .evaluation import mean_predictive_kl
from .methods import FitSettings, Method, fit_posterior, unlearn
from .model import RegressionModel
from .training import TrainConfig, fit_map

MODES = ("random", "cluster")


def forget_mask(x: np.ndarray, mode: str, fraction: float, seed: int) -> np.ndarray:
    n_forget = max(1, round(fraction * len(x)))
    mask = np.zeros(len(x), dtype=bool)
    if mode == "random":
        mask[np.random.default_rng(seed).permutation(len(x))[:n_forget]] = True
    elif mode == "cluster":
        mask[np.argsort(-x[:, 0], kind="stable")[:n_forget]] = True
    else:
        raise ValueError(f"deletion mode {mode!r} is not one of {MODES}")
    return mask


def run_study(model: RegressionModel, x: np.ndarray, y: np.ndarray, x_test: np.ndarray,
              originals: dict, methods: dict[str, Method], train: TrainConfig, settings: FitSettings,
              modes: Iterable[str], fractions: Iterable[float], seeds: Iterable[int], seed0: int,
              progress=lambda it, **_: it, keep: tuple | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per (mode, fraction, seed, method), and the posteriors of the `keep` case.

    `keep` = (mode, fraction, seed) names one case whose original, retrained and
    unlearned posteriors are returned for plotting (e.g. the whole-cluster deletion).
    """
    kinds = sorted({m.posterior for m in methods.values()})
    seeds = list(seeds)
    grid = [(mode, fraction, seed) for mode in modes for fraction in fractions
            for seed in (seeds if mode == "random" else seeds[:1])]
    rows, kept = [], {}
    for mode, fraction, seed in progress(grid, desc="study", unit="case"):
        f = forget_mask(x, mode, fraction, seed)
        if f.all():
            continue
        theta_r, _ = fit_map(model, x[~f], y[~f], model.spec.init(seed0), train)
        retrains = {k: fit_posterior(k, model, theta_r, x[~f], y[~f], settings) for k in kinds}
        x_eval = np.concatenate([x_test, x[f]])
        for name, method in methods.items():
            original, retrain = originals[method.posterior], retrains[method.posterior]
            try:
                unlearned, report = unlearn(method, original, x[f], y[f])
            except Exception as err:  # a refused repair is a result of the study, not its end
                unlearned, report = None, {"status": "failed", "reason": str(err)}
            if (mode, fraction, seed) == keep:
                kept[name] = {"original": original, "retrained": retrain, "unlearned": unlearned, "mask": f}
            kl_original = mean_predictive_kl(retrain, original, x_eval)
            kl_unlearned = mean_predictive_kl(retrain, unlearned, x_eval) if unlearned is not None else np.nan
            rows.append({"mode": mode, "fraction": fraction, "seed": seed, "method": name,
                         "posterior": method.posterior, "operator": method.operator,
                         "n_forgotten": int(f.sum()), "failed": int(unlearned is None),
                         "pred_kl_unlearned_retrained": kl_unlearned, "pred_kl_original_retrained": kl_original,
                         "gain": kl_unlearned / kl_original if kl_original > 0 else np.nan,
                         "n_negative_eigs": report.get("n_negative_eigs", np.nan),
                         "step_length": report.get("step_length", np.nan)})
    return pd.DataFrame(rows), kept


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Median gain and failure rate per method, mode and fraction."""
    grouped = results.groupby(["method", "mode", "fraction"], sort=True)
    return grouped.agg(median_gain=("gain", "median"),
                       median_pred_kl=("pred_kl_unlearned_retrained", "median"),
                       median_pred_kl_original=("pred_kl_original_retrained", "median"),
                       failed=("failed", "sum"), runs=("failed", "size")).reset_index()
