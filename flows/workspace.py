"""The DVC workspace as the flows see it: its settings, one lock, stage runs, dvc.lock hashes.

No Prefect here, so the same helpers serve tests and command-line tools.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from bayesunlearn.errors import Exit, UserError
from bayesunlearn.io import atomic, settings
from bayesunlearn.io.settings import Settings
from lineage.repo import read_lock, tool_env


class StageFailed(UserError):
    """A DVC stage exited non-zero; the message names the stage and its own error line (or DVC's last line)."""

    exit_code = Exit.STAGE


@dataclass(frozen=True)
class Workspace:
    root: Path

    def settings(self) -> Settings:
        return settings.load(self.root / settings.PARAMS)

    def lock(self):
        """One DVC run per workspace at a time: two `dvc repro` cannot overlap."""
        return atomic.file_lock(self.root / ".dvc" / "tmp" / "unlearn-workspace.lock")

    def repro(self, stage: str) -> str:
        """`dvc repro --single-item STAGE` in the workspace; raises StageFailed on failure."""
        result = subprocess.run(["dvc", "repro", "--single-item", stage], cwd=self.root, env=tool_env(),
                                capture_output=True, text=True)
        if result.returncode:
            lines = (result.stdout + result.stderr).strip().splitlines() or [f"exit code {result.returncode}"]
            said = next((line for line in lines if line.startswith("error: ")), lines[-1])  # the stage's own line
            raise StageFailed(f"dvc repro {stage} failed: {said}")
        return result.stdout

    def lock_hashes(self, paths: list[str]) -> dict[str, str]:
        """md5 of the given outputs as recorded in dvc.lock (what the run produced)."""
        found = {out["path"]: out.get("md5", "") for stage in read_lock(self.root).get("stages", {}).values()
                 for out in stage.get("outs", [])}
        return {p: found.get(p, "") for p in paths}
