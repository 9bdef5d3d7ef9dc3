"""DVC stage `fit_laplace`: full-GGN Laplace posterior of the full training data at the MAP."""

from bayesunlearn import datasets, store

from .common import MODELS, PREPARED, deterministic_tensorflow, run


def main() -> None:
    deterministic_tensorflow()
    from bayesunlearn.laplace import fit_laplace
    from bayesunlearn.model import RegressionModel

    meta, arrays = store.load_arrays(MODELS / "original" / "map.npz")
    x, y = datasets.arrays(store.load_table(PREPARED / "train.csv"))
    posterior = fit_laplace(RegressionModel.from_dict(meta["model"]), arrays["theta"], x, y)
    posterior.save(MODELS / "original" / "laplace.npz")
    print(f"GGN Laplace posterior over {posterior.n_params} parameters")


if __name__ == "__main__":
    run(main)
