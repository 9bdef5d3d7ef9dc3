"""`deletions audit reproduce REQUEST`: rebuild an event in a clean checkout and compare hashes.

The event's commit is checked out in a temporary git worktree with an empty
DVC cache of its own (so nothing is restored from this workspace's run-cache),
the production stages are run with `dvc repro`, and the resulting dvc.lock
hashes are compared with the ones the ledger recorded. Raw data tracked with
`dvc add` is fetched from this workspace's cache. An event from before a purge
cannot be re-run: its raw data was deleted on purpose.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bayesunlearn.errors import Exit, UserError

from . import events, repo
from .entries import Applied, LedgerEntry, Purge


class NotReproducible(UserError):
    """The event's inputs are gone on purpose (purged) or its revision is missing."""

    exit_code = Exit.NOT_REPRODUCIBLE


@dataclass(frozen=True)
class Comparison:
    request_id: str
    git_commit: str
    identical: dict[str, str]               # path -> md5
    different: dict[str, tuple[str, str]]   # path -> (recorded, reproduced)

    @property
    def ok(self) -> bool:
        return not self.different


def find_event(entries: list[LedgerEntry], request_id: str) -> Applied:
    for entry in entries:
        if isinstance(entry, Applied) and entry.request.request_id == request_id:
            return entry
    known = [e.request.request_id for e in entries if isinstance(e, Applied)]
    raise UnknownRequest(f"request {request_id!r} is not in the ledger; recorded requests: {known or 'none'}.")


class UnknownRequest(UserError):
    """No ledger entry names this request."""


def superseded_by(entries: list[LedgerEntry], event: Applied) -> Purge | None:
    """The purge after which `event` can no longer be re-run, if any."""
    return next((e for e in entries if isinstance(e, Purge) and e.seq > event.seq and event.seq in e.not_rerunnable),
                None)


def reproduce(root: Path, request_id: str, keep: bool = False) -> Comparison:
    root = Path(root).resolve()
    entries = events.ledger(root).entries()
    event = find_event(entries, request_id)
    purge = superseded_by(entries, event)
    if purge is not None:
        raise NotReproducible(
            f"request {request_id} (entry {event.seq}) cannot be re-run: purge entry {purge.seq} "
            f"({purge.recorded_at}) deleted its forgotten records from the raw data. Its hashes are still "
            "verifiable with `deletions audit verify`.")
    if repo.run(root, "git", "cat-file", "-e", f"{event.git_commit}^{{commit}}", check=False).returncode:
        raise NotReproducible(f"commit {event.git_commit} of request {request_id} is not in this repository "
                              "(history rewritten or not fetched); fetch it and try again.")
    worktree = Path(tempfile.mkdtemp(prefix=f"reproduce-{request_id}-"))
    try:
        repo.git(root, "worktree", "add", "--detach", str(worktree), event.git_commit)
        stages = repo.production_stages(worktree)
        _fetch_raw_data(root, worktree)
        (worktree / "dvc.lock").unlink(missing_ok=True)  # rebuild every stage, then compare with the record
        repo.run(worktree, "dvc", "repro", stages[-1])
        reproduced = repo.current_artifacts(worktree)
    finally:
        if not keep:
            repo.git(root, "worktree", "remove", "--force", str(worktree), check=False)
            shutil.rmtree(worktree, ignore_errors=True)
    recorded = event.artifacts_after
    identical = {p: h for p, h in recorded.items() if reproduced.get(p) == h}
    different = {p: (h, reproduced.get(p, "missing")) for p, h in recorded.items() if reproduced.get(p) != h}
    return Comparison(request_id, event.git_commit, identical, different)


def _fetch_raw_data(root: Path, worktree: Path) -> None:
    """Copy `dvc add`-tracked raw data from this workspace's cache (the worktree's own cache starts empty)."""
    for path, md5 in repo.raw_data_hashes(worktree).items():
        cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        if not cached.exists():
            raise NotReproducible(f"{path} ({md5}) is not in the DVC cache; `dvc pull` it first.")
        shutil.copyfile(cached, worktree / path)
