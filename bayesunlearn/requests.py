"""Deletion requests: parse, validate and combine them into one forgotten set.

A request is one JSON file:
    {"request_id": "req-0001", "record_ids": ["rec-000012", ...],
     "reason": "GDPR Art. 17 erasure", "received_at": "2026-11-20T09:30:00Z"}
The same rules serve the DVC `split` stage and the Prefect intake flow, so a
request accepted by one is accepted by the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import RequestError

REQUIRED_FIELDS = {"request_id": str, "record_ids": list, "reason": str, "received_at": str}



@dataclass(frozen=True)
class DeletionRequest:
    request_id: str
    record_ids: tuple[str, ...]
    reason: str
    received_at: str
    source: str  # the file it came from, for error messages


def parse_request(text: str, source: str) -> DeletionRequest:
    """Check one request's shape (not yet its ids against the data)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestError(f"{source}: malformed JSON ({err.msg} at line {err.lineno}, "
                           f"column {err.colno}); fix the file or move it out of the requests folder.") from None
    if not isinstance(raw, dict):
        raise RequestError(f"{source}: a request must be a JSON object with fields {sorted(REQUIRED_FIELDS)}.")
    for field, kind in REQUIRED_FIELDS.items():
        if field not in raw:
            raise RequestError(f"{source}: missing field {field!r}; a request needs {sorted(REQUIRED_FIELDS)}.")
        if not isinstance(raw[field], kind):
            raise RequestError(f"{source}: field {field!r} must be a {kind.__name__}, "
                               f"got {type(raw[field]).__name__}.")
    unknown = set(raw) - set(REQUIRED_FIELDS)
    if unknown:
        raise RequestError(f"{source}: unknown fields {sorted(unknown)}; allowed are {sorted(REQUIRED_FIELDS)}.")
    if not raw["request_id"].strip():
        raise RequestError(f"{source}: request_id is empty.")
    if not raw["record_ids"]:
        raise RequestError(f"{source}: empty request (record_ids is []); name at least one record to forget.")
    if not all(isinstance(r, str) and r for r in raw["record_ids"]):
        raise RequestError(f"{source}: every entry of record_ids must be a non-empty string.")
    try:
        datetime.fromisoformat(raw["received_at"].replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(f"{source}: received_at {raw['received_at']!r} is not an ISO-8601 time "
                           f"such as 2026-11-20T09:30:00Z.") from None
    return DeletionRequest(raw["request_id"], tuple(raw["record_ids"]), raw["reason"],
                           raw["received_at"], source)


def check_against_data(request: DeletionRequest, train_ids: set[str], test_ids: set[str]) -> None:
    """Every id must name a training record; the test split is never deleted from."""
    in_test = sorted(set(request.record_ids) & test_ids)
    if in_test:
        raise RequestError(f"{request.source}: record ids {in_test[:5]} belong to the held-out test split, "
                           f"which is fixed and never deleted from; remove them from the request.")
    unknown = sorted(set(request.record_ids) - train_ids)
    if unknown:
        raise RequestError(f"{request.source}: unknown record ids {unknown[:5]}"
                           f"{' and more' if len(unknown) > 5 else ''}; check them against data/prepared/train.csv.")


def load_requests(folder: str | Path) -> list[DeletionRequest]:
    """Parse every *.json in `folder`, in file-name order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [parse_request(p.read_text(), str(p)) for p in sorted(folder.glob("*.json"))]


def validate_all(requests: Iterable[DeletionRequest], train_ids: set[str], test_ids: set[str]) -> list[str]:
    """Validate a set of requests together and return the sorted union of forgotten ids."""
    seen: dict[str, str] = {}
    forgotten: set[str] = set()
    for request in requests:
        if request.request_id in seen:
            raise RequestError(f"{request.source}: request id {request.request_id!r} is already used by "
                               f"{seen[request.request_id]}; give each request its own id.")
        seen[request.request_id] = request.source
        check_against_data(request, train_ids, test_ids)
        forgotten.update(request.record_ids)
    if train_ids and forgotten >= train_ids:
        sources = ", ".join(seen.values())
        raise RequestError(f"{sources}: these requests together would forget all {len(train_ids)} training "
                           f"records; nothing would remain to learn from. Withdraw one or retire the model.")
    return sorted(forgotten)
