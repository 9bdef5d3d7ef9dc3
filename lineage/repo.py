"""What the ledger needs from git and DVC: commits, the repository's identity, dvc.lock hashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bayesunlearn.io import contracts, settings
from bayesunlearn.errors import Exit, UserError

from .ledger import LedgerError

ENV = {"DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
       "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
# Used only where git has no identity configured (a CI runner, a fresh container).
FALLBACK_IDENTITY = {"GIT_AUTHOR_NAME": "bayesunlearn", "GIT_AUTHOR_EMAIL": "unlearn@localhost",
                     "GIT_COMMITTER_NAME": "bayesunlearn", "GIT_COMMITTER_EMAIL": "unlearn@localhost"}
# Files an event changes, besides the requests folder: committed with it so that its revision reproduces it.
EVENT_PATHS = ["dvc.lock", "params.yaml", "data/raw", "metrics", "plots", ".gitignore", "data/.gitignore",
               "models/.gitignore"]


def event_paths(root: Path) -> list[str]:
    return [*EVENT_PATHS, settings.load(root / settings.PARAMS).split.requests_dir]


GIT_LOCK_STALE_SECONDS = 60.0


class GitLocked(UserError):
    """A leftover .git/index.lock blocks the commit an event needs."""

    exit_code = Exit.GIT


class CommitRefused(UserError):
    """git refused the commit an event needs (a hook, an identity or signing problem): git's reason and what to do."""

    exit_code = Exit.GIT


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


def check_git_lock(root: Path, wait: float = 20.0) -> None:
    """Fail before anything changes when a git lock would block the event's commit.

    A lock younger than GIT_LOCK_STALE_SECONDS may belong to a running git command: wait for it
    a little. An older one was left by a crashed git process; git itself never removes it.
    """
    lock = Path(git(root, "rev-parse", "--absolute-git-dir")) / "index.lock"
    deadline = time.monotonic() + wait
    while lock.exists():
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return
        if age > GIT_LOCK_STALE_SECONDS or time.monotonic() > deadline:
            raise GitLocked(f"{lock} exists ({age:.0f} s old): a git command crashed or is still running, and the "
                            "event could not be committed. If no git command is running, remove it "
                            f"(`rm {lock}`) and run again; the pending requests are then applied and recorded.")
        time.sleep(0.5)


def commit(root: Path, paths: list[str], message: str) -> str:
    """Commit the given paths (only those) if they changed; return the commit that holds them."""
    check_git_lock(root)
    present = [p for p in paths if (root / p).exists() or git(root, "ls-files", "--", p)]
    if present:
        git(root, "add", "-A", "--", *present)
        staged = git(root, "diff", "--cached", "--name-only", "--", *present)
        if staged:
            env = {} if git(root, "config", "user.email", check=False) else FALLBACK_IDENTITY
            result = subprocess.run(["git", "commit", "-q", "-m", message, "--", *present], cwd=root,
                                    env={**tool_env(), **env}, capture_output=True, text=True)
            if result.returncode:
                said = " ".join((result.stderr + result.stdout).split())[-300:] or f"exit code {result.returncode}"
                raise CommitRefused(f"git refused to commit the event ({said}); fix what git names (a commit-msg or "
                                    "pre-commit hook, the author identity, signing) and run again.")
    return head_commit(root)


def dirty_paths(root: Path) -> list[str]:
    """Tracked files with uncommitted changes, exactly as git names them (NUL-separated output, not text)."""
    out = run(root, "git", "status", "--porcelain=v1", "-z", "--untracked-files=no").stdout
    fields, paths = out.split("\0"), []
    i = 0
    while i < len(fields):
        entry = fields[i]
        if len(entry) > 3:
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename or copy: the next field is the old path
                i += 1
        i += 1
    return paths


def read_lock(root: Path, revision: str | None = None) -> dict:
    """dvc.lock of the workspace, or of a git revision ({} if there is none)."""
    if revision is None:
        path = root / "dvc.lock"
        text = path.read_text() if path.exists() else ""
    else:
        result = run(root, "git", "show", f"{revision}:dvc.lock", check=False)
        text = result.stdout if result.returncode == 0 else ""
    try:
        lock = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise UserError(f"dvc.lock{f' at {revision}' if revision else ''} is not valid YAML; restore it from git "
                        "(`git checkout -- dvc.lock`).") from None
    if not isinstance(lock, dict) or not isinstance(lock.get("stages", {}), dict):
        raise UserError("dvc.lock is not a DVC lock file; restore it from git (`git checkout -- dvc.lock`).")
    return lock


def production_stages(root: Path) -> list[str]:
    """The stages the served posterior needs in the workspace `root` (its params.yaml names the method)."""
    gate = settings.load(root / settings.PARAMS).gate
    return contracts.production_stages(gate.method, gate.posterior)


def stale_stages(root: Path) -> dict:
    """`dvc status` of the production chain (the served posterior and every stage it needs): stage -> what
    changed; empty when every artifact is what its inputs make."""
    status = run(root, "dvc", "status", "--with-deps", "--json", production_stages(root)[-1]).stdout
    return json.loads(status or "{}")


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
    """Raw data tracked with `dvc add` (what `deletions purge` writes): path -> md5 from its .dvc file."""
    hashes = {}
    for dvc_file in sorted((root / "data" / "raw").glob("*.dvc")) if (root / "data" / "raw").exists() else []:
        for out in (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", []):
            hashes[str(dvc_file.parent.relative_to(root) / out["path"])] = out.get("md5", "")
    return hashes


def current_artifacts(root: Path, lock: dict | None = None) -> dict[str, str]:
    """The production chain's artifacts as dvc.lock records them, plus `dvc add`-tracked raw data."""
    lock = read_lock(root) if lock is None else lock
    return {**artifact_hashes(lock, production_stages(root)), **raw_data_hashes(root)}
