"""Forgetting only grows: the guard the `split` stage runs before it writes a split.

Once the ledger records a request as applied, no later split may retain its
records unless a purge deleted them from the data. A mistyped
`split.requests_dir`, a deleted request file, an emptied folder or a request
edited to name fewer records would otherwise silently put forgotten records
back into the training data.

With the audit key, record sets are compared as keyed hashes: every record a
recorded request forgot must be forgotten by this split too (by any request) or
be gone from the training data (a purge). Without the key (a clone without the
secret) only request ids can be compared, so an absent request is an error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bayesunlearn.errors import UserError
from bayesunlearn.io.requests import DeletionRequest

from .entries import Applied, Purge
from .ledger import LEDGER, Ledger, LedgerError
from .repo import repository_id


class ForgettingUndone(UserError):
    """A split would retain records of requests the ledger records as applied."""


def check(root: Path, loaded: list[DeletionRequest], train_ids: list[str], requests_dir: str) -> None:
    """Raise ForgettingUndone when the requests in `loaded` forget less than the ledger says was forgotten."""
    root = Path(root)
    if not os.path.lexists(root / LEDGER) and not (root / ".git").exists():
        return  # no ledger, and none possible: a ledger needs a git repository
    # The repository from git, never from the ledger's own lines: an edited file must not pick its key.
    led = Ledger(root, repository_id(root))
    led.check_repository()
    lines = led.lines()  # a link, FIFO or unreadable file is a LedgerError
    if not lines:
        if led.head() is not None:
            raise LedgerError(f"{root / LEDGER} is missing or empty, but this working copy wrote ledger entries "
                              f"(its head is in {led.head_path}); restore the ledger from git "
                              "(`git checkout -- audit/ledger.jsonl`).")
        return  # nothing recorded yet
    try:
        key = led.key()
    except LedgerError:
        key = None
    # With the key, only a ledger whose chain checks out is believed (a clone has no head: lines cut off
    # its end go unseen there). Without it nothing can be checked: the lines are read as they are.
    if key is not None:
        led.check_chain(lines, require_head=False)
    entries = led.parse(lines)
    archived = {a.request_id for e in entries if isinstance(e, Purge) for a in e.archived_requests}
    recorded = {e.request.request_id: e.request for e in entries
                if isinstance(e, Applied) and e.request.request_id not in archived}
    present = {r.request_id: r for r in loaded}
    if key is None:
        print(f"note: the audit key is not available here; checked the ids of the {len(recorded)} recorded "
              "requests only, on a ledger whose chain cannot be checked", file=sys.stderr)
    missing, edited = [], []
    if key is None:
        missing = sorted(set(recorded) - set(present))
    else:
        forgotten_now = {h for r in loaded for h in key.hash_ids(r.record_ids)}
        train = {key.hash_id(r) for r in train_ids}
        for request_id, facts in sorted(recorded.items()):
            back = (set(facts.record_hashes) - forgotten_now) & train  # forgotten once, retained by this split
            if not back:
                continue
            if request_id in present:
                edited.append(f"{present[request_id].source} no longer names {len(back)} of the records it forgot")
            else:
                missing.append(request_id)
    if missing or edited:
        parts = []
        if missing:
            parts.append(f"requests {missing} are recorded as applied in {LEDGER} but are not in {requests_dir}/")
        parts += edited
        raise ForgettingUndone("split refused: it would put forgotten records back into the training data: "
                               + "; ".join(parts) + ". Check split.requests_dir in params.yaml and restore the "
                               "request files from git (`git checkout -- data/requests`); forgetting is undone "
                               "only by `deletions purge`, which deletes the records themselves.")
