"""Every applied request has exactly one ledger entry, whatever crashed; the ledger states only true facts.

The intake flow is killed with SIGKILL (in a subprocess) at four points: in the middle of moving a request
(written to the requests folder, still in the inbox), after it moved a request into the requests folder, after
the stages served it but before the ledger, and after the event's commit but before the ledger append (the
ledger's own write points are killed in test_crash_points). Each rerun completes the record, and `verify` passes. A stale git lock stops a
run before anything moves. Then `trace` is checked against the ground truth of which records each served
posterior was fitted with, for requests forgotten together and apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, sh, tiny_repo, train_ids, write_request

from bayesunlearn.io import store
from lineage import cli, events
from lineage.entries import Applied

pytestmark = pytest.mark.slow

KILLER = """
import os, signal, sys
from flows import workspace
from lineage import events, ledger

point = sys.argv[2]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "mid-move":  # the request is written to data/requests, its inbox file not yet removed
    from lineage import inbox
    real_write_new = inbox.atomic.write_new
    def write_then_die(name, data, folder):
        real_write_new(name, data, folder)
        die()
    inbox.atomic.write_new = write_then_die
elif point == "after-move":  # the request is in data/requests, no stage has run
    real = workspace.Workspace.repro
    workspace.Workspace.repro = lambda self, stage: die() if stage == "split" else real(self, stage)
elif point == "before-ledger":  # every stage ran and the new posterior is served
    from flows import intake
    intake.record_in_ledger = die
elif point == "after-commit":  # the event is committed, the ledger not yet appended
    ledger.Ledger.append = die
from flows.intake import process_deletion_requests
process_deletion_requests(repo=sys.argv[1])
"""


def killed_run(root: Path, point: str) -> None:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": PREFECT_API_URL.value(),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-c", KILLER, str(root), point], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == -9, result.stderr[-2000:]  # killed, not failed


def recorded(root: Path) -> list[str]:
    return [e.request.request_id for e in events.ledger(root).entries() if isinstance(e, Applied)]


@pytest.fixture(scope="module")
def workspace(prefect, tmp_path_factory):
    from flows.intake import process_deletion_requests

    root = tiny_repo(tmp_path_factory.mktemp("recovery"))
    process_deletion_requests(repo=str(root))  # the shipped request, recorded
    assert recorded(root) == ["req-0001"]
    return root


@pytest.mark.parametrize("point, request_id, offset", [("mid-move", "req-0004", 27),
                                                       ("after-move", "req-0005", 30),
                                                       ("before-ledger", "req-0006", 33),
                                                       ("after-commit", "req-0007", 36)])
def test_a_run_killed_anywhere_is_completed_by_the_next(workspace, point, request_id, offset, capsys):
    from flows.intake import process_deletion_requests

    root = workspace
    write_request(root, request_id, train_ids(root)[offset:offset + 2], folder="inbox")
    killed_run(root, point)
    assert (root / "data/requests" / f"{request_id}.json").exists() and request_id not in recorded(root)
    assert cli.main(["--repo", str(root), "audit", "verify"]) == cli.EXIT_FAILED  # the gap is seen
    assert f"request {request_id}" in capsys.readouterr().out
    result = process_deletion_requests(repo=str(root))
    assert recorded(root).count(request_id) == 1, recorded(root)
    assert result["ledger_entries"]  # the rerun wrote the entry the killed run could not
    assert not list((root / "inbox").glob("*.json"))  # a half-done move is finished, not left pending
    assert sh("git", "status", "--porcelain", "audit", "data/requests", cwd=root).stdout == ""
    assert cli.main(["--repo", str(root), "audit", "verify"]) == 0, capsys.readouterr().out


def test_a_stale_git_lock_stops_the_run_before_anything_moves(workspace):
    from flows.intake import process_deletion_requests
    from lineage.repo import GitLocked

    root = workspace
    served = (root / "models/served/posterior.npz").read_bytes()
    write_request(root, "req-0008", train_ids(root)[40:42], folder="inbox")
    lock = root / ".git" / "index.lock"
    lock.write_text("")
    old = time.time() - 600
    os.utime(lock, (old, old))
    with pytest.raises(GitLocked, match="index.lock exists.*remove it"):
        process_deletion_requests(repo=str(root))
    assert (root / "inbox/req-0008.json").exists() and not (root / "data/requests/req-0008.json").exists()
    assert (root / "models/served/posterior.npz").read_bytes() == served
    lock.unlink()
    process_deletion_requests(repo=str(root))
    assert recorded(root).count("req-0008") == 1


def test_verify_fails_when_the_ledger_and_its_head_are_deleted_while_requests_are_in_force(workspace, capsys):
    root = workspace
    led = events.ledger(root)
    saved = led.path.read_bytes(), led.head_path.read_bytes()
    led.path.unlink()
    led.head_path.unlink()
    try:
        assert cli.main(["--repo", str(root), "audit", "verify"]) == cli.EXIT_LEDGER
        assert "does not extend the ledger committed in" in capsys.readouterr().out  # git history remembers
    finally:
        led.path.write_bytes(saved[0])
        led.head_path.write_bytes(saved[1])


# --- trace against ground truth ------------------------------------------------------------------
def repro_and_record(root: Path, new: dict[str, list[str]], truth: dict[str, set[str]]) -> None:
    """Add requests, `dvc repro serve`, record them as one run; note which records the new served version
    was fitted with (the retained split: the ground truth)."""
    for request_id, ids in new.items():
        write_request(root, request_id, ids)
    start = events.snapshot(root)
    sh("dvc", "repro", "serve", cwd=root)
    events.record_pending(root, start=start)
    served = events.snapshot(root).artifacts["models/served"]
    truth[served] = set(store.load_table(root / "data/split/retained.csv")["record_id"])


def test_trace_agrees_with_the_ground_truth_for_records_forgotten_together_and_apart(prefect, tmp_path_factory,
                                                                                     capsys):
    root = tiny_repo(tmp_path_factory.mktemp("trace"))
    ids = train_ids(root)
    truth: dict[str, set[str]] = {}
    repro_and_record(root, {}, truth)                                              # run 0: req-0001 only
    repro_and_record(root, {"req-0002": ids[10:12], "req-0003": ids[12:14]}, truth)  # run 1: two together
    repro_and_record(root, {"req-0004": ids[14:16]}, truth)                        # run 2: one apart
    entries = events.ledger(root).entries()
    assert entries[1].run_id == entries[2].run_id != entries[3].run_id
    assert entries[1].applied_together == ["req-0002", "req-0003"]
    for record in [ids[10], ids[12], ids[14], ids[20]]:
        assert cli.main(["--repo", str(root), "audit", "trace", record]) == 0
        lines = capsys.readouterr().out.splitlines()
        rows = [line.split() for line in lines if line.startswith("  entry")]
        assert len(rows) == len(truth), lines  # every served version, once
        for row in rows:
            served, had = row[2], " ".join(row[3:]).startswith("had it")
            version = next(v for v in truth if v.startswith(served))
            assert had == (record in truth[version]), (record, lines)
    test_id = (root / "data/prepared/test.csv").read_text().splitlines()[1].split(",")[0]
    assert cli.main(["--repo", str(root), "audit", "trace", test_id]) == 0
    assert "held-out test split" in capsys.readouterr().out
    assert cli.main(["--repo", str(root), "audit", "trace", "rec-999999"]) == cli.EXIT_INPUT
