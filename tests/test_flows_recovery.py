"""The Prefect flows recovering from failures and falling back, each on a tiny workspace of its own:
an audit killed before it recorded, a stage killed mid-run, a deletion the gate must refuse."""

from __future__ import annotations

import json

import pytest
from conftest import sh, tiny_repo, train_ids, write_request

pytestmark = pytest.mark.slow


def test_an_audit_killed_before_it_recorded_is_completed_by_the_next_intake(prefect, tmp_path_factory,
                                                                            monkeypatch):
    import yaml

    import flows.audit
    from flows.intake import process_deletion_requests
    from lineage import cli, events, inflight

    root = tiny_repo(tmp_path_factory.mktemp("killed-audit"))
    process_deletion_requests(repo=str(root))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["audit"]["max_gain"] = 1e-12  # nothing can meet this: the audit refuses the served posterior
    params["audit"]["detection_power"] = params["audit"]["detection_size"]  # a test that detects any difference
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "commit", "-qam", "a stricter audit threshold", cwd=root)

    def killed(*args, **kwargs):
        raise RuntimeError("killed after the refit was served, before the commit and the ledger")

    monkeypatch.setattr(flows.audit, "record", killed)
    with pytest.raises(RuntimeError, match="killed after the refit"):
        flows.audit.audit_unlearning(repo=str(root))
    monkeypatch.undo()
    assert json.loads((root / "models/served/provenance.json").read_text())["path"] == "fallback"
    assert cli.main(["--repo", str(root), "audit", "verify"]) == cli.EXIT_FAILED  # served, not yet recorded
    result = process_deletion_requests(repo=str(root))  # no new request: it records the revision
    entries = events.ledger(root).entries()
    assert result["requests"] == [] and result["served"] == "fallback" and entries[-1].event == "revised"
    assert sh("git", "status", "--porcelain", "metrics", "dvc.lock", "audit", cwd=root).stdout == ""
    assert cli.main(["--repo", str(root), "audit", "verify"]) == 0
    # an intake run that died after `split`: the audit finishes and records it before judging what is served
    from lineage.entries import Applied

    write_request(root, "req-0009", train_ids(root)[20:22])
    sh("dvc", "repro", "--single-item", "split", cwd=root)
    (root / inflight.MARKER).write_text("the intake\n")  # what the killed run left
    verdict = flows.audit.audit_unlearning(repo=str(root))
    assert "req-0009" in verdict["requests"] and verdict["gate_missed_it"]
    entries = events.ledger(root).entries()
    assert isinstance(entries[-2], Applied) and entries[-2].request.request_id == "req-0009"
    assert entries[-2].served_path == "fast" and entries[-1].event == "revised"
    assert entries[-1].artifacts_before == entries[-2].artifacts_after
    assert cli.main(["--repo", str(root), "audit", "verify"]) == 0


def test_a_cluster_deletion_fails_a_gate_on_the_moved_mean_and_falls_back(prefect, tmp_path_factory):
    """The network evaluated at the moved mean is far off when a whole cluster goes: a gate that judges it
    (gate.max_residual_ratio set) falls back to a refit from scratch."""
    from flows.intake import process_deletion_requests

    root = tiny_repo(tmp_path_factory.mktemp("cluster"), {("gate", "max_residual_ratio"): 5.0})
    ids = train_ids(root)
    xs = [float(line.split(",")[1]) for line in (root / "data/prepared/train.csv").read_text().splitlines()[1:]]
    right = [i for i, x in zip(ids, xs, strict=True) if x > 0]
    write_request(root, "req-0100", right, folder="inbox")
    result = process_deletion_requests(repo=str(root))
    assert result["gate"] == "fallback" and result["served"] == "fallback"
    provenance = json.loads((root / "models/served/provenance.json").read_text())
    assert provenance["path"] == "fallback" and any("residual ratio" in r for r in provenance["gate_reasons"])


def test_a_stage_killed_mid_run_leaves_things_consistent_and_a_rerun_matches(prefect, tmp_path_factory,
                                                                            monkeypatch):
    from flows import workspace as ws
    from flows.intake import process_deletion_requests

    root = tiny_repo(tmp_path_factory.mktemp("killed"))
    ids = train_ids(root)
    process_deletion_requests(repo=str(root))  # serve the shipped request first
    served_before = (root / "models/served/posterior.npz").read_bytes()

    real = ws.Workspace.repro

    def killed_at_gate(self, stage):
        """Run `dvc repro gate` for real and SIGKILL the stage's Python process mid-run."""
        if stage != "gate":
            return real(self, stage)
        import contextlib
        import subprocess
        import time

        import psutil

        from lineage.repo import tool_env

        dvc = subprocess.Popen(["dvc", "repro", "--single-item", "gate"], cwd=self.root, env=tool_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            victims = [p for p in psutil.Process(dvc.pid).children(recursive=True)
                       if "stages.gate" in " ".join(p.cmdline())]
            if victims:  # at once: the NumPy-only gate stage finishes in about half a second
                for victim in victims:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        victim.kill()
                break
            time.sleep(0.01)
        code = dvc.wait(timeout=120)
        assert code != 0, "the gate stage finished before it could be killed"
        raise ws.StageFailed(f"dvc repro gate failed ({code}): stage killed")

    monkeypatch.setattr(ws.Workspace, "repro", killed_at_gate)
    with pytest.raises(ws.StageFailed):
        write_request(root, "req-0005", ids[30:33], folder="inbox")
        process_deletion_requests(repo=str(root))
    assert (root / "inbox/req-0005.json").exists() and not (root / "data/requests/req-0005.json").exists()
    assert (root / "models/served/posterior.npz").read_bytes() == served_before
    ledger = root / "audit" / "ledger.jsonl"
    assert not ledger.exists() or "req-0005" not in ledger.read_text()  # no entry for artifacts that were never made
    monkeypatch.setattr(ws.Workspace, "repro", real)
    rerun = process_deletion_requests(repo=str(root))
    assert rerun["requests"] == ["req-0005"]
    assert json.loads(ledger.read_text().splitlines()[-1])["request"]["request_id"] == "req-0005"

    # an uninterrupted run on the same data and requests gives the same served posterior, bit for bit
    clean = tiny_repo(tmp_path_factory.mktemp("uninterrupted"))
    write_request(clean, "req-0005", ids[30:33], folder="inbox")
    process_deletion_requests(repo=str(clean))
    assert (clean / "models/served/posterior.npz").read_bytes() == (root / "models/served/posterior.npz").read_bytes()
    assert sh("git", "status", "--short", cwd=root).returncode == 0
