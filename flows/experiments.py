"""Wall times per experiment: `make experiments` prints them after DVC's table.

Every row `dvc exp show` lists (workspace, baseline, its experiments) with the
unlearn and retrain seconds `evaluate` filed for the results its commit holds
(bayesunlearn/experiments/timings.py); "—" where none was filed (an experiment
run in another workspace, queued, or failed).

Usage: python -m flows.experiments [--repo PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from bayesunlearn.errors import UserError
from bayesunlearn.experiments import timings


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
    timing = timings.filed(root, results) if results is not None else None
    if timing is None:
        return Times(experiment, source, method, None, None)
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
    parser = argparse.ArgumentParser(prog="python -m flows.experiments", description=__doc__,
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
