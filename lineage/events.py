"""Turn the workspace's state into ledger entries: one per applied request, one per purge.

An entry is written only after the artifacts it describes exist and are
committed: the event's commit holds dvc.lock, the request files and params, so
`unlearn audit reproduce` can check it out and rebuild it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bayesunlearn.errors import UserError

from . import repo
from .ledger import Ledger

GATE_SIGNALS = ("residual_ratio", "residual_unlearned", "residual_original", "mia_auc", "unlearn_status", "repair",
                "n_forgotten")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def params(root: Path) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text())


def current_artifacts(root: Path, lock: dict | None = None) -> dict[str, str]:
    lock = repo.read_lock(root) if lock is None else lock
    return {**repo.artifact_hashes(lock, repo.production_stages(params(root))), **repo.raw_data_hashes(root)}


def epoch(entries: list[dict]) -> int:
    """Purges so far: each starts a new epoch with a base model retrained on what remains."""
    return sum(e.get("event") == "purge" for e in entries)


def recorded_request_ids(entries: list[dict]) -> set[str]:
    return {e["request"]["request_id"] for e in entries if "request" in e}


def pending_request_ids(root: Path, entries: list[dict]) -> list[str]:
    """Requests applied by the pipeline (in data/split/summary.json) but not yet in the ledger."""
    summary = json.loads((root / "data" / "split" / "summary.json").read_text())
    recorded = recorded_request_ids(entries)
    return [r["request_id"] for r in summary["requests"] if r["request_id"] not in recorded]


def _check_applied(root: Path, request_ids: list[str], artifacts: dict[str, str]) -> None:
    summary = json.loads((root / "data" / "split" / "summary.json").read_text())
    in_force = {r["request_id"] for r in summary["requests"]}
    missing = [r for r in request_ids if r not in in_force]
    if missing:
        raise UserError(f"requests {missing} are not applied in this workspace (not in data/split/summary.json); "
                        "run `dvc repro serve` (or the intake flow) first, then record.")
    absent = [path for path in artifacts if not (root / path).exists()]
    if absent:
        raise UserError(f"artifacts {absent} named in dvc.lock do not exist; run `dvc repro serve` "
                        "(or `dvc checkout`) before recording the event.")


def request_summary(root: Path, request_id: str, salt) -> dict:
    """What the ledger keeps of a request: never its record ids in clear, never record values."""
    raw = json.loads((root / "data" / "requests" / f"{request_id}.json").read_text())
    return {"request_id": request_id, "reason": raw["reason"][:200], "received_at": raw["received_at"],
            "n_records": len(set(raw["record_ids"])), "record_hashes": salt.hash_ids(raw["record_ids"])}


def gate_summary(root: Path) -> dict:
    gate = json.loads((root / "metrics" / "gate.json").read_text())
    thresholds = {k: v for k, v in params(root)["gate"].items() if k not in ("method", "posterior")}
    return {"decision": gate["decision"], "reasons": gate["reasons"], "thresholds": thresholds,
            "metrics": {k: gate.get(k) for k in GATE_SIGNALS}}


def record_requests(root: Path, request_ids: list[str] | None = None, commit: bool = True,
                    applied_at: str | None = None, before: dict[str, str] | None = None) -> list[dict]:
    """Append one entry per applied request (default: every applied request not yet recorded).

    `before` is the artifact state before the event (the flow reads it before
    running DVC); by default it is the state of the last ledger entry, or of
    dvc.lock at HEAD when the ledger is empty.
    """
    root = Path(root).resolve()
    ledger = Ledger(root)
    repository = repo.repository_id(root)
    entries = ledger.entries_raw()
    salt = ledger.salt(create=True)
    request_ids = pending_request_ids(root, entries) if request_ids is None else request_ids
    if not request_ids:
        return []
    already = sorted(recorded_request_ids(entries) & set(request_ids))
    if already:
        raise UserError(f"requests {already} are already in the ledger; see `unlearn audit show {already[0]}`.")
    lock = repo.read_lock(root)
    after = current_artifacts(root, lock)
    _check_applied(root, request_ids, after)
    if before is None:
        before = entries[-1]["artifacts_after"] if entries else current_artifacts(root, repo.read_lock(root, "HEAD"))
    provenance = json.loads((root / "models" / "served" / "provenance.json").read_text())
    requests = [request_summary(root, r, salt) for r in request_ids]
    revision = repo.commit(root, repo.EVENT_PATHS, f"unlearn: apply {', '.join(request_ids)} "
                           f"({provenance['path']} path)") if commit else repo.head_commit(root)
    dirty = repo.dirty_paths(root)
    gate_method = params(root)["gate"]
    recorded = []
    for request in requests:
        entry = {"event": "fallback" if provenance["path"] == "fallback" else "applied",
                 "request": request, "applied_at": applied_at or now(), "recorded_at": now(),
                 "epoch": epoch(entries), "git_commit": revision, "dirty": dirty,
                 "method": gate_method["method"], "posterior": gate_method["posterior"],
                 "served_path": provenance["path"], "gate": gate_summary(root),
                 "served": after.get("models/served", ""),
                 "artifacts_before": before, "artifacts_after": after}
        recorded.append(ledger.append(entry, repository))
    if commit:
        repo.commit(root, [str(ledger.path.relative_to(root))],
                    f"audit: ledger entries {recorded[0]['seq']}-{recorded[-1]['seq']} ({', '.join(request_ids)})")
    return recorded
