"""The DVC `split` stage, run as `python -m stages.split` in a tiny throw-away workspace.

One good run is shared by every test (module-scoped fixture); each bad-request
case copies that workspace, drops one bad file on top and runs the stage once
more, so the whole module costs a handful of ~1 s subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from bayesunlearn.io import store

REPO = Path(__file__).resolve().parents[1]
SPLIT_FILES = {"retained.csv", "forgotten.csv", "summary.json"}
TRAIN_IDS = [f"rec-{i:06d}" for i in range(10)]
TEST_IDS = [f"rec-{i:06d}" for i in range(10, 13)]

# Two valid requests that overlap in rec-000005.
GOOD_REQUESTS = {
    "req-0001.json": {"request_id": "req-0001", "record_ids": ["rec-000005", "rec-000002"],
                      "reason": "GDPR Art. 17 erasure", "received_at": "2026-11-20T09:30:00Z"},
    "req-0002.json": {"request_id": "req-0002", "record_ids": ["rec-000007", "rec-000005", "rec-000007"],
                      "reason": "consent withdrawn", "received_at": "2026-11-21T14:00:00+01:00"},
}
GOOD_FORGOTTEN = ["rec-000002", "rec-000005", "rec-000007"]


def request(request_id: str = "req-0003", **overrides) -> dict:
    return {"request_id": request_id, "record_ids": ["rec-000001"], "reason": "erasure",
            "received_at": "2026-11-22T08:00:00Z", **overrides}


def without(obj: dict, field: str) -> dict:
    return {k: v for k, v in obj.items() if k != field}


# name of the case -> text of the bad file added as data/requests/req-0003.json
BAD_REQUESTS = {
    "malformed-json": '{"request_id": "req-0003", "record_ids": ["rec-000001"',
    "missing-field": json.dumps(without(request(), "received_at")),
    "unknown-id": json.dumps(request(record_ids=["rec-000001", "rec-999999"])),
    "test-set-id": json.dumps(request(record_ids=["rec-000011"])),
    "duplicate-request-id": json.dumps(request("req-0001")),
    "empty-request": json.dumps(request(record_ids=[])),
    "forgets-everything": json.dumps(request(record_ids=[r for r in TRAIN_IDS if r not in GOOD_FORGOTTEN])),
}
BAD_FILE = "req-0003.json"
# what the one-line error must say for each case, so that no case passes by failing for another reason
BAD_REASONS = {
    "malformed-json": "malformed JSON",
    "missing-field": "missing field 'received_at'",
    "unknown-id": "unknown record ids ['rec-999999']",
    "test-set-id": "['rec-000011'] belong to the held-out test split",
    "duplicate-request-id": "request id 'req-0001' is already used by data/requests/req-0001.json",
    "empty-request": "empty request",
    "forgets-everything": "would forget all 10 training records",
}


def make_workspace(root: Path) -> Path:
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    ids = TRAIN_IDS + TEST_IDS
    frame = pd.DataFrame({"record_id": ids,
                          "x": [0.1 * i - 0.37 for i in range(len(ids))],
                          "y": [1.0 / (i + 3) for i in range(len(ids))]})
    store.save_table(root / "data/prepared/train.csv", frame.iloc[:10].reset_index(drop=True))
    store.save_table(root / "data/prepared/test.csv", frame.iloc[10:].reset_index(drop=True))
    requests_dir = root / "data/requests"
    requests_dir.mkdir(parents=True)
    for name, obj in GOOD_REQUESTS.items():
        (requests_dir / name).write_text(json.dumps(obj, indent=2))
    (requests_dir / "README.md").write_text("Drop one JSON file per deletion request here.\n")
    return root


def run_split(workspace: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "stages.split"], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=120)


def snapshot(workspace: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((workspace / "data/split").iterdir())}


@dataclass
class Run:
    workspace: Path
    result: subprocess.CompletedProcess
    before: dict[str, bytes]  # data/split/ just before this run
    after: dict[str, bytes]   # data/split/ just after it


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Run:
    workspace = make_workspace(tmp_path_factory.mktemp("good"))
    result = run_split(workspace)
    assert result.returncode == 0, f"good run failed:\n{result.stdout}\n{result.stderr}"
    return Run(workspace, result, {}, snapshot(workspace))


def run_on_top_of(good: Run, root: Path, name: str, text: str) -> Run:
    """Copy the good workspace, add one request file, run the stage again."""
    workspace = root / "ws"
    shutil.copytree(good.workspace, workspace)
    before = snapshot(workspace)
    assert before == good.after
    (workspace / "data/requests" / name).write_text(text)
    result = run_split(workspace)
    return Run(workspace, result, before, snapshot(workspace))


@pytest.fixture(scope="module", params=sorted(BAD_REQUESTS))
def bad_run(request, good_run, tmp_path_factory) -> Run:
    return run_on_top_of(good_run, tmp_path_factory.mktemp(request.param), BAD_FILE, BAD_REQUESTS[request.param])


# --------------------------------------------------------------------------- a good run


def test_good_run_writes_exactly_the_three_outputs(good_run):
    assert set(good_run.after) == SPLIT_FILES  # and no leftover temporary files
    assert good_run.result.stderr == ""
    assert "2 requests: forgetting 3 of 10 training records" in good_run.result.stdout


def test_good_run_splits_the_right_records(good_run):
    split = good_run.workspace / "data/split"
    train = store.load_table(good_run.workspace / "data/prepared/train.csv")
    retained = store.load_table(split / "retained.csv")
    forgotten = store.load_table(split / "forgotten.csv")

    assert list(forgotten["record_id"]) == GOOD_FORGOTTEN
    assert list(retained["record_id"]) == [r for r in TRAIN_IDS if r not in GOOD_FORGOTTEN]
    assert not set(GOOD_FORGOTTEN) & set(retained["record_id"])
    assert not any(r in (split / "retained.csv").read_text() for r in GOOD_FORGOTTEN)
    # rows are carried over unchanged, columns and values included
    pd.testing.assert_frame_equal(retained, train[~train["record_id"].isin(GOOD_FORGOTTEN)].reset_index(drop=True))
    pd.testing.assert_frame_equal(forgotten, train[train["record_id"].isin(GOOD_FORGOTTEN)].reset_index(drop=True))


def test_good_run_summary_counts_but_never_lists_records(good_run):
    text = (good_run.workspace / "data/split/summary.json").read_text()
    assert json.loads(text) == {
        "requests": [{"request_id": "req-0001", "n_records": 2},
                     {"request_id": "req-0002", "n_records": 2}],
        "n_retained": 7, "n_forgotten": 3,
    }
    assert "rec-" not in text


def test_a_further_valid_request_updates_the_split(good_run, tmp_path):
    run = run_on_top_of(good_run, tmp_path, BAD_FILE, json.dumps(request(record_ids=["rec-000009"])))
    assert run.result.returncode == 0, run.result.stderr
    assert set(run.after) == SPLIT_FILES
    split = run.workspace / "data/split"
    assert list(store.load_table(split / "forgotten.csv")["record_id"]) == GOOD_FORGOTTEN + ["rec-000009"]
    summary = json.loads((split / "summary.json").read_text())
    assert [r["request_id"] for r in summary["requests"]] == ["req-0001", "req-0002", "req-0003"]
    assert (summary["n_retained"], summary["n_forgotten"]) == (6, 4)


# --------------------------------------------------------------------------- bad requests


def test_bad_request_fails_cleanly_and_keeps_previous_outputs(request, bad_run):
    result = bad_run.result
    assert result.returncode == 2, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.stderr.startswith("error: ")
    assert BAD_REASONS[request.node.callspec.params["bad_run"]] in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # previous outputs byte-identical, no temporary files left behind
    assert bad_run.after == bad_run.before
    assert set(bad_run.after) == SPLIT_FILES


def test_bad_request_error_names_the_bad_file(bad_run):
    stderr = bad_run.result.stderr
    assert "error:" in stderr
    assert BAD_FILE in stderr, stderr


# --------------------------------------------------------------------------- forgetting only grows


def record_applied(workspace: Path, request_ids: list[str]) -> None:
    """A ledger in the workspace recording these requests (as the flow would have) as applied; a ledger
    lives in a git repository, whose root commit names it."""
    from conftest import sh
    from test_ledger import event

    from lineage.ledger import Ledger
    from lineage.repo import repository_id

    sh("git", "init", "-q", cwd=workspace)
    sh("git", "add", "-A", cwd=workspace)
    sh("git", "commit", "-qm", "workspace", cwd=workspace)
    ledger = Ledger(workspace, repository_id(workspace))
    key = ledger.key(create=True)
    ledger.append([event(r, GOOD_REQUESTS[f"{r}.json"]["record_ids"], key) for r in request_ids])


def params_with(workspace: Path, **split) -> None:
    from bayesunlearn.io import settings

    settings.update_params(workspace / "params.yaml", {f"split.{k}": v for k, v in split.items()})


def rerun(good: Run, root: Path, change) -> Run:
    workspace = root / "ws"
    shutil.copytree(good.workspace, workspace)
    before = snapshot(workspace)
    change(workspace)
    result = run_split(workspace)
    return Run(workspace, result, before, snapshot(workspace))


def assert_refused(run: Run, *patterns: str) -> None:
    assert run.result.returncode == 2, run.result.stdout + run.result.stderr
    assert run.result.stderr.startswith("error: ") and "Traceback" not in run.result.stderr
    for pattern in patterns:
        assert pattern in run.result.stderr, run.result.stderr
    assert run.after == run.before  # the previous split stays in place


def test_a_mistyped_requests_dir_never_means_nothing_to_forget(good_run, tmp_path):
    run = rerun(good_run, tmp_path, lambda ws: params_with(ws, requests_dir="data/reqeusts"))
    assert_refused(run, "data/reqeusts", "never means 'nothing to forget'")


def test_a_mistyped_requests_dir_is_caught_by_the_ledger_even_when_it_exists(good_run, tmp_path):
    def change(ws):
        record_applied(ws, ["req-0001", "req-0002"])
        (ws / "data/elsewhere").mkdir()
        params_with(ws, requests_dir="data/elsewhere")

    run = rerun(good_run, tmp_path, change)
    assert_refused(run, "would put forgotten records back", "['req-0001', 'req-0002'] are recorded as applied")


def test_a_deleted_request_file_is_refused(good_run, tmp_path):
    def change(ws):
        record_applied(ws, ["req-0001", "req-0002"])
        (ws / "data/requests/req-0001.json").unlink()

    assert_refused(rerun(good_run, tmp_path, change), "['req-0001'] are recorded as applied")


def test_an_emptied_folder_is_refused(good_run, tmp_path):
    def change(ws):
        record_applied(ws, ["req-0001", "req-0002"])
        for path in (ws / "data/requests").glob("*.json"):
            path.unlink()

    assert_refused(rerun(good_run, tmp_path, change), "['req-0001', 'req-0002'] are recorded as applied")


def test_a_request_edited_to_forget_less_is_refused(good_run, tmp_path):
    def change(ws):
        record_applied(ws, ["req-0001"])
        path = ws / "data/requests/req-0001.json"
        path.write_text(json.dumps({**GOOD_REQUESTS["req-0001.json"], "record_ids": ["rec-000005"]}))

    assert_refused(rerun(good_run, tmp_path, change), "req-0001.json no longer names 1 of the records it forgot")


def test_without_the_key_the_ids_are_still_checked(good_run, tmp_path, monkeypatch):
    def change(ws):
        record_applied(ws, ["req-0001"])
        (ws / "data/requests/req-0001.json").unlink()

    workspace = tmp_path / "ws"
    shutil.copytree(good_run.workspace, workspace)
    change(workspace)
    monkeypatch.setenv("UNLEARN_AUDIT_HOME", str(tmp_path / "another-machine"))
    result = run_split(workspace)
    assert result.returncode == 2 and "['req-0001'] are recorded as applied" in result.stderr
    assert "the audit key is not available here" in result.stderr


@pytest.mark.parametrize("damage", ["emptied", "deleted", "a link to /dev/zero", "a FIFO", "another repository"])
def test_a_ledger_made_to_say_nothing_does_not_let_records_back(good_run, tmp_path, damage):
    """Emptying, deleting or replacing the ledger (or claiming it belongs elsewhere) must not open the guard."""
    def change(ws):
        record_applied(ws, ["req-0001"])
        (ws / "data/requests/req-0001.json").unlink()
        ledger = ws / "audit/ledger.jsonl"
        if damage == "emptied":
            ledger.write_text("")
        elif damage == "deleted":
            ledger.unlink()
        elif damage == "a link to /dev/zero":
            ledger.unlink()
            ledger.symlink_to("/dev/zero")
        elif damage == "a FIFO":
            ledger.unlink()
            os.mkfifo(ledger)
        else:
            lines = [json.loads(line) for line in ledger.read_text().splitlines()]
            ledger.write_text("".join(json.dumps({**e, "repository": "f" * 40}) + "\n" for e in lines))

    run = rerun(good_run, tmp_path, change)
    assert_refused(run, {"emptied": "missing or empty", "deleted": "missing or empty",
                         "another repository": "was written in repository"}.get(damage, "cannot be read"))


def test_a_purged_request_may_go_once_its_records_are_gone(good_run, tmp_path):
    """What `deletions purge` does: records deleted from the data, then the request file."""
    def change(ws):
        record_applied(ws, ["req-0001"])
        (ws / "data/requests/req-0001.json").unlink()
        train = store.load_table(ws / "data/prepared/train.csv")
        store.save_table(ws / "data/prepared/train.csv", train[~train["record_id"].isin(["rec-000002"])])

    run = rerun(good_run, tmp_path, change)
    assert run.result.returncode == 0, run.result.stderr


def test_an_unknown_key_in_params_stops_the_stage_before_any_work(good_run, tmp_path):
    def change(ws):
        text = (ws / "params.yaml").read_text().replace("  requests_dir: data/requests",
                                                          "  requests_dri: data/requests")
        (ws / "params.yaml").write_text(text)

    assert_refused(rerun(good_run, tmp_path, change), "split.requests_dri: unknown key (did you mean 'requests_dir'?)")
