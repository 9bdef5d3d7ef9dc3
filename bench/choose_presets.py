"""How the presets' width, noise and prior precision are chosen: the Laplace evidence on each table's training part.

Per table, prepared as `dvc exp run headline` with its preset prepares it: the MAP trained as the pipeline
trains it with the preset's Adam steps and 200 steps of the GGN polish, `lm` (its steps are cheap, and the
evidence needs the basin, not the last digits; the experiment's own runs judge convergence), then the prior precision α (and,
for a real target, the noise σ) chosen by the full-GGN Laplace evidence at that MAP
(`laplace.optimize_hyperparameters`' optimiser), and the MAP trained on from there under the chosen values;
`ROUNDS` alternations (MacKay's scheme, as bench/uci.py), from σ = 1 (a standardised target's own spread:
from a small σ the scheme can stay in a basin that interpolates the training data). The scheme runs for
networks of each width of `WIDTHS` and the one of highest evidence is chosen, with its α and σ (on 354
records, 50 hidden units overfit diabetes: test RMSE above the target's spread). Prints, per table, the
chosen values (α and σ to 2 significant figures) and every run: its log evidence, test RMSE (standardised,
for a real target) and each round's values and MAP.

    python -m bench.choose_presets concrete penguins
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.presets import PRESETS, settings_of

ROUNDS = 2
WIDTHS = (50, 10, 3)  # hidden units of the one-layer networks compared by their evidence
START_NOISE = 1.0  # σ the scheme starts from (α from 1): a standardised target's own spread


def rounds_from(model, x, y, x_test, y_test, theta, train) -> dict:
    """MacKay's scheme from `model`'s α and σ: the chosen values, their log evidence, each round's MAP."""
    from bayesunlearn.model.network import outputs
    from bayesunlearn.model.training import fit_map
    from bayesunlearn.numerics.metrics import rmse
    from bayesunlearn.posteriors.laplace import fit_laplace, log_marginal_likelihood, optimize_hyperparameters

    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        theta, info = fit_map(model, x, y, theta, train)
        seconds = time.perf_counter() - start
        tuned = optimize_hyperparameters(fit_laplace(model, theta, x, y, "full_ggn"), x, y)
        model = tuned.model
        rounds.append({"prior_precision": model.prior_precision, "noise_std": model.noise_std,
                       "grad_norm": info["grad_norm"], "polish_iterations": info["polish_iterations"],
                       "seconds": round(seconds, 1)})
        print(f"{rounds[-1]}", file=sys.stderr)
    print(f"log evidence {log_marginal_likelihood(tuned, x, y):.1f}", file=sys.stderr)
    result = {"log_evidence": log_marginal_likelihood(tuned, x, y),
              "rounds": rounds, "model": model}
    if model.gaussian:  # standardised units: a real target's spread is 1
        result["test_rmse"] = rmse(y_test, outputs(model.spec, theta, x_test))
    return result


def choose(name: str, widths: tuple[int, ...] = WIDTHS) -> dict:
    """The table's width, α (and σ): of the scheme's runs for each width, the one of highest evidence."""
    from bayesunlearn.io import datasets
    from bayesunlearn.model.likelihood import build_model

    s = settings_of(name)
    p = s.prepare
    frame, origin = datasets.load_source(p)
    train, test, _ = datasets.prepare(frame, p.test_fraction, p.seed, origin, p.target_kind,
                                      datasets.class_labels(p))
    (x, y), (x_test, y_test) = (datasets.arrays(datasets.subsample(part, p.max_records, p.seed))
                                for part in (train, test))
    # cheap steps (the evidence needs the basin, not the last digits), Adam as the preset trains
    train_settings = s.train.model_copy(update={"polish": "lm", "polish_iterations": 200})
    runs = []
    for width in widths:
        section = s.model.model_copy(update={"hidden": [width], "noise_std": START_NOISE, "prior_precision": 1.0})
        model = build_model(section, x.shape[1], datasets.n_classes(p))
        print(f"{name}, {width} hidden units:", file=sys.stderr)
        runs.append({**rounds_from(model, x, y, x_test, y_test, model.spec.init(s.train.seed), train_settings),
                     "hidden": [width]})
    best = max(runs, key=lambda r: r["log_evidence"])
    chosen = {"model.hidden": best["hidden"], "model.prior_precision": float(f"{best['model'].prior_precision:.2g}")}
    if best["model"].gaussian:
        chosen["model.noise_std"] = float(f"{best['model'].noise_std:.2g}")
    return {"table": name, "n_train": len(x), "n_params": best["model"].spec.n_params, "chosen": chosen,
            "runs": [{k: v for k, v in r.items() if k != "model"} for r in runs]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="*", help=f"of {', '.join(PRESETS)} (default: every table)")
    parser.add_argument("--widths", nargs="+", type=int, default=list(WIDTHS), help="hidden units compared")
    args = parser.parse_args(argv)
    if unknown := [name for name in args.tables if name not in PRESETS]:
        parser.error(f"no preset for {unknown}; the tables are {list(PRESETS)}")
    print(json.dumps([choose(name, tuple(args.widths)) for name in args.tables or PRESETS], indent=2))


if __name__ == "__main__":
    main()
