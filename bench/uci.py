"""The standard UCI regression protocol on a packaged real table: is the BNN itself credible?

The protocol of the BNN literature (Hernández-Lobato & Adams, 2015): 20 random
90/10 train/test splits, one hidden layer of 50 units, inputs and target
standardised on the training part, test RMSE and test log-likelihood reported in
the original units as mean ± standard error over the splits.

Per split, the MAP is trained as the pipeline trains it (`params.yaml` `train`,
`model.activation`), and the prior precision and noise are chosen by the
Laplace evidence of the full GGN at that MAP; a second round trains the MAP on
from there under the chosen values and chooses again (MacKay's scheme). The
three predictives use the final values:
- `map`: N(f(x, θ*), σ²), no parameter uncertainty;
- `ggn_laplace`: the linearised predictive of the full-GGN Laplace posterior;
- `vi`: mean-field Gaussian VI (TFP) started from the diagonal-GGN Laplace fit,
  its predictive linearised at its mean. Its ELBO optimum is the diagonal-GGN
  Laplace fit itself (marginal standard deviations 0.03 of the full GGN's, median,
  on concrete): for a Gaussian target the mean-field optimum has σᵢ² = 1/Λᵢᵢ;
- `vi_full`: full-covariance Gaussian VI started from the full-GGN Laplace fit,
  linearised at its mean.

    python -m bench.uci --source concrete --splits 20 --workers 2

Each split is seeded by its index alone, so `--workers` (processes, one split at a time each) changes the wall
time only, never a figure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import multiprocessing
import time
from dataclasses import dataclass

import numpy as np

PREDICTIVES = ("map", "ggn_laplace", "vi", "vi_full")
ROUNDS = 2  # MAP and evidence alternations
SOURCES = ("concrete",)  # the packaged UCI benchmark tables `make bench` runs the protocol on


@dataclass(frozen=True)
class Split:
    """Test RMSE and mean test log-likelihood per predictive, in the target's original units."""

    rmse: dict[str, float]
    log_likelihood: dict[str, float]
    prior_precision: float
    noise_std: float  # standardised units, chosen by the evidence


def split_indices(n: int, seed: int, test_share: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(test_share * n))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def run_split(x: np.ndarray, y: np.ndarray, seed: int, params) -> Split:
    from bench import regression_model
    from bayesunlearn.model.network import outputs
    from bayesunlearn.model.training import fit_map
    from bayesunlearn.numerics.metrics import gaussian_nll, rmse
    from bayesunlearn.posteriors.laplace import fit_laplace, optimize_hyperparameters
    from bayesunlearn.posteriors.vi import fit_vi

    train, test = split_indices(len(y), seed)
    x_mean, x_std = x[train].mean(axis=0), x[train].std(axis=0)
    x_std[x_std == 0] = 1.0
    y_mean, y_std = y[train].mean(), y[train].std()
    xs, ys = (x - x_mean) / x_std, (y - y_mean) / y_std
    model = regression_model(params.model, [50], x.shape[1])
    theta = model.spec.init(seed)
    for _ in range(ROUNDS):  # MacKay's scheme: the MAP under the current (α, σ), then (α, σ) by its evidence
        theta, _ = fit_map(model, xs[train], ys[train], theta, params.train)
        laplace = optimize_hyperparameters(fit_laplace(model, theta, xs[train], ys[train], "full_ggn"),
                                           xs[train], ys[train])
        model = laplace.model
    tuned = model
    start = fit_laplace(tuned, theta, xs[train], ys[train], "diag_ggn")
    vi = fit_vi(tuned, xs[train], ys[train], start, "mean_field", params.vi)
    vi_full = fit_vi(tuned, xs[train], ys[train], laplace, "full", params.vi)
    predictions = {"map": (outputs(model.spec, theta, xs[test]), np.full(len(test), tuned.noise_std ** 2)),
                   "ggn_laplace": laplace.predictive(xs[test]), "vi": vi.predictive(xs[test]),
                   "vi_full": vi_full.predictive(xs[test])}
    rmses, lls = {}, {}
    for name, (mean, var) in predictions.items():
        mean, var = mean * y_std + y_mean, var * y_std ** 2  # original units
        rmses[name] = rmse(y[test], mean)
        lls[name] = -float(np.mean(gaussian_nll(y[test], mean, var)))
    return Split(rmses, lls, tuned.prior_precision, tuned.noise_std)


def protocol(source: str, splits: int, params, workers: int = 1) -> dict:
    """Mean ± standard error of test RMSE and log-likelihood over `splits` random 90/10 splits, run in
    `workers` processes (spawned: TensorFlow does not survive a fork)."""
    from bayesunlearn.io import datasets
    from bayesunlearn.io.progress import progress

    frame = datasets.packaged(source)
    x, y = datasets.arrays(datasets.encode(frame, datasets.categories_of(frame, source)))
    start = time.perf_counter()
    bar = functools.partial(progress, total=splits, desc=f"UCI protocol on {source}", unit="split")
    if workers > 1:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(bar(pool.map(functools.partial(run_split, x, y, params=params), range(splits))))
    else:
        results = [run_split(x, y, seed, params) for seed in bar(range(splits))]

    def summary(values: list[float]) -> dict:
        values = np.asarray(values)
        return {"mean": float(values.mean()), "se": float(values.std(ddof=1) / np.sqrt(len(values)))}

    return {"source": source, "n_records": len(y), "n_inputs": x.shape[1], "splits": splits, "hidden": [50],
            "activation": params.model.activation,
            "test_rmse": {p: summary([r.rmse[p] for r in results]) for p in PREDICTIVES},
            "test_log_likelihood": {p: summary([r.log_likelihood[p] for r in results]) for p in PREDICTIVES},
            "evidence_noise_std": summary([r.noise_std for r in results]),
            "evidence_prior_precision": summary([r.prior_precision for r in results]),
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    from bayesunlearn.io import datasets, settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    regression = sorted(name for name, table in datasets.PACKAGED.items() if table.classes is None)
    parser.add_argument("--source", default="concrete", choices=regression)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="processes, one split at a time each")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    print(json.dumps(protocol(args.source, args.splits, settings.load(args.params), args.workers), indent=2))


if __name__ == "__main__":
    main()
