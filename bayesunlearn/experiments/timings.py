"""Wall times per experiment: `make experiments` prints them after DVC's table.

Timings are not versioned: no two runs time alike, so they stay out of git and
`dvc.lock` (the reproducibility contract: same inputs, same committed bytes).
`evaluate@METHOD` therefore also files each run's times under the md5 of the
deterministic results they belong to (`metrics/timing/runs/MD5.json`). An
experiment's commit holds those results, so its times are found for every
experiment this workspace ran; an experiment run elsewhere shows none.

Usage: python -m bayesunlearn.experiments.timings [--repo PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from bayesunlearn.errors import UserError
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


@dataclass(frozen=True)
class Times:
    experiment: str
    source: str | None
    method: str | None
    unlearn_seconds: float | None
    retrain_seconds: float | None


def read_at(root: Path, rev: str, path: str) -> bytes | None:
    """A file as the experiment `rev` committed it (`workspace`: as it is now); None when absent."""
    if rev == "workspace":
        file = root / path
        return file.read_bytes() if file.is_file() else None
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True)
    return shown.stdout if shown.returncode == 0 else None


def times_of(root: Path, rev: str, experiment: str) -> Times:
    import yaml

    headline, params = read_at(root, rev, "metrics/headline.json"), read_at(root, rev, "params.yaml")
    source = (yaml.safe_load(params) or {}).get("prepare", {}).get("source") if params else None
    if headline is None:  # queued, failed or from before the main job ran
        return Times(experiment, source, None, None, None)
    method = json.loads(headline)["method"]
    results = read_at(root, rev, f"metrics/evaluate/{method}.json")
    filed = root / RUNS / f"{results_key(results)}.json" if results is not None else None
    if filed is None or not filed.is_file():
        return Times(experiment, source, method, None, None)
    timing = json.loads(filed.read_text())
    return Times(experiment, source, method, timing["unlearn_seconds"], timing["retrain_seconds"])


class NoExperiments(UserError):
    """DVC cannot list the workspace's experiments (not a DVC repository, no commit yet)."""


def experiments(root: Path) -> list[Times]:
    """The rows `dvc exp show` lists (workspace, baseline, its experiments), each with its times if filed."""
    import dvc.api
    from dvc.exceptions import DvcException
    from dvc.scm import SCMError

    try:
        rows = dvc.api.exp_show(repo=str(root))
    except (DvcException, SCMError) as err:
        raise NoExperiments(f"{root}: DVC cannot list experiments here ({err})") from err
    return [times_of(root, row["rev"], row.get("Experiment") or row["rev"]) for row in rows]


def table(rows: list[Times]) -> str:
    def seconds(value: float | None) -> str:
        return "—" if value is None else f"{value:.3g}"

    return tabulate([{"experiment": r.experiment, "table": r.source or "—", "method": r.method or "—",
                      "unlearn s": seconds(r.unlearn_seconds), "retrain s": seconds(r.retrain_seconds)}
                     for r in rows], headers="keys", tablefmt="simple")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bayesunlearn.experiments.timings", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path("."), help="the workspace (default: here)")
    args = parser.parse_args(argv)
    try:
        rows = experiments(args.repo.resolve())
    except UserError as err:
        print(f"error: {err}")
        return 2
    print("Wall times (this workspace's runs; — where none was filed):")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
