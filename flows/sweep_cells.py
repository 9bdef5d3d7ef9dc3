"""What one sweep task does in its worker: load the workspace's data, compute one cell, write it atomically.

No Prefect here (the tests call it directly); the numbers come from
`bayesunlearn.experiments.study.study_cell`, the same function as the serial study's.
A cell file that exists is a finished cell (written by rename, never half),
so a rerun skips it; a leftover temporary file is ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter

from bayesunlearn.io import atomic, datasets, store
from bayesunlearn.io.sections import VI, Laplace, Method, Model, Train
from bayesunlearn.io.settings import Settings
from bayesunlearn.numerics.threads import one_thread_throughout
from bayesunlearn.experiments.sweep import SweepCell, SweepPlan, hidden_label

from stages.common import PREPARED

METHOD = TypeAdapter(Method)
CELLS = Path("sweep") / "cells"  # working folder of the cell files, by context key (not a DVC output)


def cell_config(settings: Settings, plan: SweepPlan) -> dict:
    """The settings a cell's numbers depend on (small, JSON-able: safe to ship to any worker). `classes` (the
    outputs of a categorical model) only for a categorical target: the other configs, and the context keys
    made of them, stay as they were."""
    sections = {"model": settings.model, "train": settings.train, "laplace": settings.laplace, "vi": settings.vi}
    categorical = settings.prepare.target_kind == "categorical"
    return {**{name: section.model_dump(mode="json") for name, section in sections.items()},
            "methods": {name: settings.methods[name].model_dump(mode="json") for name in plan.methods},
            **({"classes": datasets.n_classes(settings.prepare)} if categorical else {})}


def inputs(root: Path) -> list[Path]:
    """The files a cell's numbers depend on: the prepared data and the core package's code."""
    return sorted((root / PREPARED).glob("*.csv")) + sorted((root / "bayesunlearn").rglob("*.py"))


def cell_path(folder: Path, cell: SweepCell) -> Path:
    return folder / f"{cell.name}.json"


def compute_cell(root: Path, config: dict, cell: SweepCell, folder: Path) -> Path:
    """The cell's rows in `folder`, computed unless already there; returns the file's path."""
    target = cell_path(folder, cell)
    if target.exists():
        return target
    from bayesunlearn.posteriors.fit import FitSettings
    from bayesunlearn.model.likelihood import build_model
    from bayesunlearn.experiments.study import Problem, study_cell

    x, y = datasets.arrays(store.load_table(root / PREPARED / "train.csv"))
    x_test, _ = datasets.arrays(store.load_table(root / PREPARED / "test.csv"))
    model = build_model(Model.model_validate({**config["model"], "hidden": list(cell.hidden)}, strict=False),
                        x.shape[1], config.get("classes", 1))
    fitting = FitSettings(Laplace.model_validate(config["laplace"]), VI.model_validate(config["vi"], strict=False))
    methods = {name: METHOD.validate_python(spec) for name, spec in config["methods"].items()}
    train = Train.model_validate(config["train"], strict=False)
    problem = Problem(x, y, x_test, methods, train, fitting, train.seed)
    # One BLAS thread wherever the cell runs, so that its numbers cannot depend on the runner: Dask
    # workers start with OPENBLAS_NUM_THREADS=1, an in-process (serial) run would use every core.
    with one_thread_throughout():
        originals = _originals(model, problem, folder / f"h{hidden_label(cell.hidden)}" / "originals")
        rows, _ = study_cell(model, problem, cell.cell, originals)
    label = {"hidden": hidden_label(cell.hidden), "n_params": model.spec.n_params}
    rows = [{**label, **row} for row in rows]
    columns = list(rows[0]) if rows else []
    atomic.write_json(target, {"columns": columns, "rows": [[_plain(r[c]) for c in columns] for r in rows]})
    return target


def read_cell(path: Path) -> list[dict]:
    """The rows of a cell file, columns in the study's order."""
    table = json.loads(path.read_text())
    return [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]


def _originals(model, problem, folder: Path) -> dict:
    """The full-data posteriors of this network size: fitted by the first cell that needs them, then reused.

    Two workers may fit them at once; both write the same bytes (deterministic fits,
    atomic renames), so the race costs time, never correctness.
    """
    from bayesunlearn.posteriors.posterior import GaussianPosterior
    from bayesunlearn.experiments.study import fit_originals

    paths = {kind: folder / f"{kind}.npz" for kind in problem.kinds}
    if not all(p.exists() for p in paths.values()):
        for kind, posterior in fit_originals(model, problem).items():
            posterior.save(paths[kind])
    # Every cell unlearns from the loaded files, also the one that fitted them: a freshly fitted
    # posterior carries more than its file (e.g. a curvature factor) and gave other last digits.
    return {kind: GaussianPosterior.load(p) for kind, p in paths.items()}


def _plain(value):
    """numpy scalars as Python numbers, so that JSON can hold them (NaN included)."""
    return value.item() if isinstance(value, np.generic) else value
