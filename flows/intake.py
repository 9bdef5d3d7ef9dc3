"""Prefect flow `process_deletion_requests`: inbox → validation → DVC stages → gate → served posterior.

Run once:      python -m flows.intake [--repo .]
On a schedule: python -m flows.serve   (see README)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from bayesunlearn import atomic
from lineage import events
from lineage.repo import production_stages

from .workspace import StageFailed, Workspace, accept, reject, return_to_inbox, triage

# No task result is persisted or cached: nothing a task returns may outlive the run.
QUIET = {"cache_policy": NONE, "persist_result": False}


@task(**QUIET, task_run_name="dvc repro {stage}")
def dvc_stage(root: str, stage: str) -> None:
    Workspace(Path(root)).repro(stage)


@task(**QUIET)
def triage_inbox(root: str) -> list[str]:
    """Validate pending requests in name order; move each to data/requests/ or inbox/rejected/.

    Returns the paths of the newly applied requests (ids and paths only, never records).
    """
    workspace, logger = Workspace(Path(root)), get_run_logger()
    applied = []
    for path in sorted(workspace.inbox.glob("*.json")):
        verdict, detail = triage(workspace, path)
        if verdict == "accept":
            applied.append(str(accept(workspace, path, detail)))
            logger.info("accepted request %s", detail)
        else:
            reject(workspace, path, detail)
            logger.warning("rejected %s: %s", path.name, detail)
    return applied


@task(**QUIET)
def publish(root: str, applied: list[str], stages: list[str], ledger_entries: list[int]) -> dict:
    """Markdown and table artifacts: request ids and counts, hashes, gate decision. No records."""
    workspace = Workspace(Path(root))
    gate = json.loads((workspace.root / "metrics" / "gate.json").read_text())
    provenance = json.loads((workspace.root / "models" / "served" / "provenance.json").read_text())
    summary = json.loads((workspace.root / "data" / "split" / "summary.json").read_text())
    method = gate["method"]
    hashes = workspace.lock_hashes(["data/split", f"models/unlearned/{method}.npz", "models/served"])
    new_ids = [Path(p).stem for p in applied]
    lines = [f"# Deletion run: {provenance['path']} path",
             f"New requests: {', '.join(new_ids) or 'none'}; in force: {len(summary['requests'])} requests, "
             f"{summary['n_forgotten']} records forgotten, {summary['n_retained']} retained.", "",
             "| request | records |", "|---|---|",
             *[f"| {r['request_id']} | {r['n_records']} |" for r in summary["requests"]], "",
             f"**Gate ({method}): {gate['decision']}** — residual ratio {gate['residual_ratio']:.3g}, "
             f"membership AUC {'n/a' if gate['mia_auc'] is None else format(gate['mia_auc'], '.3g')}. "
             f"{'; '.join(gate['reasons'])}", "",
             "| artifact | md5 (dvc.lock) |", "|---|---|", *[f"| {k} | {v} |" for k, v in hashes.items()], "",
             f"Stages: {' → '.join(stages)}", "",
             f"Ledger entries: {', '.join(map(str, ledger_entries)) or 'none'} in audit/ledger.jsonl — review one "
             f"with `unlearn audit show REQUEST --html page.html`, check all with `unlearn audit verify`."]
    create_markdown_artifact("\n".join(lines), key="deletion-run", description="what was forgotten and served")
    create_table_artifact([{"signal": k, "value": gate[k]} for k in
                           ("decision", "residual_ratio", "residual_unlearned", "residual_original", "mia_auc",
                            "unlearn_status", "repair", "n_forgotten")], key="gate-metrics")
    return {"served": provenance["path"], "gate": gate["decision"], "requests": new_ids, "hashes": hashes,
            "ledger_entries": ledger_entries}


@task(**QUIET)
def record_in_ledger(root: str, applied: list[str], before: dict[str, str]) -> list[int]:
    """One ledger entry per applied request, after its artifacts exist and are committed; returns their numbers."""
    commit = bool(Workspace(Path(root)).params().get("ledger", {}).get("commit", True))
    entries = events.record_requests(Path(root), [Path(p).stem for p in applied], commit=commit, before=before)
    return [e["seq"] for e in entries]


@flow(name="process_deletion_requests")
def process_deletion_requests(repo: str = ".", request: dict | None = None) -> dict:
    """Apply the pending deletion requests (the inbox, plus `request` if given) and serve the result.

    One run at a time per workspace (a file lock around the whole run). If a
    stage fails, the requests of this run go back to the inbox and the served
    posterior stays as it was; the next run picks them up again.
    """
    workspace, logger = Workspace(Path(repo).resolve()), get_run_logger()
    root, stages = str(workspace.root), production_stages(workspace.params())
    if request is not None:  # a payload: becomes an inbox file, then follows the same path
        name = str(request.get("request_id", "request")).replace("/", "_")
        atomic.write_json(workspace.inbox / f"{name}.json", request)
    with workspace.lock():
        before = events.current_artifacts(workspace.root)
        dvc_stage(root, "prepare")  # ids of the data must exist to validate against
        applied = triage_inbox(root)
        try:
            for stage in stages[1:]:
                dvc_stage(root, stage)
        except StageFailed:
            for path in applied:
                return_to_inbox(workspace, Path(path))
            logger.error("a stage failed; requests %s are pending again, the served posterior is unchanged",
                         [Path(p).stem for p in applied])
            raise
        result = publish(root, applied, stages, record_in_ledger(root, applied, before))
    logger.info("served the %s posterior; gate %s; new requests %s", result["served"], result["gate"],
                result["requests"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC workspace (default: the current folder)")
    args = parser.parse_args()
    print(json.dumps(process_deletion_requests(repo=args.repo), indent=2))


if __name__ == "__main__":
    main()
