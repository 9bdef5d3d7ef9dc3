"""`make bench`: unlearning vs retraining, per method, for random and cluster deletion.

Prints one JSON object and saves it, with predictive plots, under bench/results/:
- "random" / "cluster": the default method (GGN Laplace, Newton step), with the
  retrain noise floor (`retrain.seeds` retrains from scratch);
- "methods": {NAME: {"random": {...}, "cluster": {...}}} for every configured method;
- "intake_latency": request file in the inbox → new served posterior (bench/latency.py).
`random` forgets 10 % of the training records at random, `cluster` every record
of the right input cluster. Timings are medians of warm repeats in this one
process, so ratios are fair on a noisy machine.
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

DEFAULT_METHOD = "ggn_newton"
HEADLINE = ["unlearn_seconds", "retrain_seconds", "speedup", "pred_kl_unlearned_retrained",
            "pred_kl_original_retrained", "pred_kl_retrain_floor", "kl_unlearned_retrained",
            "kl_original_retrained", "indistinguishability", "gain"]


def forget_masks(x: np.ndarray, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """`random`: a random fraction of the training records; `cluster`: every record right of the gap."""
    from bayesunlearn.study import forget_mask

    return {"random": forget_mask(x, "random", fraction, seed), "cluster": x[:, 0] > 0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="parameters of data, model, training, methods")
    parser.add_argument("--fraction", type=float, default=0.1, help="share forgotten in the random case")
    parser.add_argument("--repeats", type=int, default=3, help="warm timing repeats (median)")
    parser.add_argument("--methods", nargs="*", help="only these methods (default: all configured)")
    parser.add_argument("--out", default="bench/results", help="folder for bench.json and plots")
    parser.add_argument("--no-latency", action="store_true", help="skip the intake-latency measurement")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    from tqdm import tqdm

    from bayesunlearn import atomic, datasets
    from bayesunlearn.config import build_model, train_config
    from bayesunlearn.evaluation import Splits, compare, time_unlearning_vs_retraining
    from bayesunlearn.methods import FitSettings, fit_posterior, unlearn
    from bayesunlearn.options import parse_methods
    from bayesunlearn.plots import predictive_table, save_predictive_png
    from bayesunlearn.training import fit_map
    from bayesunlearn.datasets import load_source

    params = yaml.safe_load(Path(args.params).read_text())
    p = params["prepare"]
    frame, origin = load_source(p)  # the prepare stage's own loader: same data as the pipeline
    train, test, _ = datasets.prepare(frame, float(p["test_fraction"]), int(p["seed"]), origin)
    x, y = datasets.arrays(train)
    x_test, y_test = datasets.arrays(test)
    model = build_model(params["model"], x.shape[1])
    config, seed = train_config(params["train"]), int(params["train"]["seed"])
    settings = FitSettings(bool(params["laplace"].get("optimize_hyperparameters")), params["vi"])
    methods = parse_methods(params["methods"])
    if args.methods:
        methods = {name: methods[name] for name in args.methods}
    kinds = sorted({m.posterior for m in methods.values()})
    n_seeds = int(params["retrain"]["seeds"])

    theta, _ = fit_map(model, x, y, model.spec.init(seed), config)
    originals = {k: fit_posterior(k, model, theta, x, y, settings) for k in kinds}
    report: dict = {"model": {"n_params": model.spec.n_params, "n_train": len(x), "hidden": list(model.spec.hidden)},
                    "methods": {}}
    for case, mask in forget_masks(x, args.fraction, seed).items():
        splits = Splits(x[~mask], y[~mask], x[mask], y[mask], x_test, y_test)
        maps = [fit_map(model, splits.x_retained, splits.y_retained, model.spec.init(seed + k), config)[0]
                for k in tqdm(range(n_seeds), desc=f"{case}: retrain MAPs", unit="seed", file=sys.stderr)]
        for name, method in tqdm(methods.items(), desc=f"{case}: methods", unit="method", file=sys.stderr):
            retrains = [fit_posterior(method.posterior, model, t, splits.x_retained, splits.y_retained, settings)
                        for t in maps]
            original = originals[method.posterior]
            unlearned, status = unlearn(method, original, splits.x_forgotten, splits.y_forgotten)
            result = {**compare(original, unlearned or original, retrains, splits),
                      **time_unlearning_vs_retraining(method, original, splits, seed, config, settings, args.repeats),
                      "failed": int(unlearned is None), "n_forgotten": int(mask.sum())}
            report["methods"].setdefault(name, {})[case] = {k: result[k] for k in HEADLINE + ["failed", "n_forgotten"]}
            if name == DEFAULT_METHOD:
                report[case] = {**report["methods"][name][case], "min_eig_precision": status.get("min_eig_precision")}
                table = predictive_table({"original": original, "unlearned": unlearned, "retrained": retrains[0]},
                                         splits, 200)
                save_predictive_png(Path(args.out) / f"predictive_{case}.png", table, splits,
                                    f"{name}, {case} deletion: {int(mask.sum())} of {len(x)} records forgotten")
    if not args.no_latency:
        import contextlib

        from bench.latency import measure

        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON alone
            report["intake_latency"] = measure()
    atomic.write_json(Path(args.out) / "bench.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
