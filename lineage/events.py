"""Turn the workspace's state into ledger entries: one per applied request, one per purge, one per revision.

Every request in force (applied by the split that dvc.lock records) gets exactly
one entry, whatever crashed in between: each recording takes *all* requests in
force that the ledger does not yet hold, so a run that died after its stages
(or after its commit) is completed by the next one. An entry is written only
after the artifacts it describes exist and are committed: the event's commit
holds dvc.lock, the request files and params, so `deletions audit reproduce` can
check it out and rebuild it.

Requests recorded together came from one run: they share its `run_id`, the
artifacts before and after it, and each lists the others in `applied_together`.
The state before a run is the state the previous ledger entry recorded; for the
first entries it is the state the run started from if that did not yet include
them, else unknown (None): the ledger never claims a posterior held a record
it cannot show. When no request is pending but the production artifacts differ
from the last entry's (the nightly audit refused the posterior the gate had
passed, or params or code changed), one `revised` entry records the new state,
so the last entry always describes what is served.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bayesunlearn.io import contracts, requests, sections, settings
from bayesunlearn.errors import UserError

from . import anchor, repo
from .entries import Applied, Purge, Revised
from .ledger import LEDGER, Ledger

GATE_SIGNALS = ("retained_nll_change", "residual_ratio", "residual_unlearned", "residual_original", "mia_auc", "unlearn_status", "repair",
                "n_forgotten")


class ChainNotCurrent(UserError):
    """The production chain is mid-way (a run died, or params changed): its artifacts describe no served state."""


class WorkspaceChanged(UserError):
    """A file the event was recorded from changed while it was being recorded."""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Snapshot:
    """The production artifacts and the requests they apply, at one moment (e.g. a run's start)."""

    artifacts: dict[str, str]
    in_force: frozenset[str]


def in_force(root: Path) -> list[str]:
    """Request ids applied by the split in the workspace (data/split/summary.json, a dvc.lock output)."""
    path = root / contracts.SPLIT_SUMMARY
    return contracts.SplitSummary.read(path).request_ids if path.exists() else []


def snapshot(root: Path) -> Snapshot:
    return Snapshot(repo.current_artifacts(root), frozenset(in_force(root)))


def epoch(entries: list) -> int:
    """Purges so far: each starts a new epoch with a base model retrained on what remains."""
    return sum(isinstance(e, Purge) for e in entries)


def archived_ids(entries: list) -> set[str]:
    return {a.request_id for e in entries if isinstance(e, Purge) for a in e.archived_requests}


def recorded_ids(entries: list) -> set[str]:
    return {e.request.request_id for e in entries if isinstance(e, Applied)}


def ledger(root: Path) -> Ledger:
    led = Ledger(root, repo.repository_id(root))
    led.check_repository()
    return led


def request_files(root: Path, split: sections.Split | None = None) -> dict[str, Path]:
    """request id -> file, for the requests folder of the workspace (validated with the one schema)."""
    split = split or settings.load(root / settings.PARAMS).split
    folder = root / split.requests_dir
    return {r.request_id: Path(r.source) for r in requests.load_requests(folder, split.max_request_bytes)}


# Files whose content an event's entry states: read once when the event starts, unchanged when it is committed.
WATCHED = tuple(map(str, (settings.PARAMS, "dvc.lock", LEDGER, "metrics/audit.json", contracts.GATE_REPORT,
                          contracts.PROVENANCE, contracts.SPLIT_SUMMARY)))


def digests(root: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of each file ('' for one that does not exist)."""
    out = {}
    for path in paths:
        try:
            out[path] = hashlib.sha256((root / path).read_bytes()).hexdigest()
        except (FileNotFoundError, IsADirectoryError):
            out[path] = ""
    return out


@dataclass(frozen=True)
class State:
    """Everything one event is recorded from, read once when it starts (settings, ledger, dvc.lock, verdict,
    gate, provenance, split, request files), so that no entry mixes two states of the workspace. `digests`
    are the bytes behind it: `unchanged` checks them again before anything is committed."""

    settings: settings.Settings
    digests: dict[str, str]
    ledger_text: str
    entries: list
    in_force: list[str]
    artifacts: dict[str, str]
    requests: dict[str, Path]


def read_state(root: Path, led: Ledger) -> State:
    watched = digests(root, list(WATCHED))  # first: whatever is parsed below is these bytes or is caught later
    params = settings.load(root / settings.PARAMS)
    text = led.text()
    led.check(text)  # chain, key, head, committed history
    files = request_files(root, params.split)
    watched.update(digests(root, [str(p.relative_to(root)) for p in files.values()]))
    lock = repo.read_lock(root)
    artifacts = {**repo.artifact_hashes(lock, contracts.production_stages(params.gate.method, params.gate.posterior)),
                 **repo.raw_data_hashes(root)}
    return State(params, watched, text, led.parse(text.splitlines()), in_force(root), artifacts, files)


def unchanged(root: Path, state: State) -> None:
    """Refuse to commit an event whose inputs changed underneath it (an edit, another process)."""
    changed = [p for p, digest in digests(root, list(state.digests)).items() if digest != state.digests[p]]
    if changed:
        raise WorkspaceChanged(f"{', '.join(changed)} changed while the event was being recorded; nothing was "
                               "recorded. Run again once nothing else edits the workspace.")


def _request_facts(state: State, path: Path, key) -> dict:
    request = requests.read_request(path, state.settings.split.max_request_bytes)
    return {"request_id": request.request_id, "reason": request.reason[:200], "received_at": request.received_at,
            "n_records": len(set(request.record_ids)), "record_hashes": key.hash_ids(request.record_ids)}


def _gate_facts(root: Path, state: State) -> dict:
    gate = contracts.GateReport.read(root / contracts.GATE_REPORT)
    thresholds = state.settings.gate.model_dump(exclude={"method", "posterior"})
    return {"decision": gate.decision, "reasons": gate.reasons, "thresholds": thresholds,
            "metrics": {k: getattr(gate, k) for k in GATE_SIGNALS}}


def recover(root: Path, led: Ledger, commit: bool = True) -> list[int]:
    """Finish what a recording killed after its ledger write left: temporary files of the write go, the head is
    re-derived from the ledger, and entries appended but not committed are committed. Returns their numbers."""
    with led.locked():
        led.remove_temporaries()
        text = led.text()
        led.check(text)  # nothing is adopted that fails its checks
        lines = text.splitlines()
        if not lines:
            return []
        last = led.parse(lines[-1:])[0]
        head = led.head()
        if head is None or head.seq < last.seq:
            led.write_head(last.seq, last.entry_hash)
    if not commit:
        return []
    longest = anchor.history(root).longest
    committed = len(longest.lines) if longest else 0
    if committed >= len(lines):
        return []
    repo.commit(root, [str(LEDGER)], f"audit: ledger entries {committed}-{len(lines) - 1}, appended by a run "
                                     "that stopped before committing them")
    return list(range(committed, len(lines)))


def record_pending(root: Path, start: Snapshot | None = None, commit: bool = True, only: list[str] | None = None,
                   run_id: str | None = None) -> list[Applied | Revised]:
    """Append one entry per request in force that the ledger does not hold yet, or, when none is pending, one
    `revised` entry if the production artifacts changed since the last entry; returns the new entries.

    `start`: the state the current run began from (the intake flow takes it before its stages);
    `only`: record just these requests (they must be pending). What a killed recording left is finished first.
    """
    root = Path(root).resolve()
    led = ledger(root)
    recover(root, led, commit)
    state = read_state(root, led)
    entries = state.entries
    recorded = recorded_ids(entries) | archived_ids(entries)
    pending = [r for r in state.in_force if r not in recorded]
    if only:
        already = sorted(set(only) & recorded)
        if already:
            raise UserError(f"requests {already} are already in the ledger; see `deletions audit show {already[0]}`.")
        missing = sorted(set(only) - set(pending))
        if missing:
            raise UserError(f"requests {missing} are not applied in this workspace (not in "
                            f"{contracts.SPLIT_SUMMARY}); run `dvc repro serve` (or the intake flow) first.")
        pending = [r for r in pending if r in only]
    if not pending and (only or not entries or state.artifacts == entries[-1].artifacts_after):
        return []
    unchanged(root, state)  # an edit since the read would otherwise show as a stale chain below
    stale = repo.stale_stages(root)
    if stale:
        raise ChainNotCurrent(f"the production chain is not up to date (stages {', '.join(sorted(stale))}): its "
                              "artifacts describe no served state; run the intake flow (or `dvc repro serve`) first.")
    if not pending:
        return _record_revision(root, led, state, commit, run_id)
    after = _existing_artifacts(root, state)
    lost = [r for r in pending if r not in state.requests]
    if lost:
        raise UserError(f"requests {lost} are applied by the split but their files are gone from the requests "
                        "folder; restore them from git (`git checkout -- data/requests`).")
    if entries:
        before = entries[-1].artifacts_after
    elif start is not None and not (set(pending) & start.in_force):
        before = start.artifacts
    else:
        before = None
    provenance = contracts.Provenance.read(root / contracts.PROVENANCE)
    key = led.key(create=True)
    facts = [_request_facts(state, state.requests[r], key) for r in pending]
    gate = _gate_facts(root, state)
    message = f"deletions: apply {', '.join(pending)} ({provenance.path} path)"
    revision = _commit_event(root, state, message) if commit else repo.head_commit(root)
    shared = _run_facts(root, entries, revision, run_id, before, after)
    events = [{**shared, "event": "fallback" if provenance.path == "fallback" else "applied", "request": request,
               "applied_together": pending, "applied_at": shared["recorded_at"], "method": provenance.method,
               "posterior": provenance.posterior, "served_path": provenance.path, "gate": gate}
              for request in facts]
    return _append(root, led, state, events, commit, f"({', '.join(pending)})")


def _commit_event(root: Path, state: State, message: str) -> str:
    """The event's own commit (dvc.lock, params, metrics, requests), made only on the state it was read from."""
    unchanged(root, state)
    return repo.commit(root, [*repo.EVENT_PATHS, state.settings.split.requests_dir], message)


def _append(root: Path, led: Ledger, state: State, events: list[dict], commit: bool, what: str) -> list:
    """Append the entries and commit the ledger; a refused commit puts ledger and head back as they were."""
    unchanged(root, state)
    head = led.head()
    sealed = led.append(events)
    if commit:
        try:
            repo.commit(root, [str(LEDGER)], f"audit: ledger entries {sealed[0].seq}-{sealed[-1].seq} {what}")
        except BaseException:
            led.restore(state.ledger_text, head)
            raise
    return sealed


def _run_facts(root: Path, entries: list, revision: str, run_id: str | None, before: dict | None,
               after: dict[str, str]) -> dict:
    """What every entry of one run shares (entries.RunFacts)."""
    return {"run_id": run_id or new_run_id(), "recorded_at": now(), "epoch": epoch(entries), "git_commit": revision,
            "dirty": repo.dirty_paths(root), "served": after.get("models/served", ""), "artifacts_before": before,
            "artifacts_after": after}


def _existing_artifacts(root: Path, state: State) -> dict[str, str]:
    """The production artifacts dvc.lock records; refused if one of them is not on disk."""
    absent = [path for path in state.artifacts if not (root / path).exists()]
    if absent:
        raise UserError(f"artifacts {absent} named in dvc.lock do not exist; run `dvc repro serve` "
                        "(or `dvc checkout`) before recording the event.")
    return state.artifacts


def _record_revision(root: Path, led: Ledger, state: State, commit: bool, run_id: str | None) -> list[Revised]:
    """One `revised` entry: the artifacts of a current chain differ from the last entry's."""
    after = _existing_artifacts(root, state)
    provenance = contracts.Provenance.read(root / contracts.PROVENANCE)
    message = f"deletions: the served posterior is revised ({provenance.path} path; no new request)"
    revision = _commit_event(root, state, message) if commit else repo.head_commit(root)
    event = {**_run_facts(root, state.entries, revision, run_id, state.entries[-1].artifacts_after, after),
             "event": "revised", "requests": state.in_force, "method": provenance.method,
             "posterior": provenance.posterior, "served_path": provenance.path, "gate": _gate_facts(root, state)}
    return _append(root, led, state, [event], commit, "(revised)")
