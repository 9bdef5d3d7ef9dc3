"""DVC stage `fit_posterior@KIND`: the original posterior of one kind, at the full-data MAP.

Usage: python -m stages.fit_posterior KIND   (full_ggn, full_hessian, diag_ggn, last_layer,
vi_mean_field or vi_full). Depends on the full data only, never on deletion requests.
"""

from bayesunlearn.io import datasets, store

from .common import MODELS, PREPARED, kind_argument, run, settings


def main() -> None:
    kind = kind_argument(__doc__)
    from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
    from bayesunlearn.model.likelihood import RegressionModel

    meta, arrays = store.load_arrays(MODELS / "original" / "map.npz")
    x, y = datasets.arrays(store.load_table(PREPARED / "train.csv"))
    posterior = fit_posterior(kind, RegressionModel.from_dict(meta["model"]), arrays["theta"], x, y, FitSettings.of(settings()))
    posterior.save(MODELS / "original" / f"{kind}.npz")
    print(f"{kind} posterior over {posterior.n_params} parameters {posterior.diagnostics or ''}")


if __name__ == "__main__":
    run(main)
