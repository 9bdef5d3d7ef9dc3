"""The sweep flow: Dask gives the serial numbers, cells resume and retry, bad params say how to fix them."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from bayesunlearn.io import settings
from bayesunlearn.errors import ConfigError
from bayesunlearn.experiments.sweep import plan as sweep_plan
from conftest import REPO, sh, tiny_repo

GRID = {"methods": ["ggn_newton", "ggn_damped"], "modes": ["random", "cluster"], "fractions": [0.1],
        "seeds": [0, 1], "hidden": [[4], [16]], "address": None, "n_workers": 2, "retries": 2}


def parse_sweep(section: dict):
    """The sweep plan of the repository's params.yaml with this `sweep` section."""
    raw = settings._yaml_load((REPO / "params.yaml").read_text())
    return sweep_plan(settings.parse({**raw, "sweep": section}))


@pytest.mark.parametrize("change, message", [
    ({"methods": ["ggn_newton", "nope"]}, r"sweep.methods: \['nope'\] are not configured methods; configured:"),
    ({"seeds": []}, r"sweep.seeds: List should have at least 1 item"),
    ({"fractions": [1.0]}, r"sweep.fractions.0: Input should be less than 1"),
    ({"modes": ["sideways"]}, r"sweep.modes.0: Input should be 'random' or 'cluster'"),
    ({"hidden": [[0]]}, r"sweep.hidden: \[0\] must list layer widths from 1 to 10,000"),
    ({"n_workers": -1}, r"sweep.n_workers: Input should be greater than or equal to 0 \(got -1\)"),
])
def test_bad_sweep_params_name_the_problem_and_the_fix(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweep({**GRID, **change})


def test_grid_covers_every_size_and_case_once():
    cells = parse_sweep(GRID).cells()
    names = [c.name for c in cells]
    assert len(names) == len(set(names)) == 2 * (2 + 1)  # sizes × (random seeds + one cluster case)
    assert names[0] == "h4/random-0.1-s0" and names[-1] == "h16/cluster-0.1-s0"


def test_the_runner_is_a_local_dask_cluster_unless_serial_or_zero_workers():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.sweep import task_runner

    plan = parse_sweep(GRID)
    assert isinstance(task_runner(plan), DaskTaskRunner)  # built, not started: no cluster yet
    assert isinstance(task_runner(plan, serial=True), ThreadPoolTaskRunner)
    assert isinstance(task_runner(plan, n_workers=0), ThreadPoolTaskRunner)


def test_an_unreachable_scheduler_is_a_config_error():
    from flows.sweep import check_scheduler

    with pytest.raises(ConfigError, match=r"cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'.*local cluster"):
        check_scheduler("tcp://127.0.0.1:9", timeout=2)


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A tiny repository whose `sweep` section is GRID (6 cells, 2 methods each)."""
    return tiny_repo(tmp_path_factory.mktemp("sweep"), {("sweep",): GRID})


def cell_files(root: Path) -> list[Path]:
    return sorted((root / "sweep" / "cells").glob("*/h*/*.json"))


def assert_same_table(got: str, expected: str, rel: float = 1e-9) -> None:
    """The same rows, labels and counts exactly, every number to `rel`: a cell recomputed in a process whose
    history differs (a resumed sweep, a restarted worker) can differ in its last digits (README,
    "Reproducibility"); any real difference is orders of magnitude larger."""
    import io

    import numpy as np
    import pandas as pd

    a, b = (pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""]) for text in (got, expected))
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for column in a.columns:
        if pd.api.types.is_float_dtype(a[column]) and pd.api.types.is_float_dtype(b[column]):
            np.testing.assert_allclose(a[column], b[column], rtol=rel, atol=0, err_msg=column)
        else:
            assert a[column].tolist() == b[column].tolist(), column


def serial_table(swept: Path) -> str:
    """results.csv of `python -m flows.sweep --serial`: the cells one by one in a new process, as a user runs
    it (not in the test process, whose TensorFlow and BLAS have served hundreds of other tests)."""
    shutil.rmtree(swept / "sweep" / "cells", ignore_errors=True)
    result = sh("python", "-m", "flows.sweep", "--serial", cwd=swept)  # PREFECT_API_URL: the caller's test server
    assert '"cells": 6' in result.stdout and '"rows": 12' in result.stdout and len(cell_files(swept)) == 6
    return (swept / "sweep" / "results.csv").read_text()


@pytest.mark.slow
def test_dask_sweep_through_dvc_equals_serial_execution(prefect, swept, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())  # the flows report to the test server
    start = time.perf_counter()
    expected = serial_table(swept)
    serial_seconds = time.perf_counter() - start

    shutil.rmtree(swept / "sweep" / "cells")  # nothing to resume: the cluster computes every cell
    start = time.perf_counter()
    sh("dvc", "repro", "study/dvc.yaml:sweep", cwd=swept)  # a local cluster of sweep.n_workers = 2 processes
    print(f"sweep of 6 cells: serial {serial_seconds:.1f} s, dvc repro on 2 Dask workers "
          f"{time.perf_counter() - start:.1f} s")
    assert (swept / "sweep" / "results.csv").read_text() == expected  # identical numbers, to the last digit
    assert (swept / "sweep" / "gain_vs_fraction.png").stat().st_size > 0
    summary = (swept / "sweep" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("method,n_params,hidden,mode,fraction,median_gain") and len(summary) == 1 + 8
    assert "up to date" in sh("dvc", "status", "study/dvc.yaml:sweep", cwd=swept).stdout


@pytest.mark.slow
def test_a_rerun_reuses_finished_cells_and_ignores_partial_writes(prefect, swept, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    from flows.sweep_cells import read_cell

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    before = serial_table(swept)
    files = cell_files(swept)
    lost, kept = files[0], files[1]
    lost.unlink()  # as if its worker died before the rename
    (lost.parent / f".{lost.name}.abc123.tmp").write_text('{"columns": ["hidden"], "rows": [[')  # half written
    doctored = kept.read_text().replace('"ggn_newton"', '"ggn_newton_reused"')
    kept.write_text(doctored)

    sh("python", "-m", "flows.sweep", "--serial", cwd=swept)
    assert kept.read_text() == doctored  # a finished cell is never recomputed
    after = (swept / "sweep" / "results.csv").read_text()
    assert "ggn_newton_reused" in after
    # the lost cell came back: the same rows, its numbers to their last digits but for the process's history
    assert_same_table(after.replace("ggn_newton_reused", "ggn_newton"), before)
    assert read_cell(lost)  # and it is a complete file again


@pytest.mark.slow
def test_a_failing_cell_is_retried_by_prefect(prefect, swept, monkeypatch):
    import flows.sweep

    attempts: list[str] = []
    real = flows.sweep.compute_cell

    def flaky(root, config, cell, folder):
        attempts.append(cell.name)
        if attempts.count(cell.name) == 1 and cell.name == "h16/random-0.1-s1":
            raise OSError("worker lost")  # first attempt only
        return real(root, config, cell, folder)

    monkeypatch.setattr(flows.sweep, "compute_cell", flaky)
    result = flows.sweep.run_sweep(str(swept), serial=True)
    assert result["cells"] == 6 and attempts.count("h16/random-0.1-s1") == 2


# A Dask worker preload (test only): the first attempt at one cell SIGKILLs its own worker process.
KILL_ONCE = '''
import os
import signal
from pathlib import Path

MARKER = Path({marker!r})


def dask_setup(worker):
    import flows.sweep_cells  # the task is shipped by value and finds compute_cell here

    real = flows.sweep_cells.compute_cell

    def compute_cell(root, config, cell, folder):
        if cell.name == {cell!r}:
            try:
                MARKER.unlink()  # once, whichever worker gets there first
            except FileNotFoundError:
                pass
            else:
                (MARKER.parent / "killed").write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        return real(root, config, cell, folder)

    flows.sweep_cells.compute_cell = compute_cell
'''


@pytest.mark.slow
def test_a_killed_workers_cell_is_run_again(prefect, swept, monkeypatch, tmp_path):
    """SIGKILL a worker in the middle of a cell: Dask re-runs what it lost on the other or the
    restarted worker, and the sweep ends with the serial table."""
    import dask
    from prefect.settings import PREFECT_API_URL

    from flows.sweep import run_sweep

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    expected = serial_table(swept)  # earlier tests leave doctored cells behind: all computed anew
    shutil.rmtree(swept / "sweep" / "cells")
    marker, preload = tmp_path / "kill-once", tmp_path / "kill_once.py"
    marker.write_text("")
    preload.write_text(KILL_ONCE.format(marker=str(marker), cell="h16/cluster-0.1-s0"))
    with dask.config.set({"distributed.worker.preload": [str(preload)]}):  # the nanny hands it to each worker
        result = run_sweep(str(swept), n_workers=2)
    assert (tmp_path / "killed").exists() and not marker.exists()  # a worker died in the middle of that cell
    assert result["cells"] == 6
    # and the sweep still has every number (the killed cell recomputed by a worker with another history)
    assert_same_table((swept / "sweep" / "results.csv").read_text(), expected)
