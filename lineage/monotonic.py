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
Either way the working ledger must extend every version committed to git
(anchor.py): deleting or cutting the ledger in a copy of the folder is refused.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bayesunlearn.errors import UserError
from bayesunlearn.io.requests import DeletionRequest

from . import anchor
from .entries import Applied, Purge
from .ledger import LEDGER, Ledger, LedgerError, LedgerUntrusted
from .repo import repository_id
from .words import count


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
    text = led.text()  # a link, FIFO or unreadable file is a LedgerError
    try:
        key = led.available_key()
    except LedgerError:
        key = None
    # With the key the whole ledger must check out (chain, head, committed history). Without it (a clone
    # without the secret) the committed history still holds: a working ledger that is missing, shorter or
    # different from any committed version is refused; its lines are then read as they are.
    refusal = "split refused: forgetting recorded in the ledger cannot be checked against it"
    if key is not None:
        led.check(text, refusal=refusal)
    else:
        found = anchor.problems(root, text.encode(), None)
        if found:
            raise LedgerUntrusted(led.path, found, refusal)
    lines = text.splitlines()
    if not lines:
        return  # nothing recorded yet, here or in git
    entries = led.parse(lines)
    archived = {a.request_id for e in entries if isinstance(e, Purge) for a in e.archived_requests}
    recorded = {e.request.request_id: e.request for e in entries
                if isinstance(e, Applied) and e.request.request_id not in archived}
    present = {r.request_id: r for r in loaded}
    if key is None:
        print("note: the audit key is not available here; checked the ids of the "
              f"{count(len(recorded), 'recorded request')} only, on a ledger whose chain cannot be checked",
              file=sys.stderr)
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
