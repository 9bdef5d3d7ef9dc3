"""The Prefect flows end to end, on a tiny copy of the repository, with one test Prefect server."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from conftest import request_payload, sh, tiny_repo, train_ids, write_request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(prefect, tmp_path_factory):
    """A workspace where one request went through the flow: the fast path."""
    from flows.intake import process_deletion_requests

    root = tiny_repo(tmp_path_factory.mktemp("flow"))
    ids = train_ids(root)
    request = request_payload("req-0002", ids[10:13])
    submit(root, "req-0002", ids[10:13])
    result = process_deletion_requests(repo=str(root))
    return root, result, request


def submit(root: Path, request_id: str, ids: list[str]) -> Path:
    """A request file dropped in the inbox: the only way requests enter the flow."""
    return write_request(root, request_id, ids, folder="inbox")


def forgotten_values(root: Path, ids: list[str]) -> list[str]:
    """The x and y values of the given records as written in the prepared data (the leak markers)."""
    rows = [line.split(",") for line in (root / "data/prepared/train.csv").read_text().splitlines()[1:]]
    return [value for row in rows if row[0] in ids for value in row[1:]]


def test_an_accepted_request_is_applied_and_served(served):
    root, result, request = served
    assert result["requests"] == ["req-0002"] and result["gate"] == "pass" and result["served"] == "fast"
    assert (root / "data/requests/req-0002.json").exists() and not list((root / "inbox").glob("*.json"))
    provenance = json.loads((root / "models/served/provenance.json").read_text())
    assert provenance["path"] == "fast" and provenance["method"] == "ggn_refined"
    assert result["hashes"]["models/served"]
    summary = json.loads((root / "data/split/summary.json").read_text())
    assert summary["n_forgotten"] == 5 + 3
    assert sh("git", "status", "--porcelain", cwd=root).stdout == ""  # the flow committed everything it changed


def test_artifacts_name_requests_not_records(served):
    import asyncio

    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return await client.read_artifacts()

    root, _, request = served
    artifacts = asyncio.run(read())
    keys = {a.key for a in artifacts}
    assert {"deletion-run", "gate-metrics"} <= keys
    markdown = next(a for a in artifacts if a.key == "deletion-run").data
    assert "req-0002" in markdown
    for value in forgotten_values(root, request["record_ids"]):
        assert value not in markdown


def test_nothing_forgotten_leaks_into_prefect(served, prefect):
    import asyncio

    from prefect.client.orchestration import get_client

    async def runs():
        async with get_client() as client:
            return await client.read_flow_runs()

    root, _, request = served
    markers = forgotten_values(root, request["record_ids"])
    assert markers
    stored = b"".join(p.read_bytes() for p in Path(prefect).rglob("*") if p.is_file())
    parameters = json.dumps([r.parameters for r in asyncio.run(runs())])
    for value in markers:
        assert value.encode() not in stored and value not in parameters
    # not even the record ids: requests never travel as parameters, and logs name request ids only
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    database = Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split("///", 1)[-1])
    everything = b"".join(p.read_bytes() for p in database.parent.rglob("*") if p.is_file())
    for record_id in request["record_ids"]:
        assert record_id.encode() not in everything and record_id not in parameters


def test_the_audit_reports_loudly_when_a_passed_gate_was_wrong_and_the_retrain_is_served(served):
    import asyncio

    import yaml
    from prefect.client.orchestration import get_client

    from flows.audit import audit_unlearning

    root, _, _ = served
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["audit"]["max_gain"] = 1e-12  # nothing can meet this: the audit must call the pass a miss
    params["audit"]["detection_power"] = params["audit"]["detection_size"]  # a test that detects any difference
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "commit", "-qam", "a stricter audit threshold", cwd=root)
    verdict = audit_unlearning(repo=str(root))
    assert verdict["gate"] == "pass" and verdict["audit"] == "poor" and verdict["gate_missed_it"]
    assert sh("git", "status", "--porcelain", cwd=root).stdout == ""  # retrains, metrics and verdict committed
    assert "req-0002" in verdict["requests"]
    written = json.loads((root / "metrics/audit.json").read_text())
    assert written["gate_missed_it"] is True and written["detectable_nats"] < 1e-12
    assert written["evidence_nats"] == pytest.approx(written["pred_kl_unlearned_retrained"] * (
        written["original_evidence_nats"] / written["pred_kl_original_retrained"]), rel=1e-12)
    # the gate honours the verdict on this very posterior: a refit from scratch is served in its place
    gate = json.loads((root / "metrics/gate.json").read_text())
    assert gate["decision"] == "fallback" and "the audit found this posterior poor" in gate["reasons"][-1]
    provenance = json.loads((root / "models/served/provenance.json").read_text())
    assert provenance["path"] == "fallback" and provenance["gate"] == "fallback"
    assert json.loads((root / "metrics/headline.json").read_text())["served"] == "fallback"
    assert "up to date" in sh("dvc", "status", "serve", "headline", "privacy", cwd=root).stdout
    assert "the retrain is served in its place" in sh("git", "log", "-3", "--format=%s", cwd=root).stdout

    async def read():
        async with get_client() as client:
            return await client.read_artifacts()

    audit = [a for a in asyncio.run(read()) if a.key == "unlearning-audit"]
    assert audit and "GATE PASSED BUT THE AUDIT FOUND A POOR UNLEARNING" in audit[-1].data
    privacy = verdict["privacy"]  # the per-record membership test ran on this event's forgotten records
    assert privacy["n_forgotten"] > 0 and privacy["shadow_retrains"] == 3
    assert 0 <= privacy["told_apart_served"] <= 1 and 0 <= privacy["told_apart_retrain"] <= 1
    assert "Per-record membership test (3 shadow retrains" in audit[-1].data
    assert "a refit from scratch is served in place of this posterior" in audit[-1].data
    # the ledger's last entry describes what is served: the refit, with the audit's reason
    from lineage import cli, events

    entries = events.ledger(root).entries()
    assert entries[-1].event == "revised" and entries[-1].served_path == "fallback"
    assert "the audit found this posterior poor" in entries[-1].gate.reasons[-1]
    assert entries[-1].artifacts_after["models/served"] != entries[-1].artifacts_before["models/served"]
    assert cli.main(["--repo", str(root), "audit", "verify"]) == 0
    again = audit_unlearning(repo=str(root))  # the next audit: the gate already refused it, nothing is missed
    assert again["gate"] == "fallback" and again["audit"] == "poor" and not again["gate_missed_it"]
    assert len(events.ledger(root).entries()) == len(entries)  # nothing changed, nothing recorded


def test_serve_builds_both_deployments_on_the_configured_schedules(served):
    import yaml

    from flows.serve import deployments

    root, _, _ = served
    schedule = yaml.safe_load((root / "params.yaml").read_text())["schedule"]
    intake, audit = deployments(str(root))
    assert intake.name == "intake" and audit.name == "nightly-audit"
    crons = [[s.schedule.cron for s in d.schedules] for d in (intake, audit)]
    assert crons == [[schedule["intake_cron"]], [schedule["audit_cron"]]]
    assert intake.parameters == {"repo": str(root)}


def test_two_concurrent_runs_both_finish_and_apply_each_request_once(served):
    from flows.intake import process_deletion_requests

    root, _, _ = served
    ids = train_ids(root)
    results, errors = [], []

    def run(request_id, chosen):
        try:
            submit(root, request_id, chosen)
            results.append(process_deletion_requests(repo=str(root)))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run, args=("req-0003", ids[20:22])),
               threading.Thread(target=run, args=("req-0004", ids[22:24]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    applied = sorted(r for result in results for r in result["requests"])
    assert applied == ["req-0003", "req-0004"]  # each exactly once, whichever run picked it up
    assert sorted(p.stem for p in (root / "data/requests").glob("*.json")) == [
        "req-0001", "req-0002", "req-0003", "req-0004"]
    # the same request again is recognised, not applied twice
    submit(root, "req-0003", ids[20:22])
    again = process_deletion_requests(repo=str(root))
    assert again["requests"] == []
    assert "already applied" in (root / "inbox/rejected/req-0003.json.reason.json").read_text()


def test_an_uncommitted_experiment_never_enters_the_deletion_record(served):
    """An edit of params.yaml that no event made (as `dvc exp run -S` leaves it): the intake refuses before
    anything moves, naming the file. Refreshed outputs of committed inputs (`dvc repro headline`, as the quick
    start runs it) are no such change: the next run commits them with its event."""
    from flows.intake import process_deletion_requests
    from lineage import inflight

    root, _, _ = served
    head = sh("git", "rev-parse", "HEAD", cwd=root).stdout
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("retention_days:", "retention_days: 400 #", 1))
    submit(root, "req-0010", train_ids(root)[40:42])
    try:
        with pytest.raises(inflight.ForeignChanges, match="params.yaml has uncommitted changes"):
            process_deletion_requests(repo=str(root))
        assert (root / "inbox/req-0010.json").exists() and not (root / "data/requests/req-0010.json").exists()
        assert sh("git", "rev-parse", "HEAD", cwd=root).stdout == head and not (root / inflight.MARKER).exists()
    finally:
        sh("git", "checkout", "--", "params.yaml", cwd=root)
    sh("dvc", "repro", "headline", cwd=root)
    assert "metrics/headline.json" in sh("git", "status", "--porcelain", cwd=root).stdout
    result = process_deletion_requests(repo=str(root))
    assert result["requests"] == ["req-0010"] and not (root / inflight.MARKER).exists()
    assert sh("git", "status", "--porcelain", "--untracked-files=no", cwd=root).stdout == ""


def test_audit_after_intake_replaces_a_poor_fast_path_posterior_in_the_same_run(served, monkeypatch, capsys):
    """`audit.after_intake`: off, an intake stops at the fast path; on, the same run audits it and serves the refit
    when the audit rejects it; a failing audit leaves the intake's event committed, in one line and exit code 6."""
    import yaml

    import flows.audit
    from bayesunlearn.errors import Exit
    from flows import command
    from flows.intake import process_deletion_requests
    from flows.workspace import StageFailed
    from lineage import events, inflight

    root, _, _ = served
    ids = train_ids(root)

    def configure(after_intake: bool) -> None:
        params = yaml.safe_load((root / "params.yaml").read_text())
        # nothing can meet max_gain 1e-12 with a test that detects any difference: the audit rejects every posterior
        params["audit"].update(max_gain=1e-12, detection_power=params["audit"]["detection_size"],
                               after_intake=after_intake)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        # an earlier test of this module may have left the same params committed: then there is nothing to add
        sh("git", "commit", "--allow-empty", "-qam", f"audit.after_intake {after_intake}", cwd=root)

    def served_path() -> str:
        return json.loads((root / "models/served/provenance.json").read_text())["path"]

    configure(False)
    verdict_before = (root / "metrics/audit.json").read_bytes()
    submit(root, "req-0020", ids[34:36])
    off = process_deletion_requests(repo=str(root))
    assert off["served"] == "fast" and off["requests"] == ["req-0020"] and "audit" not in off
    assert (root / "metrics/audit.json").read_bytes() == verdict_before and served_path() == "fast"
    assert events.ledger(root).entries()[-1].event == "applied"

    configure(True)
    submit(root, "req-0021", ids[36:38])
    on = process_deletion_requests(repo=str(root))
    assert on["served"] == "fast" and on["requests"] == ["req-0021"]  # what the intake itself served
    verdict = on["audit"]  # the audit of that posterior, in the same run
    assert verdict["gate"] == "pass" and verdict["audit"] == "poor" and verdict["gate_missed_it"]
    assert "req-0021" in verdict["requests"] and served_path() == "fallback"  # the refit replaced it
    applied, revised = events.ledger(root).entries()[-2:]
    assert (applied.event, applied.served_path, revised.event, revised.served_path) == (
        "applied", "fast", "revised", "fallback")
    assert sh("git", "status", "--porcelain", "--untracked-files=no", cwd=root).stdout == ""

    real = flows.audit.dvc_stage

    def failing(at: str, stage: str) -> None:
        if stage == "retrain":
            raise StageFailed("dvc repro retrain failed: error: the machine ran out of memory")
        real(at, stage)

    monkeypatch.setattr(flows.audit, "dvc_stage", failing)
    submit(root, "req-0022", ids[38:40])
    capsys.readouterr()
    code = command.run("python -m flows.intake", lambda: process_deletion_requests(repo=str(root)))
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("python -m flows.intake:")]
    assert code == Exit.STAGE and len(said) == 1 and "the audit right after it failed" in said[0]
    assert "dvc repro retrain failed" in said[0]
    last = events.ledger(root).entries()[-1]  # the intake's event stands: served, recorded, committed
    assert (last.event, last.request.request_id, last.served_path) == ("applied", "req-0022", "fast")
    assert served_path() == "fast"
    assert (root / "data/requests/req-0022.json").exists()
    # the intake's claim is released with its event; the failed audit's stays, for the next run to finish
    assert (root / inflight.MARKER).read_text() == "the audit\n"
    assert sh("git", "status", "--porcelain", "--untracked-files=no", cwd=root).stdout == ""
