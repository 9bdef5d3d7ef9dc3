"""`unlearn audit trace RECORD_ID`: who forgot a record, when, and which served posteriors still had it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bayesunlearn.errors import UserError

from .ledger import Ledger
from .verify import table_ids


class UnknownRecord(UserError):
    """The id is neither in the ledger nor in the data."""


@dataclass(frozen=True)
class Trace:
    record_hash: str
    forgotten_by: dict | None    # the entry that applied the request naming it
    purged_by: dict | None       # the purge entry that deleted it from the raw data
    served: list[dict]           # one row per served posterior version: {seq, served, status}

    def lines(self) -> list[str]:
        if self.forgotten_by is None:
            return [f"record {self.record_hash[:12]}… is not forgotten: it is still in the training data"]
        request = self.forgotten_by["request"]
        out = [f"forgotten by request {request['request_id']} (received {request['received_at']}), applied "
               f"{self.forgotten_by['applied_at']} in ledger entry {self.forgotten_by['seq']} "
               f"({self.forgotten_by['served_path']} path, commit {self.forgotten_by['git_commit'][:12]})"]
        if self.purged_by:
            out.append(f"purged from the raw data in entry {self.purged_by['seq']} "
                       f"({self.purged_by['recorded_at']}, epoch {self.purged_by['epoch']})")
        out.append("served posteriors:")
        out += [f"  entry {row['seq']:>3}  {row['served'][:16]:16}  {row['status']}" for row in self.served]
        return out


def _status(entry: dict, forgotten_seq: int | None, purged_seq: int | None) -> str:
    if forgotten_seq is None or entry["seq"] < forgotten_seq:
        return "had it: fitted with this record"
    if purged_seq is not None and entry["seq"] >= purged_seq:
        return "without it: base retrained on data that no longer holds it"
    if entry.get("served_path") == "fallback":
        return "without it: refitted from scratch on the retained data"
    return "without it, approximately: unlearned from a base that saw it"


def trace(root: Path, record_id: str) -> Trace:
    ledger = Ledger(Path(root))
    salt, entries = ledger.salt(), ledger.entries_raw()
    digest = salt.hash_id(record_id)
    forgotten = next((e for e in entries if digest in e.get("request", {}).get("record_hashes", [])), None)
    purged = next((e for e in entries if any(digest in a["record_hashes"] for a in e.get("archived_requests", []))),
                  None)
    if forgotten is None:
        known = set()
        for name in ("train.csv", "test.csv"):
            path = Path(root) / "data" / "prepared" / name
            known.update(table_ids(path) if path.exists() else [])
        if record_id not in known:
            raise UnknownRecord(f"record id {record_id!r} is unknown: no deletion request in the ledger names it "
                                "and it is not in data/prepared. Check the id (ids look like 'rec-000012').")
    served, last = [], None
    for e in entries:
        before = e.get("artifacts_before", {}).get("models/served")
        if e is forgotten and before and before != last:  # the version this request replaced
            served.append({"seq": e["seq"], "served": before, "status": "had it: served until this request"})
            last = before
        if e.get("served") and e["served"] != last:
            served.append({"seq": e["seq"], "served": e["served"],
                           "status": _status(e, forgotten and forgotten["seq"], purged and purged["seq"])})
            last = e["served"]
    return Trace(digest, forgotten, purged, served)
