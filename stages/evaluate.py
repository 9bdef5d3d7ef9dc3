"""DVC stage `evaluate`: the unlearned posterior against retrains from scratch and the original.

Writes deterministic metrics (metrics/evaluate.json, tracked by DVC) and
wall-clock timings (metrics/timing.json, listed as metrics but kept out of
dvc.lock because no two runs time alike), plus the predictive plot.
"""

import json
from pathlib import Path

from bayesunlearn import atomic, datasets, store
from bayesunlearn.config import train_config

from .common import METRICS, MODELS, PLOTS, PREPARED, SPLIT, deterministic_tensorflow, params, run


def main() -> None:
    deterministic_tensorflow()
    from bayesunlearn.evaluation import Splits, compare, time_unlearning_vs_retraining
    from bayesunlearn.posterior import GaussianPosterior
    from bayesunlearn.plots import predictive_table, save_predictive_png

    p = params("evaluate")
    original = GaussianPosterior.load(MODELS / "original" / "laplace.npz")
    unlearned = GaussianPosterior.load(MODELS / "unlearned" / "laplace.npz")
    retrains = [GaussianPosterior.load(f) for f in sorted(Path(MODELS / "retrained").glob("retrain_*.npz"),
                                                          key=lambda f: int(f.stem.split("_")[1]))]
    retained, forgotten = store.load_table(SPLIT / "retained.csv"), store.load_table(SPLIT / "forgotten.csv")
    splits = Splits(*datasets.arrays(retained), *datasets.arrays(forgotten),
                    *datasets.arrays(store.load_table(PREPARED / "test.csv")))

    results = compare(original, unlearned, retrains, splits)
    results["min_eig_precision"] = json.loads((METRICS / "unlearn.json").read_text())["min_eig_precision"]
    atomic.write_json(METRICS / "evaluate.json", results)

    table = predictive_table({"original": original, "unlearned": unlearned, "retrained": retrains[0]},
                             splits, int(p["plot_grid_points"]))
    store.save_table(PLOTS / "predictive.csv", table)
    save_predictive_png(PLOTS / "predictive.png", table, splits,
                        f"forgot {len(forgotten)} of {len(forgotten) + len(retained)} training records")

    timing = time_unlearning_vs_retraining(original, splits, int(params("train")["seed"]),
                                           train_config(params("train")), int(p["timing_repeats"]))
    atomic.write_json(METRICS / "timing.json", timing)
    print(f"predictive KL to retrain: unlearned {results['pred_kl_unlearned_retrained']:.3g}, "
          f"original {results['pred_kl_original_retrained']:.3g}, floor {results['pred_kl_retrain_floor']:.3g}; "
          f"speedup {timing['speedup']:.0f}x")


if __name__ == "__main__":
    run(main)
