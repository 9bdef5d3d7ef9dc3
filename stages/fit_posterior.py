"""DVC stage `fit_posterior@KIND`: the original posterior of one kind, at the full-data MAP.

Usage: python -m stages.fit_posterior KIND   (full_ggn, full_hessian, diag_ggn, last_layer, kfac, ekfac,
subnetwork, vi_mean_field or vi_full). Depends on the full data only, never on deletion requests. With
`laplace.shards` > 1 a Laplace kind's curvature is summed over row shards on Dask (posteriors/sharded.py).
"""

from bayesunlearn.io import datasets, store
from bayesunlearn.kinds import KINDS

from .common import MODELS, PREPARED, kind_argument, run, settings


def main() -> None:
    kind = kind_argument(__doc__)
    from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
    from bayesunlearn.model.likelihood import RegressionModel

    meta, arrays = store.load_arrays(MODELS / "original" / "map.npz")
    table = PREPARED / "train.csv"
    x, y = datasets.arrays(store.load_table(table))
    model, theta, config = RegressionModel.from_dict(meta["model"]), arrays["theta"], settings()
    data = None
    if config.laplace.shards > 1 and KINDS[kind].family == "laplace":
        data = _sharded(kind, model, theta, table, len(x), config)
    posterior = fit_posterior(kind, model, theta, x, y, FitSettings.of(config), data)
    posterior.save(MODELS / "original" / f"{kind}.npz")
    print(f"{kind} posterior over {posterior.n_params} parameters {posterior.diagnostics or ''}")


def _sharded(kind, model, theta, table, n_records, config):
    """The curvature sum over `laplace.shards` row shards on the sweep's Dask cluster (`sweep.address`, else a
    local cluster of `sweep.n_workers`). The result does not depend on the cluster, so those are not params."""
    from bayesunlearn.posteriors.sharded import dask_client, sharded_curvature, shards_of

    shards = shards_of(table, n_records, config.laplace.shards)
    with dask_client(config.sweep.address, config.sweep.n_workers) as client:
        return sharded_curvature(kind, model, theta, shards, client, config.laplace.subnetwork_size)


if __name__ == "__main__":
    run(main)
