"""DVC stage `retrain_posterior@KIND`: posteriors of one kind at each retrained MAP.

Usage: python -m stages.retrain_posterior KIND
"""

from pathlib import Path

from bayesunlearn.io import datasets, store

from .common import MODELS, SPLIT, kind_argument, run, settings


def main() -> None:
    kind = kind_argument(__doc__)
    from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
    from bayesunlearn.model.likelihood import RegressionModel

    x, y = datasets.arrays(store.load_table(SPLIT / "retained.csv"))
    for path in sorted(Path(MODELS / "retrained" / "maps").glob("map_*.npz")):
        meta, arrays = store.load_arrays(path)
        posterior = fit_posterior(kind, RegressionModel.from_dict(meta["model"]), arrays["theta"], x, y,
                                  FitSettings.of(settings()))
        posterior.save(MODELS / "retrained" / kind / path.name.replace("map_", "retrain_"))


if __name__ == "__main__":
    run(main)
