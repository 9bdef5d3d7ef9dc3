"""Prefect flow `sweep`: methods × deletion mode × forgotten fraction × seed × network size, on Dask.

Every grid cell is an independent Prefect task on a DaskTaskRunner. The grid
and the Dask settings are params.yaml `sweep`; the outputs are
sweep/results.csv (one row per cell and method), sweep/summary.csv (medians)
and sweep/gain_vs_fraction.png, also written by `dvc repro sweep`.

  python -m flows.sweep                                # a local Dask cluster, sweep.n_workers processes
  python -m flows.sweep --address tcp://HOST:8786      # an existing scheduler (or sweep.address)
  python -m flows.sweep --serial                       # in this process, one cell at a time (or --workers 0)

Each cell is written atomically to sweep/cells/<key>/, where <key> digests the
params, data and core code it depends on: a rerun (after a crash, or with more
seeds) computes only the missing cells. A task that raises is retried
`sweep.retries` times by Prefect; tasks lost with a killed worker process are
re-run by Dask's scheduler elsewhere (tests/test_sweep.py kills one mid-cell).

An existing cluster needs the project's environment on the scheduler and the
workers, the repository on their PYTHONPATH (the scheduler unpickles the task
graph too), the repository folder at the same path (same machine or a shared
file system), and PREFECT_API_URL pointing at your Prefect server, e.g.
  PYTHONPATH=$PWD dask scheduler --host 127.0.0.1
  PYTHONPATH=$PWD PREFECT_API_URL=http://127.0.0.1:4200/api dask worker tcp://127.0.0.1:8786 --nthreads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from bayesunlearn.io import settings, store
from bayesunlearn.errors import ConfigError
from bayesunlearn.io.progress import progress
from bayesunlearn.io.settings import Settings
from bayesunlearn.experiments.sweep import SweepCell, SweepPlan, context_key
from bayesunlearn.experiments.sweep import plan as sweep_plan

from .intake import QUIET  # no task result is persisted or cached: tasks return a file name, never data
from .sweep_cells import CELLS, cell_config, compute_cell, inputs, read_cell

OUT = Path("sweep")
# Dask's scheduler, nanny and workers log every start and connection at INFO (dozens of lines a sweep);
# set before `distributed` is imported (by the task runner, and by each worker process).
os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "error")


def load_plan(root: Path) -> tuple[Settings, SweepPlan]:
    checked = settings.load(root / settings.PARAMS)
    return checked, sweep_plan(checked)


@task(**QUIET, task_run_name="cell {cell.name}")
def sweep_cell(root: str, config: dict, cell: SweepCell, folder: str) -> str:
    return str(compute_cell(Path(root), config, cell, Path(folder)))


@flow(name="sweep")
def sweep(repo: str = ".") -> dict:
    """Run every missing cell of the grid as a task, then collect the table, summary and figure."""
    root, logger, start = Path(repo).resolve(), get_run_logger(), time.perf_counter()
    checked, grid = load_plan(root)
    config = cell_config(checked, grid)
    folder = root / CELLS / context_key(config, root, inputs(root))
    cells = grid.cells()
    logger.info("%d cells (%d methods each) in %s", len(cells), len(grid.methods), folder)
    run = sweep_cell.with_options(retries=grid.retries, retry_delay_seconds=1)
    futures = [run.submit(str(root), config, cell, str(folder)) for cell in cells]
    # waited for in grid order (the table's row order); raises if a cell failed after its retries
    paths = [Path(future.result()) for future in progress(futures, desc="sweep", unit="cell")]
    rows = [row for path in paths for row in read_cell(path)]
    _write_outputs(root, rows)
    _prune_other_keys(folder)
    seconds = time.perf_counter() - start
    logger.info("sweep of %d cells done in %.1f s", len(cells), seconds)
    return {"cells": len(cells), "rows": len(rows), "seconds": seconds, "results": str(root / OUT / "results.csv")}


def _write_outputs(root: Path, rows: list[dict]) -> None:
    import pandas as pd

    from bayesunlearn.experiments.grid import summarise
    from bayesunlearn.experiments.study_plots import save_gain_vs_fraction

    results = pd.DataFrame(rows)
    summary = summarise(results, by=("method", "n_params", "hidden", "mode", "fraction"))
    store.save_table(root / OUT / "results.csv", results)
    store.save_table(root / OUT / "summary.csv", summary)
    save_gain_vs_fraction(root / OUT / "gain_vs_fraction.png", summary)


def _prune_other_keys(folder: Path) -> None:
    """Cells of other params/data/code can never be reused once this sweep is complete."""
    for other in folder.parent.iterdir():
        if other != folder and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def task_runner(plan: SweepPlan, address: str | None = None, n_workers: int | None = None,
                serial: bool = False) -> TaskRunner:
    """An existing scheduler (CLI address, else sweep.address), a local cluster, or in-process (serial).

    0 workers means in-process too: for a handful of tiny cells a cluster's start-up
    (about 15 s here: worker processes, each importing TensorFlow) costs more than the cells.
    """
    address = None if serial else address or plan.address
    n_workers = plan.n_workers if n_workers is None else n_workers
    if not address and (serial or n_workers == 0):
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    if address:
        check_scheduler(address)
        return DaskTaskRunner(address=address)
    # one thread per worker: TensorFlow already uses every core of its process
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1, "processes": True,
                                          "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0",
                                          "silence_logs": logging.ERROR})


def check_scheduler(address: str, timeout: float = 10) -> None:
    """Fail fast, with the remedy, rather than deep inside the task runner."""
    from distributed import Client

    try:
        Client(address, timeout=timeout).close()
    except (OSError, TimeoutError, ValueError) as err:
        raise ConfigError(f"cannot reach a Dask scheduler at {address!r} ({err}); start one (`dask scheduler`, "
                          f"then `dask worker {address}`), fix --address / sweep.address, or drop it to use "
                          f"a local cluster.") from None


@contextmanager
def one_prefect_api() -> Iterator[None]:
    """Point every process of the run at one Prefect API, through the environment.

    Local Dask workers are new processes: they see the environment, not this
    process's settings, and with no API there each started a temporary server of
    its own (about 20 s each, measured). So start the temporary server here when
    none is configured, and export whichever API is in use while the cluster runs.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()  # the same instance Prefect's own client would start
        server.start()
        url = server.api_url
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield
    finally:
        if previous is None:
            del os.environ["PREFECT_API_URL"]
        else:
            os.environ["PREFECT_API_URL"] = previous


def run_sweep(repo: str = ".", address: str | None = None, n_workers: int | None = None,
              serial: bool = False) -> dict:
    root = Path(repo).resolve()
    _, grid = load_plan(root)  # bad params and an unreachable scheduler fail here, before any server starts
    runner = task_runner(grid, address, n_workers, serial)
    with one_prefect_api():
        return sweep.with_options(task_runner=runner)(repo=str(root))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC workspace (default: the current folder)")
    parser.add_argument("--address", help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                                          "(default: sweep.address, else a local cluster)")
    parser.add_argument("--workers", type=int, help="worker processes of the local cluster "
                                                    "(default: sweep.n_workers; 0 = no cluster, like --serial)")
    parser.add_argument("--serial", action="store_true", help="no Dask: run the cells one by one in this process")
    args = parser.parse_args()
    print(json.dumps(run_sweep(args.repo, args.address, args.workers, args.serial), indent=2))


if __name__ == "__main__":
    from stages.common import run

    from flows.sweep import main as entry  # tasks must pickle as `flows.sweep.*`, not `__main__.*`

    run(entry)
