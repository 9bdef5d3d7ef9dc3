"""`make bench`: unlearning vs retraining on the default model, random and cluster deletion.

Prints one JSON object and saves it, with predictive plots, under bench/results/.
Each case: the original GGN-Laplace posterior of the default data, the forgotten
set removed by Gaussian division, and `retrain.seeds` retrains from scratch on
the retained data (the reference and the noise floor). Timings are medians of
warm repeats in this one process, so the ratio is fair on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN may reorder float sums

HEADLINE = ["unlearn_seconds", "retrain_seconds", "speedup", "pred_kl_unlearned_retrained",
            "pred_kl_original_retrained", "pred_kl_retrain_floor", "kl_unlearned_retrained",
            "kl_original_retrained", "indistinguishability", "gain", "min_eig_precision"]


def forget_masks(x: np.ndarray, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """`random`: a random fraction of the training records; `cluster`: every record right of the gap."""
    random = np.zeros(len(x), dtype=bool)
    random[np.random.default_rng(seed).permutation(len(x))[: round(fraction * len(x))]] = True
    return {"random": random, "cluster": x[:, 0] > 0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="parameters of data, model and training")
    parser.add_argument("--fraction", type=float, default=0.1, help="share forgotten in the random case")
    parser.add_argument("--repeats", type=int, default=5, help="warm timing repeats (median)")
    parser.add_argument("--out", default="bench/results", help="folder for bench.json and plots")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    from tqdm import tqdm

    from bayesunlearn import atomic, datasets
    from bayesunlearn.config import build_model, train_config
    from bayesunlearn.evaluation import Splits, compare, time_unlearning_vs_retraining
    from bayesunlearn.fitting import fit_from_scratch
    from bayesunlearn.plots import predictive_table, save_predictive_png
    from bayesunlearn.unlearn import forget

    params = yaml.safe_load(Path(args.params).read_text())
    p = params["prepare"]
    g = p["two_clusters"]
    frame = datasets.two_clusters(int(g["n_records"]), int(p["seed"]), float(g["noise_std"]), g["clusters"])
    train, test, _ = datasets.prepare(frame, float(p["test_fraction"]), int(p["seed"]), "two_clusters")
    x, y = datasets.arrays(train)
    x_test, y_test = datasets.arrays(test)
    model = build_model(params["model"], x.shape[1])
    config, seed = train_config(params["train"]), int(params["train"]["seed"])
    n_seeds = int(params["retrain"]["seeds"])

    original, _ = fit_from_scratch(model, x, y, seed, config)
    report: dict = {"model": {"n_params": model.spec.n_params, "n_train": len(x), "hidden": list(model.spec.hidden)}}
    for case, mask in forget_masks(x, args.fraction, seed).items():
        splits = Splits(x[~mask], y[~mask], x[mask], y[mask], x_test, y_test)
        unlearned, diagnostics = forget(original, splits.x_forgotten, splits.y_forgotten)
        retrains = [fit_from_scratch(model, splits.x_retained, splits.y_retained, seed + k, config)[0]
                    for k in tqdm(range(n_seeds), desc=f"{case}: retrains", unit="seed", file=sys.stderr)]
        result = {**compare(original, unlearned, retrains, splits), **diagnostics.to_dict(),
                  **time_unlearning_vs_retraining(original, splits, seed, config, args.repeats)}
        report[case] = {k: result[k] for k in HEADLINE} | {"n_forgotten": int(mask.sum()), "details": result}
        table = predictive_table({"original": original, "unlearned": unlearned, "retrained": retrains[0]}, splits, 200)
        save_predictive_png(Path(args.out) / f"predictive_{case}.png", table, splits,
                            f"{case} deletion: {int(mask.sum())} of {len(x)} records forgotten")
    atomic.write_json(Path(args.out) / "bench.json", report)
    print(json.dumps({k: v if k == "model" else {m: v[m] for m in HEADLINE + ["n_forgotten"]}
                      for k, v in report.items()}, indent=2))


if __name__ == "__main__":
    main()
