"""What the ledger needs from git and DVC: commits, the repository's identity, dvc.lock hashes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from .ledger import LedgerError

ENV = {"DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
       "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
# Used only where git has no identity configured (a CI runner, a fresh container).
FALLBACK_IDENTITY = {"GIT_AUTHOR_NAME": "bayesunlearn", "GIT_AUTHOR_EMAIL": "unlearn@localhost",
                     "GIT_COMMITTER_NAME": "bayesunlearn", "GIT_COMMITTER_EMAIL": "unlearn@localhost"}
# Files an event changes: committed with it so that its revision reproduces it.
EVENT_PATHS = ["dvc.lock", "params.yaml", "data/requests", "data/raw", "metrics", ".gitignore", "data/.gitignore",
               "models/.gitignore"]


def tool_env() -> dict:
    """The environment for git and DVC subprocesses: this interpreter's tools first, no telemetry."""
    return {**os.environ, **ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=root, env=tool_env(), capture_output=True, text=True)
    if check and result.returncode:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"`{' '.join(args)}` failed ({result.returncode}) in {root}: {tail}")
    return result


def git(root: Path, *args: str, check: bool = True) -> str:
    return run(root, "git", *args, check=check).stdout.strip()


def repository_id(root: Path) -> str:
    """The repository's root commit: the same in every clone, different in any other repository."""
    result = run(root, "git", "rev-list", "--max-parents=0", "HEAD", check=False)
    if result.returncode or not result.stdout.strip():
        raise LedgerError(f"{root} is not a git repository with a commit; the ledger records git revisions. "
                          "Run `git init` and commit the project first.")
    return sorted(result.stdout.split())[0]


def head_commit(root: Path) -> str:
    return git(root, "rev-parse", "HEAD")


def commit(root: Path, paths: list[str], message: str) -> str:
    """Commit the given paths (only those) if they changed; return the commit that holds them."""
    present = [p for p in paths if (root / p).exists() or git(root, "ls-files", "--", p)]
    if present:
        git(root, "add", "-A", "--", *present)
        staged = git(root, "diff", "--cached", "--name-only", "--", *present)
        if staged:
            env = {} if git(root, "config", "user.email", check=False) else FALLBACK_IDENTITY
            result = subprocess.run(["git", "commit", "-q", "-m", message, "--", *present], cwd=root,
                                    env={**tool_env(), **env}, capture_output=True, text=True)
            if result.returncode:
                raise RuntimeError(f"git commit failed: {result.stderr.strip()}")
    return head_commit(root)


def dirty_paths(root: Path) -> list[str]:
    """Tracked files with uncommitted changes: an event recorded on top of them would not reproduce."""
    return [line[3:] for line in git(root, "status", "--porcelain", "--untracked-files=no").splitlines()]


def read_lock(root: Path, revision: str | None = None) -> dict:
    """dvc.lock of the workspace, or of a git revision ({} if there is none)."""
    if revision is None:
        path = root / "dvc.lock"
        return yaml.safe_load(path.read_text()) or {} if path.exists() else {}
    result = run(root, "git", "show", f"{revision}:dvc.lock", check=False)
    return (yaml.safe_load(result.stdout) or {}) if result.returncode == 0 else {}


def production_stages(params: dict) -> list[str]:
    """The stages the served posterior needs, in DAG order; never the reference retrains."""
    gate = params["gate"]
    return ["prepare", "split", "train", f"fit_posterior@{gate['posterior']}", f"unlearn@{gate['method']}",
            "gate", "serve"]


def artifact_hashes(lock: dict, stages: list[str]) -> dict[str, str]:
    """path -> md5 of every output of `stages`, plus their data inputs that no stage makes (requests, raw data)."""
    entries = lock.get("stages", {})
    made = {out["path"] for s in entries.values() for out in s.get("outs", [])}
    hashes = {}
    for name in stages:
        stage = entries.get(name, {})
        for dep in stage.get("deps", []):
            if dep["path"].startswith("data/") and dep["path"] not in made:
                hashes[dep["path"]] = dep.get("md5", "")
        for out in stage.get("outs", []):
            hashes[out["path"]] = out.get("md5", "")
    return dict(sorted(hashes.items()))


def raw_data_hashes(root: Path) -> dict[str, str]:
    """Raw data tracked with `dvc add` (what `unlearn purge` writes): path -> md5 from its .dvc file."""
    hashes = {}
    for dvc_file in sorted((root / "data" / "raw").glob("*.dvc")) if (root / "data" / "raw").exists() else []:
        for out in (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", []):
            hashes[str(dvc_file.parent.relative_to(root) / out["path"])] = out.get("md5", "")
    return hashes
