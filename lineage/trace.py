"""`deletions audit trace RECORD_ID`: who forgot a record, when, and which served posteriors had it.

Answers only from recorded facts. Each ledger run records the served posterior
before and after it; the run that applied the record's request (with any
requests applied together) divides the served versions into those fitted with
the record (before that run) and those without it (that run's result and
everything after). A version whose before-state the ledger does not know is
never claimed to have held the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bayesunlearn.io import datasets
from bayesunlearn.errors import UserError

from . import events
from .entries import Applied, LedgerEntry, Purge, Revised


class UnknownRecord(UserError):
    """The id is neither in the ledger nor in the data."""


@dataclass(frozen=True)
class Version:
    """One served posterior and what the ledger says about the record in it."""

    seq: int          # the ledger entry that recorded it
    served: str       # its md5 (dvc.lock)
    status: str


@dataclass(frozen=True)
class Trace:
    record_hash: str
    where: str                    # "train", "test" or "unknown" in the prepared data ("" if forgotten)
    forgotten_by: Applied | None  # the entry that applied the request naming it
    purged_by: Purge | None       # the purge that deleted it from the raw data
    versions: list[Version]

    def lines(self) -> list[str]:
        short = f"record {self.record_hash[:12]}…"
        if self.forgotten_by is None:
            if self.where == "test":
                return [f"{short} is in the held-out test split: never trained on, so there is nothing to forget"]
            return [f"{short} is not forgotten: it is in the training data of every served posterior",
                    "served posteriors:", *self._version_lines()]
        entry, request = self.forgotten_by, self.forgotten_by.request
        together = [r for r in entry.applied_together if r != request.request_id]
        out = [f"forgotten by request {request.request_id} (received {request.received_at}), applied "
               f"{entry.applied_at} in run {entry.run_id}, ledger entry {entry.seq} ({entry.served_path} path, "
               f"commit {entry.git_commit[:12]})" + (f", together with {', '.join(together)}" if together else "")]
        if self.purged_by:
            out.append(f"purged from the raw data in entry {self.purged_by.seq} "
                       f"({self.purged_by.recorded_at}, epoch {self.purged_by.epoch})")
        return [*out, "served posteriors:", *self._version_lines()]

    def _version_lines(self) -> list[str]:
        return [f"  entry {v.seq:>3}  {v.served[:16]:16}  {v.status}" for v in self.versions]


def _without(entry: LedgerEntry, purged: Purge | None) -> str:
    if purged is not None and entry.seq >= purged.seq:
        return "without it: base retrained on data that no longer holds it"
    if isinstance(entry, Applied | Revised) and entry.served_path == "fallback":
        return "without it: refitted from scratch on the retained data"
    return "without it, approximately: unlearned from a base that saw it"


def versions(entries: list[LedgerEntry], forgotten: Applied | None, purged: Purge | None) -> list[Version]:
    """Each served version once, in ledger order, judged by the run that produced it."""
    runs: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        runs.setdefault(entry.run_id, []).append(entry)
    order = list(runs)
    forgetting_run = order.index(forgotten.run_id) if forgotten else None
    out, seen = [], set()
    for index, run_id in enumerate(order):
        first = runs[run_id][0]
        if index == forgetting_run and first.artifacts_before is not None:
            before = first.artifacts_before.get("models/served")
            if before and before not in seen:
                seen.add(before)
                out.append(Version(first.seq, before, "had it: served until this run forgot it"))
        if first.served and first.served not in seen:
            seen.add(first.served)
            had = forgetting_run is None or index < forgetting_run
            out.append(Version(first.seq, first.served, "had it: fitted with this record" if had
                               else _without(first, purged)))
    return out


def trace(root: Path, record_id: str) -> Trace:
    root = Path(root)
    led = events.ledger(root)
    entries, key = led.entries(), led.key()
    digest = key.hash_id(record_id)
    forgotten = next((e for e in entries if isinstance(e, Applied) and digest in e.request.record_hashes), None)
    purged = next((e for e in entries if isinstance(e, Purge)
                   and any(digest in a.record_hashes for a in e.archived_requests)), None)
    where = "" if forgotten is not None else _where(root, record_id)  # the ledger answers for a forgotten one
    if forgotten is None and where == "unknown":
        raise UnknownRecord(f"record id {record_id!r} is unknown: no deletion request in the ledger names it "
                            "and it is not in data/prepared. Check the id (ids look like 'rec-000012').")
    return Trace(digest, where, forgotten, purged, versions(entries, forgotten, purged))


def _where(root: Path, record_id: str) -> str:
    return datasets.prepared_ids(root / "data" / "prepared").where(record_id)
