"""Prefect flow `process_deletion_requests`: inbox → validation → DVC stages → gate → served posterior → ledger.

Run once:      python -m flows.intake [--repo .]   (uses, or starts for the run, the project's Prefect server)
On a schedule: make serve                          (python -m flows.serve; see README)

Requests enter only as files in `inbox/` (or through `deletions request submit`),
never as flow parameters: Prefect stores parameters in its database, which a
purge cannot clean, so no record id ever reaches Prefect.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from bayesunlearn import exits
from bayesunlearn.errors import Exit, UserError
from bayesunlearn.io import contracts
from bayesunlearn.io.progress import PATIENCE, progress
from lineage import events, inflight
from lineage.inbox import Inbox, Verdict
from lineage.repo import check_git_lock
from lineage.words import count

from . import command
from .server import DEFAULT_PORT, local_server
from .workspace import StageFailed, Workspace

command.quiet_user_errors()  # here too: `make serve` runs the flows in processes of their own

# No task result is persisted or cached: nothing a task returns may outlive the run.
QUIET = {"cache_policy": NONE, "persist_result": False}


@task(**QUIET, task_run_name="dvc repro {stage}")
def dvc_stage(root: str, stage: str) -> None:
    Workspace(Path(root)).repro(stage)


@task(**QUIET)
def triage_inbox(root: str) -> list[str]:
    """Validate pending inbox files in name order; move each to the requests folder or inbox/rejected/.

    Each file is its own unit of failure: whatever goes wrong with one, it is moved out of the
    inbox with its reason and the others carry on. Returns the paths of the newly accepted
    requests. Logs name files, request ids and rules, never record ids (Prefect keeps its logs).
    """
    inbox, logger = Inbox(Path(root)), get_run_logger()
    inbox.check_folders()  # a linked or missing folder stops the run before anything moves
    existing, known = inbox.in_force(), inbox.known_ids()
    accepted = []
    for path in progress(inbox.pending(), desc="triage", unit="file", delay=PATIENCE):
        try:
            verdict = inbox.triage(path, existing, known)
            if verdict.kind == "accept":
                target = inbox.accept(path, verdict)
                existing.append(verdict.request)
                accepted.append(str(target))
                logger.info("accepted request %s", verdict.request_id)
            else:
                moved = inbox.reject(path, verdict)
                logger.warning("rejected %s (%s): see %s", moved.name, verdict.rule, moved.name + ".reason.json")
        except Exception as err:  # noqa: BLE001 - isolation: one file's failure never stops the others
            logger.error("could not triage %r: %s", path.name, type(err).__name__)
            try:
                inbox.reject(path, Verdict("reject", None, "unprocessable", f"{path}: could not be processed "
                                           f"({type(err).__name__}: {err})"))
            except OSError as move_error:
                logger.error("could not move %r out of the inbox either: %s", path.name, move_error)
    return accepted


@task(**QUIET)
def record_in_ledger(root: str, start: events.Snapshot, run_id: str) -> list[int]:
    """One ledger entry per request in force that the ledger lacks (this run's, and any a crash left
    unrecorded), after their artifacts exist and are committed; returns the entry numbers."""
    commit = Workspace(Path(root)).settings().ledger.commit
    return [e.seq for e in events.record_pending(Path(root), start=start, commit=commit, run_id=run_id)]


@task(**QUIET)
def record_leftovers(root: str) -> list[int]:
    """What a killed run (the intake's or the audit's) served but did not record, recorded before this run
    changes it; nothing while the chain is mid-way (this run's own recording takes it then)."""
    commit = Workspace(Path(root)).settings().ledger.commit
    try:
        return [e.seq for e in events.record_pending(Path(root), commit=commit)]
    except events.ChainNotCurrent:
        return []


@task(**QUIET)
def publish(root: str, accepted: list[str], stages: list[str], ledger_entries: list[int]) -> dict:
    """Markdown and table artifacts: request ids and counts, hashes, gate decision. No records."""
    workspace = Workspace(Path(root))
    gate = contracts.GateReport.read(workspace.root / contracts.GATE_REPORT)
    provenance = contracts.Provenance.read(workspace.root / contracts.PROVENANCE)
    summary = contracts.SplitSummary.read(workspace.root / contracts.SPLIT_SUMMARY)
    hashes = workspace.lock_hashes(["data/split", f"models/unlearned/{gate.method}.npz", "models/served"])
    new_ids = [Path(p).stem for p in accepted]
    lines = [f"# Deletion run: {provenance.path} path",
             f"New requests: {', '.join(new_ids) or 'none'}; in force: {count(len(summary.requests), 'request')}, "
             f"{count(summary.n_forgotten, 'record')} forgotten, {summary.n_retained} retained.", "",
             "| request | records |", "|---|---|",
             *[f"| {r.request_id} | {r.n_records} |" for r in summary.requests], "",
             f"**Gate ({gate.method}): {gate.decision}** — retained NLL change {gate.retained_nll_change:.3g}, "
             f"membership AUC {'n/a' if gate.mia_auc is None else format(gate.mia_auc, '.3g')}. "
             f"{'; '.join(gate.reasons)}", "",
             "| artifact | md5 (dvc.lock) |", "|---|---|", *[f"| {k} | {v} |" for k, v in hashes.items()], "",
             f"Stages: {' → '.join(stages)}", "",
             f"Ledger entries: {', '.join(map(str, ledger_entries)) or 'none'} in audit/ledger.jsonl — list them "
             f"with `deletions audit list`, review a request's with `deletions audit show REQUEST --html page.html`, "
             f"check all with `deletions audit verify`."]
    create_markdown_artifact("\n".join(lines), key="deletion-run", description="what was forgotten and served")
    create_table_artifact([{"signal": k, "value": getattr(gate, k)} for k in
                           ("decision", "retained_nll_change", "residual_ratio", "residual_unlearned", "residual_original", "mia_auc",
                            "unlearn_status", "repair", "n_forgotten")], key="gate-metrics")
    return {"served": provenance.path, "gate": gate.decision, "requests": new_ids, "hashes": hashes,
            "ledger_entries": ledger_entries}


@flow(name="process_deletion_requests")
def process_deletion_requests(repo: str = ".") -> dict:
    """Apply the pending deletion requests of the inbox, serve the result and record it in the ledger.

    One run at a time per workspace (a file lock around the whole run). A stale git lock stops the
    run before any request moves. If a stage fails, the requests of this run go back to the inbox
    and the served posterior stays as it was; the next run picks them up again. Every run records
    every applied request the ledger lacks, so a run killed at any point is completed by the next.
    With `audit.after_intake`, a run that served something new on the fast path then runs the audit
    (`audit_unlearning`, as a subflow) and returns its verdict under "audit".
    """
    workspace, logger = Workspace(Path(repo).resolve()), get_run_logger()
    params = workspace.settings()  # a bad params.yaml fails here, before anything moves
    gate = params.gate
    root, stages = str(workspace.root), contracts.production_stages(gate.method, gate.posterior)
    with workspace.lock(), inflight.claim(workspace.root, "the intake", params.ledger.commit):
        check_git_lock(workspace.root)
        dvc_stage(root, contracts.CHECK_STAGE)  # upstream of every stage: the chain is up to date only after it
        leftovers = record_leftovers(root)
        start = events.snapshot(workspace.root)
        dvc_stage(root, "prepare")  # ids of the data must exist to validate against
        accepted = triage_inbox(root)
        try:
            for stage in stages[1:]:
                dvc_stage(root, stage)
        except StageFailed:
            inbox = Inbox(workspace.root)
            for path in accepted:
                inbox.return_to_inbox(Path(path))
            logger.error("a stage failed; requests %s are pending again, the served posterior is unchanged",
                         [Path(p).stem for p in accepted])
            raise
        entries = leftovers + record_in_ledger(root, start, str(runtime.flow_run.id or events.new_run_id()))
        result = publish(root, accepted, stages, entries)
    logger.info("served the %s posterior; gate %s; new requests %s", result["served"], result["gate"],
                result["requests"])
    if params.audit.after_intake and result["served"] == "fast" and entries:
        result["audit"] = audit_after_intake(root)
    return result


class AuditAfterIntakeFailed(UserError):
    """The audit right after an intake run failed; the intake's event stays committed and recorded."""

    exit_code = Exit.STAGE


def audit_after_intake(root: str) -> dict:
    """`audit.after_intake`: the audit as a subflow, once the intake's lock is released, so a fast-path posterior
    it rejects is replaced by a refit now rather than at the next audit_cron. Its failure is reported, never undoes
    the event: the next audit (this option's or the cron's) judges what is served then."""
    from .audit import audit_unlearning  # here: flows.audit imports this module's tasks

    try:
        return audit_unlearning(repo=root)
    except Exception as err:  # noqa: BLE001 - any failure of the audit, reported as one
        get_run_logger().error("the audit after the intake failed: %s", err)
        raise AuditAfterIntakeFailed(f"the intake's event is served and recorded, but the audit right after it "
                                     f"failed: {' '.join(str(err).split()) or type(err).__name__}; the next audit "
                                     "judges what is served then") from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.intake", description=__doc__, epilog=exits.text(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC workspace (default: the current folder)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the local Prefect server")
    args = parser.parse_args(argv)

    def body() -> None:
        command.preflight(args.repo)  # a bad params.yaml or a stale git lock: one line, before any server starts
        with local_server(args.port):
            print(json.dumps(process_deletion_requests(repo=args.repo), indent=2))

    return command.run(parser.prog, body)


if __name__ == "__main__":
    raise SystemExit(main())
