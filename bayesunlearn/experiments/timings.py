"""Wall times filed by the results they belong to, so `make experiments` finds each experiment's times.

Timings are not versioned: no two runs time alike, so they stay out of git and
`dvc.lock` (the reproducibility contract: same inputs, same committed bytes).
`evaluate@METHOD` therefore also files each run's times under the md5 of the
deterministic results they belong to (`metrics/timing/runs/MD5.json`). An
experiment's commit holds those results, so its times are found for every
experiment this workspace ran (flows/experiments.py lists them).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bayesunlearn.io import atomic

RUNS = Path("metrics/timing/runs")


def results_key(results: bytes) -> str:
    """The key a run's times are filed under: the md5 of its deterministic results file."""
    return hashlib.md5(results).hexdigest()


def record(results_file: Path, timing: dict, runs: Path = RUNS) -> Path:
    """File `timing` under the key of the results it belongs to (called by `evaluate@METHOD`)."""
    path = runs / f"{results_key(results_file.read_bytes())}.json"
    atomic.write_json(path, timing)
    return path


def filed(root: Path, results: bytes) -> dict | None:
    """The times filed in the workspace `root` for these results, or None."""
    path = root / RUNS / f"{results_key(results)}.json"
    return json.loads(path.read_text()) if path.is_file() else None
