"""Prefect flow `audit_unlearning`: the slow path, run on a schedule (e.g. nightly).

Runs the reference retrains and the full evaluation of the production method
(`dvc repro evaluate@METHOD`), then checks the gate's decision against it. A
gate that passed while the audit finds the unlearned posterior worse than
doing nothing (gain ≥ `audit.max_gain`) or far outside the retrain noise
(indistinguishability > `audit.max_indistinguishability`) by a difference a
likelihood-ratio test of size `audit.detection_size` and power
`audit.detection_power` detects is reported loudly. A deletion where neither the
original nor the served posterior differs detectably from the retrain is
reported as immaterial.
The per-record membership test (`dvc repro privacy`) reports the share of
forgotten records still told apart under the served posterior and under a fresh
retrain; when the served posterior is the unlearned one and tells more apart
than a retrain would at level `audit.detection_size` (a binomial test), the
verdict is poor whatever the predictive says. The verdict is written to
metrics/audit.json (stages/verdict.py), naming the posterior it judged. When the gate passed a posterior the audit finds
poor, the gate honours the verdict: the flow reruns `gate` and `serve`, which
serves a refit from scratch in its place, and the headline and the membership
test of the newly served posterior, and records the change in the ledger (a
`revised` entry). It first brings the production chain up to date and records
what a killed run left, so it judges what is served.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from bayesunlearn import exits
from bayesunlearn.io import contracts, datasets, detection
from bayesunlearn.io.settings import Settings

from lineage import events, inflight
from lineage.repo import check_git_lock, commit

from stages.verdict import VERDICT, AuditVerdict, sha256_of

from . import command
from .intake import QUIET, dvc_stage, record_leftovers
from .server import DEFAULT_PORT, local_server
from .workspace import Workspace

command.quiet_user_errors()  # here too: `make serve` runs the flows in processes of their own


@task(**QUIET)
def judge(root: str) -> AuditVerdict:
    workspace = Workspace(Path(root))
    s = workspace.settings()
    method, limits = s.gate.method, s.audit
    gate = contracts.GateReport.read(workspace.root / contracts.GATE_REPORT)
    evaluation = json.loads((workspace.root / "metrics" / "evaluate" / f"{method}.json").read_text())
    summary = contracts.SplitSummary.read(workspace.root / contracts.SPLIT_SUMMARY)
    test_ids = datasets.record_ids(workspace.root / "data/prepared/test.csv")
    if not test_ids:
        raise contracts.ContractError("data/prepared/test.csv has no records; run `dvc repro` first.")
    n_judged = summary.n_forgotten + len(test_ids)  # the inputs evaluate judges: test and forgotten records
    evidence = {"evidence_nats": evaluation["pred_kl_unlearned_retrained"] * n_judged,
                "original_evidence_nats": evaluation["pred_kl_original_retrained"] * n_judged}
    audit, poor = limits.verdict(evaluation["gain"], evaluation["indistinguishability"], *evidence.values(),
                                 membership=membership(workspace.root, s))
    verdict = AuditVerdict(
        method=method, unlearned_sha256=sha256_of(workspace.root / "models" / "unlearned" / f"{method}.npz"),
        gate=gate.decision, audit=audit, problems=poor, gate_missed_it=gate.decision == "pass" and audit == "poor",
        requests=summary.request_ids, **{k: float(evaluation[k]) for k in METRICS},
        **{k: float(v) for k, v in evidence.items()}, detectable_nats=limits.detectable_nats)
    verdict.write(workspace.root / VERDICT)
    return verdict


def membership(root: Path, s: Settings) -> str | None:
    """The per-record membership test's objection to the unlearned posterior, when it is the one served (the
    privacy stage tests what is served; a refit served in its place is not the posterior judged)."""
    provenance = contracts.Provenance.read(root / contracts.PROVENANCE)
    if provenance.path != "fast" or provenance.method != s.gate.method:
        return None
    report = contracts.PrivacyReport.read(root / contracts.PRIVACY_REPORT)
    return detection.membership_problem(report.n_forgotten, report.told_apart_served, report.told_apart_retrain,
                                        s.audit.privacy_alpha, s.audit.detection_size)


METRICS = ("gain", "indistinguishability", "pred_kl_unlearned_retrained", "pred_kl_original_retrained",
           "pred_kl_retrain_floor")


@flow(name="audit_unlearning")
def audit_unlearning(repo: str = ".") -> dict:
    workspace, logger = Workspace(Path(repo).resolve()), get_run_logger()
    params = workspace.settings()
    gate = params.gate
    root, method = str(workspace.root), gate.method
    with workspace.lock(), inflight.claim(workspace.root, "the audit", params.ledger.commit):
        check_git_lock(workspace.root)
        # judge what is served: a run that died mid-way is finished and recorded first, as the intake would
        for stage in [contracts.CHECK_STAGE, *contracts.production_stages(method, gate.posterior)]:
            dvc_stage(root, stage)
        record_leftovers(root)
        for stage in ["retrain", f"retrain_posterior@{gate.posterior}", f"evaluate@{method}", "privacy"]:
            dvc_stage(root, stage)
        privacy = contracts.PrivacyReport.read(workspace.root / contracts.PRIVACY_REPORT)  # of the served posterior
        verdict = judge(root)
        # the gate reads the verdict: a poor one it had passed turns to fallback, and serve refits from scratch
        for stage in ["gate", "serve", "headline", "privacy"]:
            dvc_stage(root, stage)
        record(root, verdict, workspace.settings().ledger.commit)
    headline = ("# ⚠ GATE PASSED BUT THE AUDIT FOUND A POOR UNLEARNING ⚠" if verdict.gate_missed_it
                else f"# Audit: {verdict.audit} (gate: {verdict.gate})")
    create_markdown_artifact("\n".join([
        headline, "", f"Requests covered: {', '.join(verdict.requests) or 'none'}", "",
        "| metric | value |", "|---|---|", *[f"| {k} | {getattr(verdict, k):.4g} |" for k in METRICS],
        "", evidence_line(verdict), "", privacy_line(privacy), "", "; ".join(verdict.problems),
        *(["", "The gate now honours the verdict: a refit from scratch is served in place of this posterior."]
          if verdict.gate_missed_it else [])]), key="unlearning-audit")
    (logger.error if verdict.gate_missed_it else logger.info)("audit %s; gate %s; %s", verdict.audit,
                                                              verdict.gate, verdict.problems)
    return {**verdict.model_dump(), "privacy": privacy.model_dump()}


@task(**QUIET)
def record(root: str, verdict: AuditVerdict, with_commit: bool) -> None:
    """Commit the retrains, metrics and verdict; a served posterior the audit replaced gets its ledger entry
    (`revised`) in the same way an intake run's would, so the last entry describes what is served."""
    if with_commit:
        served = "; the retrain is served in its place" if verdict.gate_missed_it else ""
        commit(Path(root), ["dvc.lock", "metrics", "plots"], f"audit: {verdict.method} {verdict.audit} "
                    f"(gate {verdict.gate}, requests {', '.join(verdict.requests) or 'none'}){served}")
    events.record_pending(Path(root), commit=with_commit)


def evidence_line(verdict: AuditVerdict) -> str:
    """The audit's test in words: what an auditor could detect, and whether doing nothing was detectable."""
    found = (f"Detectable difference: n × predictive KL to the retrain of {verdict.evidence_nats:.3g} nats "
             f"(the original's: {verdict.original_evidence_nats:.3g}) against {verdict.detectable_nats:.3g} nats "
             "needed by the audit's likelihood-ratio test.")
    if verdict.audit == "immaterial":
        found += " Doing nothing is already undetectable: the deletion is immaterial, neither helped nor harmed."
    return found


def privacy_line(report: contracts.PrivacyReport) -> str:
    if report.told_apart_served is None:
        return "Per-record membership test: nothing is forgotten."
    return (f"Per-record membership test ({report.shadow_retrains} shadow retrains, α = {report.alpha:g}): "
            f"{report.told_apart_served:.1%} of the {report.n_forgotten} forgotten records are told apart under the "
            f"served posterior, {report.told_apart_retrain:.1%} under a fresh retrain.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.audit", description=__doc__, epilog=exits.text(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC workspace (default: the current folder)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the local Prefect server")
    args = parser.parse_args(argv)

    def body() -> None:
        command.preflight(args.repo)
        with local_server(args.port):
            print(json.dumps(audit_unlearning(repo=args.repo), indent=2))

    return command.run(parser.prog, body)


if __name__ == "__main__":
    raise SystemExit(main())
