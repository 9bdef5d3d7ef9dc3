"""The curvature sum as a map-reduce over shards of the table (posteriors/sharded.py): equal to the
one-process sum, independent of the cluster, and unharmed by a worker killed mid-fit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesunlearn.io import datasets, store
from bayesunlearn.kinds import KINDS
from bayesunlearn.model.curvature import EigenbasisSums, KroneckerFactors, eigenbases
from bayesunlearn.posteriors.subnetwork import SubnetworkCurvature, choose
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.network import MLPSpec
from bayesunlearn.posteriors.laplace import data_curvature, fit_laplace
from bayesunlearn.posteriors.sharded import read_shard, sharded_curvature, shards_of

KINDS_WITHOUT_TENSORFLOW = ("full_ggn", "diag_ggn", "last_layer", "kfac", "ekfac", "subnetwork")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(4)
    n = 301
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame({datasets.ID: [f"r{i:04d}" for i in range(n)], "a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                          datasets.TARGET: np.sin(x[:, 0]) * x[:, 1] + rng.normal(0, 0.1, n)})
    path = tmp_path_factory.mktemp("shards") / "train.csv"
    store.save_table(path, frame)
    model = RegressionModel(MLPSpec(3, (7, 5)), prior_precision=1.0, noise_std=0.2)
    return path, model, rng.normal(0, 0.5, model.spec.n_params)


def parts(term):
    matrix, gradient = term
    if isinstance(matrix, KroneckerFactors):
        return [*matrix.inputs, *matrix.sensitivities, np.array([matrix.count]), gradient]
    if isinstance(matrix, SubnetworkCurvature):
        return [matrix.indices, matrix.diagonal, matrix.block, gradient]
    if isinstance(matrix, EigenbasisSums):
        return [*matrix.left, *matrix.right, *matrix.sums, np.array([matrix.count]), gradient]
    return [matrix, gradient]


def assert_relative(actual, expected, tol):
    for a, e in zip(parts(actual), parts(expected), strict=True):
        assert np.abs(a - e).max() <= tol * np.abs(e).max()


def test_shards_cover_the_table_and_read_only_their_rows(table):
    path, _, _ = table
    shards = shards_of(path, 301, 4)
    assert [(s.start, s.stop) for s in shards] == [(0, 75), (75, 150), (150, 226), (226, 301)]
    x, y = datasets.arrays(store.load_table(path))
    rows = [read_shard(shard) for shard in shards]
    assert np.array_equal(np.concatenate([r[0] for r in rows]), x)  # exact values, in order
    assert np.array_equal(np.concatenate([r[1] for r in rows]), y)
    assert len(shards_of(path, 3, 8)) == 3  # never an empty shard


@pytest.mark.parametrize("kind", KINDS_WITHOUT_TENSORFLOW)
def test_the_sharded_sum_equals_the_one_process_sum(table, kind):
    path, model, theta = table
    x, y = datasets.arrays(store.load_table(path))
    whole = data_curvature(KINDS[kind], model, theta, x, y)
    if kind == "subnetwork":  # the weights of largest variance, chosen on the whole table's diagonal
        whole = data_curvature(KINDS[kind], model, theta, x, y, choose(whole[0], model.prior_precision, 30))
    sharded = sharded_curvature(kind, model, theta, shards_of(path, len(x), 5), None, 30)
    if kind == "ekfac":  # the sums at the bases of the sharded KFAC factors (a rounding apart from the whole's)
        factors = sharded_curvature("kfac", model, theta, shards_of(path, len(x), 5))[0]
        bases = eigenbases(factors)
        assert all(np.array_equal(a, b) for a, b in zip((*bases[0], *bases[1]), (*sharded[0].left, *sharded[0].right),
                                                        strict=True))
        whole = data_curvature(KINDS[kind], model, theta, x, y, bases=bases)
    assert_relative(sharded, whole, 1e-12)


def tied_table(path: Path, seed: int) -> tuple[RegressionModel, np.ndarray, np.ndarray, np.ndarray]:
    """A linear model whose weights on columns a and b have exactly equal GGN diagonals (b is a reversed:
    the same squares, summed in another order) straddling a cut of 2: c's weight has the largest variance,
    and one of a, b joins it. Rounding of the two sums decides their order unless the choice breaks ties."""
    rng = np.random.default_rng(seed)
    n = 301
    a = rng.normal(0, 0.1, n)
    frame = pd.DataFrame({datasets.ID: [f"r{i:04d}" for i in range(n)], "a": a, "b": a[::-1],
                          "c": rng.normal(0, 0.05, n), datasets.TARGET: rng.normal(size=n)})
    store.save_table(path, frame)
    model = RegressionModel(MLPSpec(3, ()), prior_precision=1.0, noise_std=0.2)
    x, y = datasets.arrays(store.load_table(path))
    return model, rng.normal(0, 0.5, model.spec.n_params), x, y


def test_the_sharded_subnetwork_chooses_the_serial_weights_when_diagonals_tie(tmp_path):
    swapped = 0
    for seed in range(8):
        path = tmp_path / f"tied{seed}.csv"
        model, theta, x, y = tied_table(path, seed)
        serial = fit_laplace(model, theta, x, y, "subnetwork", subnetwork_size=2)
        data = sharded_curvature("subnetwork", model, theta, shards_of(path, len(x), 2), None, 2)
        sharded = fit_laplace(model, theta, x, y, "subnetwork", data, subnetwork_size=2)
        whole = data_curvature(KINDS["subnetwork"], model, theta, x, y)[0][:2]
        swapped += (np.sign(whole[0] - whole[1]) != np.sign(data[0].diagonal[0] - data[0].diagonal[1]))
        assert serial.matrix.indices.tolist() == sharded.matrix.indices.tolist() == [0, 2]  # tie: lower index
        covariance = serial.matrix.covariance()
        assert np.abs(sharded.matrix.covariance() - covariance).max() <= 1e-12 * np.abs(covariance).max()
    assert swapped  # the repro: rounding does order the tied pair differently in the two sums


def kill_once(marker: str):
    """A worker plugin that ends its worker's process the first time any worker starts a task."""
    from distributed import WorkerPlugin

    class KillOnce(WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            if finish != "executing":
                return
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                return
            os.close(fd)
            os._exit(1)

    return KillOnce()


@pytest.mark.slow
def test_two_workers_give_the_same_bytes_and_survive_a_killed_worker(table, tmp_path):
    from distributed import Client, LocalCluster

    path, model, theta = table
    shards = shards_of(path, 301, 6)
    local = {kind: sharded_curvature(kind, model, theta, shards)
             for kind in ("full_ggn", "kfac", "ekfac", "subnetwork")}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        for kind, expected in local.items():
            for a, e in zip(parts(sharded_curvature(kind, model, theta, shards, client)), parts(expected), strict=True):
                assert np.array_equal(a, e)  # the cluster does not change a bit
        marker = Path(tmp_path) / "killed"
        client.register_plugin(kill_once(str(marker)), name="kill-once")
        survived = sharded_curvature("kfac", model, theta, shards, client)
        assert marker.exists()  # a worker did die mid-fit
        for a, e in zip(parts(survived), parts(local["kfac"]), strict=True):
            assert np.array_equal(a, e)


def test_the_stage_sums_over_its_shards_in_process_without_a_cluster(table):
    """fit_posterior with laplace.shards = 4 and sweep.n_workers = 0: the same map-reduce, in the stage's
    process, with the sweep's cluster settings and the subnetwork size read from params.yaml."""
    from bayesunlearn.io import settings
    from stages.fit_posterior import _sharded

    path, model, theta = table
    config = settings.load()
    config = config.model_copy(update={"laplace": config.laplace.model_copy(update={"shards": 4}),
                                       "sweep": config.sweep.model_copy(update={"n_workers": 0, "address": None})})
    for kind in ("kfac", "ekfac", "subnetwork"):
        expected = sharded_curvature(kind, model, theta, shards_of(path, 301, 4), None, config.laplace.subnetwork_size)
        for a, e in zip(parts(_sharded(kind, model, theta, path, 301, config)), parts(expected), strict=True):
            assert np.array_equal(a, e)
