"""Intake latency: a request file lands in the inbox → the new served posterior (fast path).

Runs in a temporary copy of the repository with the default parameters. A
first flow run (against the project's local Prefect server, started if none
runs) serves the shipped request (warm-up); the timed run then processes one
new request with the server already running. Reports the total and its split: per DVC stage, the
Python + TensorFlow start-up every stage process pays, DVC's own overhead
(a no-op `dvc repro` of one stage), and the remaining compute.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_repo(target: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    # a first commit: the flow commits each event and names it in the deletion ledger
    identity = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    subprocess.run(["git", "add", "-A"], cwd=target, check=True)
    subprocess.run(["git", "commit", "-qm", "bench copy"], cwd=target, check=True, env={**os.environ, **identity})


def timed(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=True)
    return time.perf_counter() - start


def measure() -> dict:
    from flows import workspace as ws
    from flows.intake import process_deletion_requests

    stage_seconds: dict[str, float] = {}
    real = ws.Workspace.repro

    def timed_repro(self, stage):
        start = time.perf_counter()
        try:
            return real(self, stage)
        finally:
            stage_seconds[stage] = time.perf_counter() - start

    ws.Workspace.repro = timed_repro
    from flows.server import local_server

    with tempfile.TemporaryDirectory() as tmp, local_server():
        root = Path(tmp)
        copy_repo(root)
        process_deletion_requests(repo=str(root))  # warm-up: temporary server, full production chain
        stage_seconds.clear()
        ids = [line.split(",")[0] for line in (root / "data/prepared/train.csv").read_text().splitlines()[1:4]]
        request = {"request_id": "req-latency", "record_ids": ids, "reason": "benchmark",
                   "received_at": "2026-11-27T12:00:00Z"}
        (root / "inbox").mkdir(exist_ok=True)
        (root / "inbox/req-latency.json").write_text(json.dumps(request))
        start = time.perf_counter()
        result = process_deletion_requests(repo=str(root))
        total = time.perf_counter() - start
        startup = timed([sys.executable, "-c", "import tensorflow, tensorflow_probability"], root)
        dvc_noop = timed(["dvc", "repro", "--single-item", "prepare"], root)
    ws.Workspace.repro = real
    ran = {s: t for s, t in stage_seconds.items() if t > 1.5 * dvc_noop}  # stages that did work
    with_tf = [s for s, t in ran.items() if t >= startup]  # only these can have imported TensorFlow
    startup_share = len(with_tf) * startup
    dvc_share = len(stage_seconds) * dvc_noop
    return {"total_seconds": total, "served": result["served"], "stage_seconds": stage_seconds,
            "stages_that_ran": sorted(ran), "stages_with_tensorflow": sorted(with_tf),
            "python_tf_startup_seconds": startup, "dvc_noop_seconds": dvc_noop,
            "startup_share_seconds": startup_share, "dvc_share_seconds": dvc_share,
            "compute_seconds_estimate": max(sum(stage_seconds.values()) - startup_share - dvc_share, 0.0),
            "flow_overhead_seconds": total - sum(stage_seconds.values())}

if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
