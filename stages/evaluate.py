"""DVC stage `evaluate@METHOD`: the unlearned posterior against retrains from scratch and the original.

Usage: python -m stages.evaluate METHOD
Writes deterministic metrics (metrics/evaluate/METHOD.json, tracked by DVC),
the predictive plot, and wall-clock timings (metrics/timing/METHOD.json, and a
copy filed under the results' md5 for `make experiments`; both kept out of
dvc.lock and git because no two runs time alike).
"""

import json
from pathlib import Path

from bayesunlearn.io import atomic, store
from bayesunlearn.io.progress import advance, progress

from .common import (
    METRICS,
    MODELS,
    PLOTS,
    load_splits,
    one_argument,
    run,
    settings,
)


def main() -> None:
    name = one_argument(__doc__)
    chosen = settings().method(name)
    from bayesunlearn.posteriors.fit import FitSettings
    from bayesunlearn.experiments.evaluation import compare, time_unlearning_vs_retraining
    from bayesunlearn.experiments import timings
    from bayesunlearn.experiments.plots import predictive_table, save_predictive_png
    from bayesunlearn.posteriors.posterior import GaussianPosterior

    p = settings().evaluate
    original = GaussianPosterior.load(MODELS / "original" / f"{chosen.posterior}.npz")
    unlearned = GaussianPosterior.load(MODELS / "unlearned" / f"{name}.npz")
    retrains = [GaussianPosterior.load(f) for f in sorted(Path(MODELS / "retrained" / chosen.posterior).glob(
        "retrain_*.npz"), key=lambda f: int(f.stem.split("_")[1]))]
    report = json.loads((METRICS / "unlearn" / f"{name}.json").read_text())
    splits = load_splits()
    # the comparison, the plot, then a warm-up and `timing_repeats` timed calls of unlearning and of a retrain
    bar = progress(total=2 + 2 * (max(1, p.timing_repeats) + 1), desc=f"evaluate {name}",
                   postfix=f"comparing with {len(retrains)} retrains")

    results = compare(original, unlearned, retrains, splits)
    results.update(method=name, posterior=chosen.posterior, operator=chosen.operator,
                   failed=int(report["status"] != "ok"),
                   **{k: report[k] for k in ("min_eig_precision", "n_negative_eigs", "repair", "step_length",
                                             "refine_steps", "kl_to_original", "effective_sample_size") if k in report})
    atomic.write_json(METRICS / "evaluate" / f"{name}.json", results)

    advance(bar, "predictive plot")
    table = predictive_table({"original": original, "unlearned": unlearned, "retrained": retrains[0]},
                             splits, p.plot_grid_points)
    store.save_table(PLOTS / "predictive" / f"{name}.csv", table)
    n_f, n_r = len(splits.y_forgotten), len(splits.y_retained)
    save_predictive_png(PLOTS / "predictive" / f"{name}.png", table, splits,
                        f"{name}: forgot {n_f} of {n_f + n_r} training records"
                        + (" (FAILED: original kept)" if results["failed"] else ""))
    bar.update()

    timing = time_unlearning_vs_retraining(chosen, original, splits, settings().train.seed, settings().train,
                                           FitSettings.of(settings()), p.timing_repeats, bar)
    bar.close()
    atomic.write_json(METRICS / "timing" / f"{name}.json", timing)
    timings.record(METRICS / "evaluate" / f"{name}.json", timing)  # found again by `make experiments`
    print(f"{name}: predictive KL to retrain: unlearned {results['pred_kl_unlearned_retrained']:.3g}, "
          f"original {results['pred_kl_original_retrained']:.3g}, floor {results['pred_kl_retrain_floor']:.3g}, "
          f"gain {results['gain']:.3g}; speedup {timing['speedup']:.0f}x")


if __name__ == "__main__":
    run(main)
