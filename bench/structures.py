"""Quality of the cheap posterior structures where the full GGN is still possible: the 10k network.

A 1-99-99-1 tanh network (10,198 parameters) on n two-cluster records (bench/scale.py's data), the
pipeline's training (`train`, with an L-BFGS polish: Levenberg–Marquardt solves a 10k system per
iteration). Two deletions: 10 % at random, and a segment (the 10 % of records furthest right, one
cluster's edge). Per structure, the Newton-step forgetting is judged as everywhere in the project
(experiments/evaluation.py): gain and indistinguishability against `SEEDS` retrains of the same
structure, and its gain relative to the full GGN's, so that a user can pick a structure from numbers.
`python -m bench.structures` prints the JSON; `make bench` adds it as "structure_quality".
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

HIDDEN = (99, 99)
N_TRAIN, N_TEST = 2000, 500
STRUCTURES = ("full_ggn", "kfac", "subnetwork", "diag_ggn", "last_layer")
SUBNETWORK_SIZE = 1000
SEEDS = 2
FRACTION = 0.1


def run() -> dict:
    from bayesunlearn.io.progress import progress
    from bayesunlearn.experiments.evaluation import compare
    from bayesunlearn.experiments.grid import forget_mask
    from bayesunlearn.io import settings
    from bayesunlearn.io.datasets import Splits
    from bayesunlearn.io.sections import DivideOptions, Laplace
    from bench import regression_model
    from bayesunlearn.model.tf import tf
    from bayesunlearn.model.training import fit_map
    from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
    from bayesunlearn.unlearning.divide import forget
    from bench.scale import cell_data

    tf.config.experimental.enable_op_determinism()
    params = settings.load()
    x_all, y_all, _ = cell_data(N_TRAIN + N_TEST, 0, 0)
    order = np.random.default_rng(0).permutation(len(x_all))
    x, y = x_all[order[:N_TRAIN]], y_all[order[:N_TRAIN]]
    x_test, y_test = x_all[order[N_TRAIN:]], y_all[order[N_TRAIN:]]
    model = regression_model(params.model, HIDDEN, 1)
    train = params.train.model_copy(update={"polish": "lbfgs"})
    fit = FitSettings(laplace=Laplace(subnetwork_size=SUBNETWORK_SIZE))
    theta, _ = fit_map(model, x, y, model.spec.init(train.seed), train)
    originals = {s: fit_posterior(s, model, theta, x, y, fit) for s in STRUCTURES}
    out: dict = {"hidden": list(HIDDEN), "n_params": model.spec.n_params, "n": N_TRAIN, "retrains": SEEDS,
                 "subnetwork_size": SUBNETWORK_SIZE}
    masks = {"random": forget_mask(x, "random", FRACTION, 0), "segment": forget_mask(x, "cluster", FRACTION, 0)}
    for mode, mask in masks.items():
        splits = Splits(x[~mask], y[~mask], x[mask], y[mask], x_test, y_test)
        maps = [fit_map(model, splits.x_retained, splits.y_retained, model.spec.init(train.seed + k), train)[0]
                for k in progress(range(SEEDS), desc=f"{mode}: retrain MAPs", unit="seed")]
        rows = {}
        for structure in progress(STRUCTURES, desc=f"{mode}: structures", unit="structure"):
            retrains = [fit_posterior(structure, model, t, splits.x_retained, splits.y_retained, fit) for t in maps]
            start = time.perf_counter()
            unlearned, report = forget(originals[structure], splits.x_forgotten, splits.y_forgotten,
                                       DivideOptions(mean_update="newton", repair="clip"))
            seconds = time.perf_counter() - start
            result = compare(originals[structure], unlearned, retrains, splits, parameter_space=False)
            rows[structure] = {"gain": result["gain"], "indistinguishability": result["indistinguishability"],
                               "unlearn_seconds": seconds, "repair": report.repair,
                               "test_rmse_unlearned": result["test_rmse_unlearned"],
                               "test_rmse_retrained": result["test_rmse_retrained"]}
        for row in rows.values():
            row["gain_over_full_ggn"] = row["gain"] / rows["full_ggn"]["gain"]
        out[mode] = {"n_forgotten": int(mask.sum()), **rows}
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
