"""The curvature sum of a Laplace fit as a map-reduce over shards of the training table, on Dask.

Every curvature a Laplace kind needs (full GGN, exact Hessian, diagonal, last-layer block, KFAC
factors, EK-FAC's sums) and the NLL gradient is a sum over records. With `laplace.shards` = S > 1, the table's rows
are cut into S contiguous shards; each task reads only its own rows of the DVC-tracked CSV and returns
its partial sum, and the partial sums are added in shard order. The result therefore depends on S, not
on how many workers ran, which worker ran which shard, or a worker lost mid-fit (Dask reruns the
shards it held): the fit stays byte-reproducible, so the cluster is not a DVC parameter of the fit. It
equals the one-process sum to rounding. (Workers on other CPUs may pick other BLAS kernels, whose
rounding differs: byte-identical fits need workers of one kind, as any BLAS result does.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayesunlearn.io import datasets
from bayesunlearn.io.progress import progress
from bayesunlearn.kinds import KINDS
from bayesunlearn.model.curvature import EigenbasisSums, KroneckerFactors, eigenbases
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.posteriors.laplace import SUBNETWORK_SIZE, Bases, DataTerm, data_curvature
from bayesunlearn.posteriors.subnetwork import SubnetworkCurvature, choose


@dataclass(frozen=True)
class Shard:
    """Rows [start, stop) of a prepared table (a CSV with a header row)."""

    path: str
    start: int
    stop: int


def shards_of(path: str | Path, n_records: int, count: int) -> list[Shard]:
    """`count` contiguous shards of as equal size as possible (never empty)."""
    if n_records < 1:
        raise ValueError(f"{path} has no records to fit a posterior to")
    bounds = np.linspace(0, n_records, min(count, n_records) + 1).round().astype(int)
    return [Shard(str(path), int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def read_shard(shard: Shard) -> tuple[np.ndarray, np.ndarray]:
    """The shard's rows only, with values exact as the table stores them (io/store.py)."""
    frame = pd.read_csv(shard.path, float_precision="round_trip", skiprows=range(1, shard.start + 1),
                        nrows=shard.stop - shard.start, dtype={datasets.ID: str})
    return datasets.arrays(frame)


def shard_curvature(kind: str, model: RegressionModel, theta: np.ndarray, shard: Shard,
                    indices: np.ndarray | None = None, bases: Bases | None = None) -> DataTerm:
    """One map task: the data term over one shard (a subnetwork's: over `indices`; EK-FAC's: at `bases`)."""
    x, y = read_shard(shard)
    return data_curvature(KINDS[kind], model, theta, x, y, indices, bases)


def add(total: DataTerm, part: DataTerm) -> DataTerm:
    matrix, gradient = total
    if isinstance(matrix, KroneckerFactors | EigenbasisSums | SubnetworkCurvature):
        return matrix.plus(part[0]), gradient + part[1]
    return matrix + part[0], gradient + part[1]


def sharded_curvature(kind: str, model: RegressionModel, theta: np.ndarray, shards: list[Shard],
                      client=None, subnetwork_size: int = SUBNETWORK_SIZE) -> DataTerm:
    """The data term of the whole table: shards mapped on `client` (a dask.distributed Client), or one
    after another in this process when there is none; reduced in shard order either way. A subnetwork
    takes two passes: the diagonal its weights are chosen by, then the block over them; EK-FAC too: the
    KFAC factors its bases are chosen by (in this process, from their sum), then the sums at them."""
    storage = KINDS[kind].storage
    if storage not in ("subnetwork", "ekfac"):
        return _map_reduce(kind, model, theta, shards, client, None, f"{kind} curvature")
    first, _ = _map_reduce(kind, model, theta, shards, client, None,
                           f"{kind}: {'factors' if storage == 'ekfac' else 'diagonal'}")
    if storage == "ekfac":
        return _map_reduce(kind, model, theta, shards, client, None, f"{kind}: eigenbasis sums",
                           eigenbases(first))
    indices = choose(first, model.prior_precision, subnetwork_size)
    return _map_reduce(kind, model, theta, shards, client, indices, f"{kind}: block")


def _map_reduce(kind, model, theta, shards, client, indices, desc: str, bases=None) -> DataTerm:
    if client is None:
        parts: Iterator[DataTerm] = (shard_curvature(kind, model, theta, shard, indices, bases) for shard in shards)
    else:
        n = len(shards)
        futures = client.map(shard_curvature, [kind] * n, [model] * n, [theta] * n, shards, [indices] * n,
                             [bases] * n, pure=False)
        parts = _in_order(futures)
    with progress(parts, desc=desc, total=len(shards), unit="shard") as done:  # counted as they are added
        total = None
        for part in done:
            total = part if total is None else add(total, part)
    return total


def _in_order(futures) -> Iterator[DataTerm]:
    for future in futures:
        yield future.result()
        future.release()  # the worker may drop the partial sum once it is added


@contextmanager
def dask_client(address: str | None, n_workers: int):
    """A client of the scheduler at `address`, or of a local cluster of `n_workers` processes with one
    thread each (the sweep's settings); None when n_workers is 0 and there is no address."""
    if address is None and n_workers == 0:
        yield None
        return
    from distributed import Client, LocalCluster

    if address is not None:
        with Client(address) as client:
            yield client
        return
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client
