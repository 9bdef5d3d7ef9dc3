"""Inbox triage of the intake flow: the same rules as the `split` stage, no DVC, no Prefect server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import request_payload

from bayesunlearn import store
from flows.workspace import Workspace, accept, reject, return_to_inbox, triage


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    import pandas as pd

    train = pd.DataFrame({"record_id": [f"rec-{i:06d}" for i in range(6)], "x": range(6), "y": range(6)})
    test = pd.DataFrame({"record_id": ["rec-000100"], "x": [0.5], "y": [0.5]})
    store.save_table(tmp_path / "data/prepared/train.csv", train)
    store.save_table(tmp_path / "data/prepared/test.csv", test)
    (tmp_path / "data/requests").mkdir(parents=True)
    (tmp_path / "data/requests/req-0001.json").write_text(json.dumps(request_payload("req-0001", ["rec-000001"])))
    (tmp_path / "inbox").mkdir()
    return Workspace(tmp_path)


def drop(ws: Workspace, name: str, content) -> Path:
    path = ws.inbox / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize("content, reason", [
    ("{not json", "malformed JSON"),
    ({"request_id": "r", "record_ids": ["rec-000002"], "reason": "x"}, "missing field 'received_at'"),
    (request_payload("req-0002", ["rec-999999"]), "unknown record ids"),
    (request_payload("req-0002", ["rec-000100"]), "held-out test split"),
    (request_payload("req-0002", []), "empty request"),
    (request_payload("req-0001", ["rec-000003"]), "already used"),
    (request_payload("req-0002", [f"rec-{i:06d}" for i in range(6)]), "would forget all"),
])
def test_every_bad_request_is_rejected_with_a_sidecar(workspace, content, reason):
    path = drop(workspace, "incoming.json", content)
    verdict, detail = triage(workspace, path)
    assert verdict == "reject" and reason in detail
    reject(workspace, path, detail)
    assert not path.exists() and (workspace.rejected / "incoming.json").exists()
    sidecar = json.loads((workspace.rejected / "incoming.json.reason.json").read_text())
    assert reason in sidecar["reason"] and sidecar["file"] == "incoming.json"


def test_an_identical_resubmission_is_recognised_as_already_applied(workspace):
    path = drop(workspace, "again.json", request_payload("req-0001", ["rec-000001"]))
    assert triage(workspace, path) == ("duplicate", "request req-0001 was already applied")


def test_accept_moves_atomically_and_a_failed_run_returns_it(workspace):
    path = drop(workspace, "new.json", request_payload("req-0002", ["rec-000002", "rec-000003"]))
    assert triage(workspace, path) == ("accept", "req-0002")
    applied = accept(workspace, path, "req-0002")
    assert applied == workspace.requests / "req-0002.json" and not path.exists()
    return_to_inbox(workspace, applied)
    assert (workspace.inbox / "req-0002.json").exists() and not applied.exists()


def test_lock_serialises_workspace_users(workspace):
    import threading
    import time

    order = []

    def user(name):
        with workspace.lock():
            order.append(f"{name}-in")
            time.sleep(0.2)
            order.append(f"{name}-out")

    threads = [threading.Thread(target=user, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order[0][0] == order[1][0] and order[2][0] == order[3][0]  # never interleaved
