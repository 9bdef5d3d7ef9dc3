"""DVC timings in temporary clones of the repository (committed HEAD, default params.yaml).

- dvc_incremental: the production path `dvc repro serve` from nothing (prepare,
  split, train, fit_posterior@full_ggn, unlearn@ggn_newton, gate, serve) vs the
  same command after one new deletion request (3 records): only the stages the
  request invalidates run. Not the full `dvc repro` (about 20 min, most of it
  the study); `serve_noop_seconds` is the serve chain with nothing to do.
- main_job: `make repro`'s work from a fresh clone (nothing cached): the params
  check, `dvc repro headline` and the summary.
- every_method: plain `dvc repro` (no target: every configured method's
  stages, their fits and retrains, the membership test) from a fresh clone,
  nothing cached: what a user who omits the main job's target waits for.
- dvc_noop_seconds: `dvc repro` of every stage in the committed dvc.lock, nothing to do, in a second
  clone whose outputs are restored from a copy of this workspace's DVC cache
  (`dvc checkout`) and whose lock is then brought up to date (`dvc commit -f`, as
  the committed lock may predate code changes to stage dependencies). It times
  DVC's own bookkeeping over the whole DAG, which is what a no-op costs.
Clones come from `git clone` (HEAD), so uncommitted edits in the workspace do not
leak in, and DVC never runs in the workspace itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.latency import REPO, timed


def clone(target: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True)
    return target


def dvc(root: Path, *args: str) -> tuple[float, str]:
    """Wall time and stdout of one dvc command in `root` (DVC's stage commands call the venv's python)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    out = subprocess.run(["dvc", *args], cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed in {root}: {out.stderr.strip()[-500:]}")
    return seconds, out.stdout


def stages_run(stdout: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", stdout)


def incremental(root: Path, repeats: int) -> dict:
    full, out_full = dvc(root, "repro", "serve")
    noop = [dvc(root, "repro", "serve")[0] for _ in range(repeats)]
    ids = [line.split(",")[0] for line in (root / "data/prepared/train.csv").read_text().splitlines()[-3:]]
    request = {"request_id": "req-bench-incremental", "record_ids": ids, "reason": "benchmark",
               "received_at": "2026-11-27T12:00:00Z"}
    (root / "data/requests/req-bench-incremental.json").write_text(json.dumps(request))
    one, out_one = dvc(root, "repro", "serve")
    return {"command": "dvc repro serve", "full_seconds": full, "stages_full": stages_run(out_full),
            "one_request_seconds": one, "stages_one_request": stages_run(out_one),
            "serve_noop_seconds": statistics.median(noop)}


def full_noop(root: Path, repeats: int) -> dict:
    import yaml

    shutil.copytree(REPO / ".dvc/cache", root / ".dvc/cache", dirs_exist_ok=True)
    # the stages the committed lock covers: a stage added since (never run) has no outputs to restore
    defined = set(dvc(root, "stage", "list", "--name-only")[1].split())
    stages = [s for s in yaml.safe_load((root / "dvc.lock").read_text())["stages"] if s in defined]
    dvc(root, "checkout", "--force", *stages)
    dvc(root, "commit", "--force", *stages)
    # plain `dvc repro` when the lock covers every stage: naming 47 targets makes DVC walk the graph once per
    # target (~15 s here instead of ~2 s), which is not what a user's no-op costs
    targets = [] if set(stages) == defined else stages
    times = [dvc(root, "repro", *targets)[0] for _ in range(repeats)]
    _, out = dvc(root, "repro", *targets)
    return {"dvc_noop_seconds": statistics.median(times), "dvc_noop_runs": times, "dvc_noop_stages": len(stages),
            "dvc_noop_command": " ".join(["dvc", "repro", *targets]) if targets else "dvc repro",
            "dvc_noop_stages_run": stages_run(out)}


def main_job(root: Path) -> dict:
    """`make repro`'s work in a fresh clone (nothing cached): check params, `dvc repro headline`, the summary."""
    start = time.perf_counter()
    timed([sys.executable, "-m", "bayesunlearn.io.settings"], root)
    _, out = dvc(root, "repro", "headline")
    timed([sys.executable, "-m", "bayesunlearn.experiments.report"], root)
    return {"command": "make repro (dvc repro headline)", "seconds": time.perf_counter() - start,
            "stages": stages_run(out)}


def every_method(root: Path) -> dict:
    """Untargeted `dvc repro` in a fresh clone (nothing cached): the README's one line on what it costs."""
    seconds, out = dvc(root, "repro")
    return {"command": "dvc repro", "seconds": seconds, "stages_run": len(stages_run(out)),
            "load_average_after": os.getloadavg()}


def readme_block(result: dict) -> str:
    """The README's line on untargeted `dvc repro` / `dvc exp run`, from the bench's measurement."""
    every, main = result["every_method"], result["main_job"]
    return textwrap.fill(
        f"Without a target, `dvc repro` and `dvc exp run` run all {every['stages_run']} stages of `dvc.yaml` "
        f"(every configured method with its fit, retrains and timed `evaluate`, and the audit's membership "
        f"test): {every['seconds'] / 60:.0f} min from a fresh clone against {main['seconds'] / 60:.0f} min for "
        f"the main job's {len(main['stages'])} (`make bench`, load average {every['load_average_after'][0]:.1f} "
        f"on 2 cores); name the target.", width=100, initial_indent="  ", subsequent_indent="  ")


def measure(repeats: int = 3) -> dict:
    from bayesunlearn.io.progress import advance, progress

    with (tempfile.TemporaryDirectory() as tmp,
          progress(total=4, desc="dvc timings", unit="clone", postfix="no-op repro") as bar):
        result = full_noop(clone(Path(tmp) / "noop"), repeats)
        advance(bar, "incremental repro")
        result["dvc_incremental"] = incremental(clone(Path(tmp) / "incremental"), repeats)
        advance(bar, "main job")
        result["main_job"] = main_job(clone(Path(tmp) / "main"))
        advance(bar, "every method")
        result["every_method"] = every_method(clone(Path(tmp) / "every"))
        bar.update()
    result["python_tf_startup_seconds"] = timed([sys.executable, "-c", "import tensorflow"], REPO)
    result["load_average"] = os.getloadavg()[0]  # the machine is shared: context for the timings
    return result


if __name__ == "__main__":
    if sys.argv[1:]:  # only the fresh-clone keys named, e.g. `python -m bench.dvc_timing main_job every_method`
        one = {"main_job": main_job, "every_method": every_method}
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({key: one[key](clone(Path(tmp) / key)) for key in sys.argv[1:]}, indent=2))
    else:
        print(json.dumps(measure(), indent=2))
