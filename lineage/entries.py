"""The typed records of the deletion ledger: one line per applied request, one per purge, and one per
revision of the served posterior that no request caused.

Every line read back is validated against these models, so a damaged or
hand-made line is a clear error, never a KeyError deep inside `trace`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Artifacts = dict[str, str]   # path -> md5 as dvc.lock records it


class Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class RequestFacts(Record):
    """What the ledger keeps of a request: never its record ids in clear, never record values."""

    request_id: str
    reason: str
    received_at: str
    n_records: int
    record_hashes: list[Hex64]   # keyed HMAC of each record id, sorted


class GateFacts(Record):
    decision: Literal["pass", "fallback"]
    reasons: list[str]
    thresholds: dict[str, Any]
    metrics: dict[str, Any]


class Sealed(Record):
    """Fields the ledger adds when it appends a line."""

    seq: int = -1
    repository: str = ""
    key_id: str = ""
    prev_hash: str = ""
    entry_hash: str = ""


class RunFacts(Sealed):
    """What every event shares: the run that caused it and the artifact state around that run.

    `artifacts_before` is the state before the run that applied the request; None when it
    is unknown (the request was already applied when the ledger began).
    """

    run_id: str
    recorded_at: str
    epoch: int
    git_commit: str
    dirty: list[str]
    served: str
    artifacts_before: Artifacts | None
    artifacts_after: Artifacts


class Applied(RunFacts):
    event: Literal["applied", "fallback"]
    request: RequestFacts
    applied_together: list[str]   # every request this run applied (this one included)
    applied_at: str
    method: str
    posterior: str
    served_path: Literal["fast", "fallback"]
    gate: GateFacts


class ArchivedRequest(Record):
    request_id: str
    n_records: int
    record_hashes: list[Hex64]


class Purge(RunFacts):
    event: Literal["purge"]
    retention_days: float
    archived_requests: list[ArchivedRequest]
    n_records_removed: int
    raw_data: str
    not_rerunnable: list[int]
    gc: dict[str, Any]
    scan: dict[str, Any]
    leftovers: list[str]


class Revised(RunFacts):
    """The served posterior changed while the requests in force did not: the nightly audit refused the
    posterior the gate had passed (the gate's reasons say so), or params or code changed and the chain ran
    again. Recorded so that the last entry always describes what is served."""

    event: Literal["revised"]
    requests: list[str]           # the requests in force, each recorded by an earlier entry
    method: str
    posterior: str
    served_path: Literal["fast", "fallback"]
    gate: GateFacts


LedgerEntry = Applied | Purge | Revised
Entry = Annotated[LedgerEntry, Field(discriminator="event")]
