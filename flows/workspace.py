"""The DVC workspace as the flows see it: folders, one lock, stage runs, dvc.lock hashes.

No Prefect here, so the same helpers serve tests and command-line tools.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from bayesunlearn import atomic, requests
from lineage.repo import read_lock, tool_env


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero; the message holds the tail of its output."""


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def rejected(self) -> Path:
        return self.root / "inbox" / "rejected"

    @property
    def requests(self) -> Path:
        return self.root / "data" / "requests"

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def lock(self):
        """One DVC run per workspace at a time: two `dvc repro` cannot overlap (DESIGN.md §5)."""
        return atomic.file_lock(self.root / ".dvc" / "tmp" / "unlearn-workspace.lock")

    def repro(self, stage: str) -> str:
        """`dvc repro --single-item STAGE` in the workspace; raises StageFailed on failure."""
        result = subprocess.run(["dvc", "repro", "--single-item", stage], cwd=self.root, env=tool_env(),
                                capture_output=True, text=True)
        if result.returncode:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            raise StageFailed(f"dvc repro {stage} failed ({result.returncode}): {tail}")
        return result.stdout

    def lock_hashes(self, paths: list[str]) -> dict[str, str]:
        """md5 of the given outputs as recorded in dvc.lock (what the run produced)."""
        found = {out["path"]: out.get("md5", "") for stage in read_lock(self.root).get("stages", {}).values()
                 for out in stage.get("outs", [])}
        return {p: found.get(p, "") for p in paths}

    def known_ids(self) -> tuple[set[str], set[str]]:
        """Training and test record ids (ids only: the values are never read here)."""
        def ids(name: str) -> set[str]:
            lines = (self.root / "data" / "prepared" / name).read_text().splitlines()[1:]
            return {line.split(",", 1)[0] for line in lines}

        return ids("train.csv"), ids("test.csv")


def triage(workspace: Workspace, path: Path) -> tuple[str, str]:
    """Check one inbox file with the rules of the `split` stage: ("accept" | "duplicate" | "reject", why)."""
    text = path.read_text()
    try:
        request = requests.parse_request(text, path.name)
        applied = workspace.requests / f"{request.request_id}.json"
        if applied.exists():
            same = json.loads(applied.read_text()) == json.loads(text)
            if same:
                return "duplicate", f"request {request.request_id} was already applied"
        existing = requests.load_requests(workspace.requests)
        train_ids, test_ids = workspace.known_ids()
        requests.validate_all([*existing, request], train_ids, test_ids)
    except requests.RequestError as err:
        return "reject", str(err)
    return "accept", request.request_id


def reject(workspace: Workspace, path: Path, reason: str) -> None:
    """Move a bad request to inbox/rejected/ with a sidecar that states why."""
    workspace.rejected.mkdir(parents=True, exist_ok=True)
    atomic.write_json(workspace.rejected / f"{path.name}.reason.json", {"file": path.name, "reason": reason})
    os.replace(path, workspace.rejected / path.name)


def accept(workspace: Workspace, path: Path, request_id: str) -> Path:
    """Move an accepted request into data/requests/ (atomic rename; the id names the file)."""
    workspace.requests.mkdir(parents=True, exist_ok=True)
    target = workspace.requests / f"{request_id}.json"
    os.replace(path, target)
    return target


def return_to_inbox(workspace: Workspace, applied: Path) -> None:
    """Undo an acceptance after a failed run: the request is pending again."""
    workspace.inbox.mkdir(parents=True, exist_ok=True)
    shutil.move(applied, workspace.inbox / applied.name)
