"""DVC stage `retrain_posterior@KIND`: posteriors of one kind at each retrained MAP.

Usage: python -m stages.retrain_posterior KIND
"""

from pathlib import Path

from bayesunlearn import datasets, store

from .common import MODELS, SPLIT, deterministic_tensorflow, fit_settings, kind_argument, run


def main() -> None:
    kind = kind_argument(__doc__)
    deterministic_tensorflow()
    from bayesunlearn.methods import fit_posterior
    from bayesunlearn.model import RegressionModel

    x, y = datasets.arrays(store.load_table(SPLIT / "retained.csv"))
    for path in sorted(Path(MODELS / "retrained" / "maps").glob("map_*.npz")):
        meta, arrays = store.load_arrays(path)
        posterior = fit_posterior(kind, RegressionModel.from_dict(meta["model"]), arrays["theta"], x, y,
                                  fit_settings())
        posterior.save(MODELS / "retrained" / kind / path.name.replace("map_", "retrain_"))


if __name__ == "__main__":
    run(main)
