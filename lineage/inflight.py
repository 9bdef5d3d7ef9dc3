"""An event in flight: a run's claim on the uncommitted changes it makes to the files an event commits.

An event commits the inputs it ran on (params.yaml, the requests it applied, raw data) with what
they produce (dvc.lock, the metrics), so that its commit reproduces it. An input changed by something
other than an event — `dvc exp run -S`, an edit — must never enter the deletion record by accident:
a run (intake, audit, purge) refuses to start while such a change is uncommitted and names it.
Outputs are not inputs: a `dvc repro headline` that refreshed the metrics of committed inputs made
what the event's own stages make, and the event commits them. A run leaves a marker in `.dvc/tmp/`
(git never sees it) and removes it once its event is recorded; a marker still there when the next run
starts belongs to a run that was killed or failed mid-way, whose changes the next run finishes and
records.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bayesunlearn.errors import UserError
from bayesunlearn.io import atomic, settings

from . import repo

MARKER = Path(".dvc") / "tmp" / "unlearn-event-in-flight"


class ForeignChanges(UserError):
    """Uncommitted changes to files an event commits, made by something other than an event."""


# What an event commits that is an input, not something its stages produce (dvc.lock, metrics).
INPUTS = ["params.yaml", "data/raw", ".gitignore", "data/.gitignore", "models/.gitignore"]


def foreign_changes(root: Path) -> list[str]:
    """Inputs an event would commit that have uncommitted changes no event in flight made."""
    if os.path.lexists(root / MARKER):
        return []  # a run stopped mid-way: its changes are its event's, finished by this run
    owned = [*INPUTS, settings.load(root / settings.PARAMS).split.requests_dir]
    return [path for path in repo.dirty_paths(root)
            if any(path == p or path.startswith(p.rstrip("/") + "/") for p in owned)]


def refuse_foreign(root: Path, what: str) -> None:
    """Raise ForeignChanges, naming them, while files an event commits hold changes no event made."""
    foreign = foreign_changes(root)
    if foreign:
        shown = ", ".join(foreign[:6]) + (f" and {len(foreign) - 6} more" if len(foreign) > 6 else "")
        raise ForeignChanges(f"{what} refused: {shown} {'has' if len(foreign) == 1 else 'have'} uncommitted changes "
                             "that no deletion event made (an experiment, an edit), and an event commits its "
                             "inputs. Commit them (`git commit`), or put back the committed state "
                             "(`git checkout -- FILES`; after `dvc exp run`, also `dvc checkout`), then run again.")


@contextmanager
def claim(root: Path, what: str, commits: bool = True) -> Iterator[None]:
    """Run an event: refuse foreign uncommitted changes, mark the event in flight, unmark it when it is done.
    An exception leaves the mark: the next run finishes what this one started. Without commits
    (`ledger.commit: false`) nothing is committed, so nothing is refused: entries list the dirty files."""
    if commits:
        refuse_foreign(root, what)
    atomic.write_text(root / MARKER, f"{what}\n")
    yield
    (root / MARKER).unlink(missing_ok=True)
