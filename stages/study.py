"""DVC stage `study`: every method × deletion mode × forgotten fraction × seed, in one process.

Writes study/results.csv (one row per run), study/summary.csv (medians) and
study/pred_kl_vs_fraction.png, and study/cluster_bands.png (predictive bands of
every method when the largest configured fraction is forgotten as a cluster).
"""

from pathlib import Path

from bayesunlearn.io import datasets, store

from .common import MODELS, PREPARED, run, settings

OUT = "study"


def main() -> None:
    from bayesunlearn.posteriors.fit import FitSettings
    from bayesunlearn.posteriors.posterior import GaussianPosterior
    from bayesunlearn.experiments.study import run_study, summarise
    from bayesunlearn.experiments.report import study_block
    from bayesunlearn.experiments.study_plots import save_kl_vs_fraction, save_method_bands

    s = settings()
    p = s.study
    methods = s.chosen_methods(p.methods)
    x, y = datasets.arrays(store.load_table(PREPARED / "train.csv"))
    x_test, _ = datasets.arrays(store.load_table(PREPARED / "test.csv"))
    originals = {m.posterior: GaussianPosterior.load(MODELS / "original" / f"{m.posterior}.npz")
                 for m in methods.values()}
    model = next(iter(originals.values())).model
    keep = ("cluster", max(p.fractions), p.seeds[0])
    results, kept = run_study(model, x, y, x_test, originals, methods, s.train, FitSettings.of(s), p.modes,
                              p.fractions, p.seeds, s.train.seed, keep=keep)
    summary = summarise(results)
    store.save_table(f"{OUT}/results.csv", results)
    store.save_table(f"{OUT}/summary.csv", summary)
    save_kl_vs_fraction(f"{OUT}/pred_kl_vs_fraction.png", summary)
    if kept and x.shape[1] == 1 and model.gaussian:  # bands of a real target over its one input
        save_method_bands(f"{OUT}/cluster_bands.png", kept, x, y,
                          f"forgetting {keep[1]:.0%} of the records from the right edge (cluster)")
    print(study_block(Path(OUT) / "summary.csv"))


if __name__ == "__main__":
    run(main)
