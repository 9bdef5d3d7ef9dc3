"""Prefect flow `audit_unlearning`: the slow path, run on a schedule (e.g. nightly).

Runs the reference retrains and the full evaluation of the production method
(`dvc repro evaluate@METHOD`), then checks the gate's decision against it. A
gate that passed while the audit finds the unlearned posterior worse than
doing nothing (gain ≥ `audit.max_gain`) or far outside the retrain noise
(indistinguishability > `audit.max_indistinguishability`) is reported loudly.
The per-record membership test (`dvc repro privacy`) reports, beside it, the
share of forgotten records still told apart under the served posterior and under
a fresh retrain. The audit result is written to metrics/audit.json beside the requests it covers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from bayesunlearn.io import atomic, contracts, datasets

from lineage.repo import commit

from .intake import QUIET, dvc_stage
from .server import DEFAULT_PORT, local_server
from .workspace import Workspace


@task(**QUIET)
def judge(root: str) -> dict:
    workspace = Workspace(Path(root))
    s = workspace.settings()
    method, limits = s.gate.method, s.audit
    gate = contracts.GateReport.read(workspace.root / contracts.GATE_REPORT)
    evaluation = json.loads((workspace.root / "metrics" / "evaluate" / f"{method}.json").read_text())
    summary = contracts.SplitSummary.read(workspace.root / contracts.SPLIT_SUMMARY)
    privacy = contracts.PrivacyReport.read(workspace.root / contracts.PRIVACY_REPORT)
    test_ids = datasets.record_ids(workspace.root / "data/prepared/test.csv")
    if not test_ids:
        raise contracts.ContractError("data/prepared/test.csv has no records; run `dvc repro` first.")
    n_judged = summary.n_forgotten + len(test_ids)  # the inputs evaluate judges: test and forgotten records
    poor = limits.problems(evaluation["gain"], evaluation["indistinguishability"],
                           evaluation["pred_kl_unlearned_retrained"] * n_judged)
    verdict = {"method": method, "gate": gate.decision, "audit": "poor" if poor else "good", "problems": poor,
               "gate_missed_it": gate.decision == "pass" and bool(poor),
               "requests": summary.request_ids,
               "privacy": privacy.model_dump(),  # the per-record membership test: served vs a fresh retrain
               **{k: evaluation[k] for k in ("gain", "indistinguishability", "pred_kl_unlearned_retrained",
                                             "pred_kl_original_retrained", "pred_kl_retrain_floor")}}
    atomic.write_json(workspace.root / "metrics" / "audit.json", verdict)
    return verdict


@flow(name="audit_unlearning")
def audit_unlearning(repo: str = ".") -> dict:
    workspace, logger = Workspace(Path(repo).resolve()), get_run_logger()
    gate = workspace.settings().gate
    root, method = str(workspace.root), gate.method
    with workspace.lock():
        for stage in ["retrain", f"retrain_posterior@{gate.posterior}", f"evaluate@{method}", "privacy"]:
            dvc_stage(root, stage)
        verdict = judge(root)
        if workspace.settings().ledger.commit:  # the reference retrains and the verdict, like every event
            commit(workspace.root, ["dvc.lock", "metrics", "plots"], f"audit: {method} {verdict['audit']} "
                   f"(gate {verdict['gate']}, requests {', '.join(verdict['requests']) or 'none'})")
    headline = ("# ⚠ GATE PASSED BUT THE AUDIT FOUND A POOR UNLEARNING ⚠" if verdict["gate_missed_it"]
                else f"# Audit: {verdict['audit']} (gate: {verdict['gate']})")
    create_markdown_artifact("\n".join([
        headline, "", f"Requests covered: {', '.join(verdict['requests']) or 'none'}", "",
        "| metric | value |", "|---|---|",
        *[f"| {k} | {verdict[k]:.4g} |" for k in ("gain", "indistinguishability", "pred_kl_unlearned_retrained",
                                                  "pred_kl_original_retrained", "pred_kl_retrain_floor")],
        "", privacy_line(contracts.PrivacyReport(**verdict["privacy"])), "", "; ".join(verdict["problems"])]),
        key="unlearning-audit")
    (logger.error if verdict["gate_missed_it"] else logger.info)("audit %s; gate %s; %s", verdict["audit"],
                                                                 verdict["gate"], verdict["problems"])
    return verdict


def privacy_line(report: contracts.PrivacyReport) -> str:
    if report.told_apart_served is None:
        return "Per-record membership test: nothing is forgotten."
    return (f"Per-record membership test ({report.shadow_retrains} shadow retrains, α = {report.alpha:g}): "
            f"{report.told_apart_served:.1%} of the {report.n_forgotten} forgotten records are told apart under the "
            f"served posterior, {report.told_apart_retrain:.1%} under a fresh retrain.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC workspace (default: the current folder)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the local Prefect server")
    args = parser.parse_args()
    with local_server(args.port):
        print(json.dumps(audit_unlearning(repo=args.repo), indent=2))


if __name__ == "__main__":
    main()
