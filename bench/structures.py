"""Quality of the cheap posterior structures where the full GGN is still possible: the 10k network.

A 1-99-99-1 tanh network (10,198 parameters) on n two-cluster records (bench/scale.py's data), the
pipeline's training (`train`, with an L-BFGS polish: Levenberg–Marquardt solves a 10k system per
iteration). Two deletions: 10 % at random, and a segment (the 10 % of records furthest right, one
cluster's edge). Per structure, the forgetting is judged as everywhere in the project
(experiments/evaluation.py): gain and indistinguishability against `SEEDS` retrains of the same
structure, and its gain relative to the full GGN's, so that a user can pick a structure from numbers.
Rows: each structure's Newton step (keyed by the structure), and the Hessian-free step
(`mean_update: cg`, unlearning/newton_cg.py) on the scalable structures, unpreconditioned (`NAME_cg`)
and preconditioned by the structure (`NAME_cg_structure`), run to `CG_TOLERANCE`. Every row carries
its unlearning time and the retrain time measured in the same run (a retrain MAP + the structure's fit
on the retained records, medians over the seeds), so the speedup is of this machine, this run.
`targets` judges the rows against issue 26's targets at 10k parameters.
`python -m bench.structures` prints the JSON; `make bench` adds it as "structure_quality". It takes
about 40 minutes on 2 busy cores, most of it the four retrain MAPs and the full GGN's fits and rows.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

HIDDEN = (99, 99)
N_TRAIN, N_TEST = 2000, 500
STRUCTURES = ("full_ggn", "kfac", "ekfac", "subnetwork", "diag_ggn", "last_layer")
CG_STRUCTURES = ("kfac", "ekfac", "diag_ggn", "last_layer")   # the Hessian-free step, no preconditioner
CG_PRECONDITIONED = ("kfac", "ekfac")                        # ... and preconditioned by the structure
CG_TOLERANCE, CG_ITERATIONS = 1e-8, 5000
SUBNETWORK_SIZE = 1000
SEEDS = 2
FRACTION = 0.1
WITHIN = 1.5   # the target: the best scalable row's gain at most this × the full GGN's, on both deletions
MODES = ("random", "segment")


def variants(structures: tuple[str, ...] = STRUCTURES, cg: tuple[str, ...] = CG_STRUCTURES,
             preconditioned: tuple[str, ...] = CG_PRECONDITIONED) -> dict[str, tuple[str, dict]]:
    """Row name → (structure, divide options): the Newton step of every structure, then the CG steps."""
    rows = {s: (s, {"mean_update": "newton"}) for s in structures}
    rows |= {f"{s}_cg": (s, {"mean_update": "cg", "cg_preconditioner": "none"}) for s in cg}
    rows |= {f"{s}_cg_structure": (s, {"mean_update": "cg", "cg_preconditioner": "structure"})
             for s in preconditioned}
    return rows


@dataclass(frozen=True)
class Retrains:
    """Retrains from scratch on the retained records: their MAPs' fit reports and times, and per structure the
    posteriors fitted around them and those fits' times."""

    maps: list[dict]
    map_seconds: list[float]
    posteriors: dict[str, list]
    fit_seconds: dict[str, list[float]]

    def seconds(self, structure: str) -> float:
        """A retrain of `structure`, measured: the median MAP plus the median fit of the structure."""
        return statistics.median(self.map_seconds) + statistics.median(self.fit_seconds[structure])


def retrain(model, retained: tuple[np.ndarray, np.ndarray], train, seeds: int, structures: tuple[str, ...], fit,
            what: str) -> Retrains:
    """`seeds` retrains (initialisations train.seed + k, the original's first) with the original's training
    settings, each timed, and every structure's posterior around each."""
    from bayesunlearn.io.progress import progress
    from bayesunlearn.model.training import fit_map
    from bayesunlearn.posteriors.fit import fit_posterior

    maps, infos, map_seconds = [], [], []
    for k in progress(range(seeds), desc=f"{what}: retrain MAPs", unit="seed"):
        start = time.perf_counter()
        theta, info = fit_map(model, *retained, model.spec.init(train.seed + k), train)
        map_seconds.append(time.perf_counter() - start)
        maps.append(theta)
        infos.append(info)
    posteriors: dict[str, list] = {s: [] for s in structures}
    fit_seconds: dict[str, list[float]] = {s: [] for s in structures}
    for structure in structures:
        for theta in maps:
            start = time.perf_counter()
            posteriors[structure].append(fit_posterior(structure, model, theta, *retained, fit))
            fit_seconds[structure].append(time.perf_counter() - start)
    return Retrains(infos, map_seconds, posteriors, fit_seconds)


def row(original, structure: str, options: dict, splits, retrains: list, retrain_seconds: float,
        judged=None, cg_tolerance: float = CG_TOLERANCE, cg_iterations: int = CG_ITERATIONS) -> dict:
    """Forget `splits`' forgotten records from `original` (a Laplace posterior of `structure`) with these divide
    options (CG: to `cg_tolerance` or `cg_iterations`); judged (gain, indistinguishability) against the
    retrains of the same structure on `judged` (default: `splits`; a subsample of its test and retained rows
    keeps the predictives cheap on large networks) and timed against `retrain_seconds`."""
    from bayesunlearn.experiments.evaluation import compare
    from bayesunlearn.io.sections import DivideOptions
    from bayesunlearn.unlearning.divide import forget

    divide = DivideOptions(repair="clip", cg_tolerance=cg_tolerance, cg_iterations=cg_iterations, **options)
    retained = (splits.x_retained, splits.y_retained)
    start = time.perf_counter()
    unlearned, report = forget(original, splits.x_forgotten, splits.y_forgotten, divide, retained=retained)
    seconds = time.perf_counter() - start
    result = compare(original, unlearned, retrains, judged or splits, parameter_space=False)
    cg = {k: v for k, v in report.to_dict().items() if k.startswith("cg_")}
    return {"structure": structure, **options, **cg, "gain": result["gain"],
            "indistinguishability": result["indistinguishability"], "unlearn_seconds": seconds,
            "retrain_seconds": retrain_seconds, "speedup": retrain_seconds / seconds,
            "repair": report.repair, "test_rmse_unlearned": result["test_rmse_unlearned"],
            "test_rmse_retrained": result["test_rmse_retrained"]}


def run() -> dict:
    from bayesunlearn.io.progress import progress
    from bayesunlearn.experiments.grid import forget_mask
    from bayesunlearn.io import settings
    from bayesunlearn.io.datasets import Splits
    from bayesunlearn.io.sections import Laplace
    from bench import regression_model
    from bayesunlearn.model.tf import tf
    from bayesunlearn.model.training import fit_map
    from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
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
                 "subnetwork_size": SUBNETWORK_SIZE, "cg_tolerance": CG_TOLERANCE, "cg_iterations": CG_ITERATIONS,
                 "retrain_time": "measured", "load_average_start": os.getloadavg()[0]}
    masks = {"random": forget_mask(x, "random", FRACTION, 0), "segment": forget_mask(x, "cluster", FRACTION, 0)}
    for mode, mask in masks.items():
        splits = Splits(x[~mask], y[~mask], x[mask], y[mask], x_test, y_test)
        done = retrain(model, (splits.x_retained, splits.y_retained), train, SEEDS, STRUCTURES, fit, mode)
        rows = {name: row(originals[structure], structure, options, splits, done.posteriors[structure],
                          done.seconds(structure))
                for name, (structure, options) in progress(variants().items(), desc=f"{mode}: structures",
                                                           unit="row")}
        for measured in rows.values():
            measured["gain_over_full_ggn"] = measured["gain"] / rows["full_ggn"]["gain"]
        out[mode] = {"n_forgotten": int(mask.sum()), "retrain_map_seconds": done.map_seconds, **rows}
    out["load_average_end"] = os.getloadavg()[0]
    out["targets"] = targets(out)
    return out


def targets(quality: dict) -> dict:
    """Issue 26's targets at 10k parameters, from the rows: the best scalable row (every row but the full
    GGN's; its worse ratio over the two deletions decides) within `WITHIN`× the full GGN's gain on both
    deletions, overall and among the Newton steps alone (which read no retained record); and the subnetwork's
    Newton step at least as good as the last layer's on both deletions (else it leaves the recommended set)."""
    names = [n for n in variants() if n != "full_ggn"]

    def judged(name: str) -> dict:
        per_mode = {m: {"gain": quality[m][name]["gain"], "full_ggn_gain": quality[m]["full_ggn"]["gain"],
                        "gain_over_full_ggn": quality[m][name]["gain_over_full_ggn"],
                        "speedup": quality[m][name]["speedup"]} for m in MODES}
        worst = max(per_mode[m]["gain_over_full_ggn"] for m in MODES)
        return {"met": worst <= WITHIN, "row": name, "worst_gain_over_full_ggn": worst, "within": WITHIN, **per_mode}

    best = min((judged(n) for n in names), key=lambda j: j["worst_gain_over_full_ggn"])
    newton = min((judged(n) for n in names if quality[MODES[0]][n]["mean_update"] == "newton"),
                 key=lambda j: j["worst_gain_over_full_ggn"])
    gains = {m: {s: quality[m][s]["gain"] for s in ("subnetwork", "last_layer")} for m in MODES}
    return {"best_scalable_within_1_5x_full_ggn_10k": best,
            "best_newton_step_within_1_5x_full_ggn_10k": newton,
            "subnetwork_at_least_last_layer_10k": {
                "met": all(gains[m]["subnetwork"] <= gains[m]["last_layer"] for m in MODES), **gains}}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
