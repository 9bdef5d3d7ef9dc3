"""Inbox triage of the intake flow: the same rules as the `split` stage, no DVC, no Prefect server."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import REPO, request_payload

from bayesunlearn.errors import UserError
from bayesunlearn.io import store
from lineage.inbox import Inbox, sidecar


@pytest.fixture
def inbox(tmp_path) -> Inbox:
    import pandas as pd

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    train = pd.DataFrame({"record_id": [f"rec-{i:06d}" for i in range(6)], "x": range(6), "y": range(6)})
    test = pd.DataFrame({"record_id": ["rec-000100"], "x": [0.5], "y": [0.5]})
    store.save_table(tmp_path / "data/prepared/train.csv", train)
    store.save_table(tmp_path / "data/prepared/test.csv", test)
    (tmp_path / "data/requests").mkdir(parents=True)
    (tmp_path / "data/requests/req-0001.json").write_text(json.dumps(request_payload("req-0001", ["rec-000001"])))
    (tmp_path / "inbox").mkdir()
    return Inbox(tmp_path)


def drop(inbox: Inbox, name: str, content) -> Path:
    path = inbox.folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def triage(inbox: Inbox, path: Path):
    return inbox.triage(path, inbox.in_force(), inbox.known_ids())


@pytest.mark.parametrize("content, reason", [
    ("{not json", "malformed JSON"),
    ({"request_id": "r", "record_ids": ["rec-000002"], "reason": "x"}, "missing field 'received_at'"),
    (request_payload("req-0002", ["rec-999999"]), "unknown record ids"),
    (request_payload("req-0002", ["rec-000100"]), "held-out test split"),
    (request_payload("req-0002", []), "empty request"),
    (request_payload("req-0001", ["rec-000003"]), "already used"),
    (request_payload("req-0002", [f"rec-{i:06d}" for i in range(6)]), "would forget all"),
])
def test_every_bad_request_is_rejected_with_a_sidecar(inbox, content, reason):
    path = drop(inbox, "incoming.json", content)
    verdict = triage(inbox, path)
    assert verdict.kind == "reject" and reason in verdict.reason
    inbox.reject(path, verdict)
    assert not path.exists() and (inbox.rejected / "incoming.json").exists()
    note = sidecar(inbox.rejected / "incoming.json")
    assert reason in note["reason"] and note["file"] == "incoming.json" and note["rule"] == verdict.rule


def test_an_identical_resubmission_is_recognised_as_already_applied(inbox):
    path = drop(inbox, "again.json", request_payload("req-0001", ["rec-000001"]))
    verdict = triage(inbox, path)
    assert (verdict.kind, verdict.request_id) == ("duplicate", "req-0001")
    assert "request req-0001 was already applied" in verdict.reason


def test_accept_moves_atomically_and_a_failed_run_returns_it(inbox):
    path = drop(inbox, "new.json", request_payload("req-0002", ["rec-000002", "rec-000003"]))
    verdict = triage(inbox, path)
    assert (verdict.kind, verdict.request_id) == ("accept", "req-0002")
    applied = inbox.accept(path, verdict)
    assert applied == inbox.requests / "req-0002.json" and not path.exists()
    inbox.return_to_inbox(applied)
    assert (inbox.folder / "req-0002.json").exists() and not applied.exists()


def test_a_request_id_is_never_a_path(inbox, tmp_path):
    """The attack of the issue: an id of ../../metrics/train must not overwrite a tracked file."""
    victim = tmp_path / "metrics" / "train.json"
    victim.parent.mkdir()
    victim.write_text("tracked")
    for name, request_id in (("a.json", "../../metrics/train"), ("b.json", str(victim.with_suffix(""))),
                             ("c.json", "x/y"), ("d.json", "x" * 300)):
        path = drop(inbox, name, request_payload(request_id, ["rec-000002"]))
        verdict = triage(inbox, path)
        assert verdict.kind == "reject" and verdict.rule == "bad-request-id", verdict
        inbox.reject(path, verdict)
    assert victim.read_text() == "tracked"
    assert sorted(p.name for p in inbox.requests.iterdir()) == ["req-0001.json"]
    assert not list(inbox.folder.glob("*.json"))


def test_rejected_files_never_overwrite_each_other(inbox):
    for round_ in range(3):
        path = drop(inbox, "same.json", f"{{not json {round_}")
        inbox.reject(path, triage(inbox, path))
    kept = sorted(p.name for p in inbox.rejected.iterdir() if not p.name.endswith(".reason.json"))
    assert kept == ["same-2.json", "same-3.json", "same.json"]
    assert {(inbox.rejected / name).read_text() for name in kept} == {"{not json 0", "{not json 1", "{not json 2"}


def test_links_folders_fifos_and_odd_names_leave_the_inbox(inbox, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(request_payload("req-0009", ["rec-000002"])))
    (inbox.folder / "link.json").symlink_to(outside)
    (inbox.folder / "folder.json").mkdir()
    os.mkfifo(inbox.folder / "fifo.json")
    odd = os.fsencode(inbox.folder) + b"/odd-\xff\n.json"  # not UTF-8, with a newline
    Path(os.fsdecode(odd)).write_text("{}")
    for path in inbox.pending():
        verdict = triage(inbox, path)
        assert verdict.kind == "reject"
        inbox.reject(path, verdict)
    assert not inbox.pending()
    assert outside.exists()  # the link itself moved, its target is untouched
    names = sorted(p.name for p in inbox.rejected.iterdir())
    assert all(name.isascii() and "\n" not in name for name in names), names


def test_a_name_taken_by_another_request_is_not_overwritten(inbox):
    other = inbox.requests / "req-0002.json"  # a file named req-0002 holding request req-0009
    other.write_text(json.dumps(request_payload("req-0009", ["rec-000004"])))
    path = drop(inbox, "x.json", request_payload("req-0002", ["rec-000002"]))
    verdict = triage(inbox, path)
    assert verdict.kind == "reject" and verdict.rule == "name-taken"
    assert json.loads(other.read_text())["request_id"] == "req-0009"


@pytest.mark.parametrize("linked", ["inbox/rejected", "data/requests"])
def test_a_linked_intake_folder_is_refused_and_nothing_is_written_outside(inbox, tmp_path, linked):
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    folder = inbox.root / linked
    if folder.exists():
        shutil.rmtree(folder)
    folder.symlink_to(outside, target_is_directory=True)
    path = drop(inbox, "a.json", "garbage" if linked == "inbox/rejected" else
                request_payload("req-0002", ["rec-000002"]))
    if linked == "data/requests":
        with pytest.raises(UserError, match="not a folder of the workspace"):
            inbox.in_force()  # the flow stops here; accept checks again for any other caller
    verdict = inbox.triage(path, [], inbox.known_ids())
    with pytest.raises(UserError, match="symbolic link"):
        inbox.reject(path, verdict) if verdict.kind == "reject" else inbox.accept(path, verdict)
    assert list(outside.iterdir()) == [] and path.exists()  # nothing moved, nothing lost


def test_a_folder_swapped_for_a_link_after_the_check_still_leads_nowhere_else(inbox, tmp_path, monkeypatch):
    """The race: inbox/rejected is replaced by a link between opening it and writing into it."""
    import lineage.inbox as module

    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    path = drop(inbox, "bad.json", "garbage")
    verdict = triage(inbox, path)
    real_free_name = module._free_name

    def swap_then_name(folder, name):
        (inbox.root / "inbox/rejected").rename(inbox.root / "inbox/rejected-moved")
        (inbox.root / "inbox/rejected").symlink_to(outside, target_is_directory=True)
        return real_free_name(folder, name)

    monkeypatch.setattr(module, "_free_name", swap_then_name)
    inbox.reject(path, verdict)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (inbox.root / "inbox/rejected-moved").iterdir()) == ["bad.json",
                                                                                      "bad.json.reason.json"]


def test_a_missing_requests_folder_is_never_created_by_the_intake(inbox):
    shutil.rmtree(inbox.requests)
    with pytest.raises(UserError, match="never means 'nothing to forget'"):
        inbox.check_folders()
    assert not inbox.requests.exists()


def test_submit_into_a_linked_inbox_is_refused(inbox, tmp_path, capsys):
    from lineage import cli

    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    shutil.rmtree(inbox.folder)
    inbox.folder.symlink_to(outside, target_is_directory=True)
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(request_payload("req-0007", ["rec-000002"])))
    assert cli.main(["--repo", str(inbox.root), "request", "submit", str(mine)]) == cli.EXIT_INPUT
    assert "symbolic link" in capsys.readouterr().err and list(outside.iterdir()) == []


def test_an_accepted_request_cannot_be_changed_through_a_hard_link(inbox, tmp_path):
    """The stored request holds the bytes that were validated, whatever happens to the submitter's file."""
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(request_payload("req-0007", ["rec-000002"])))
    path = inbox.folder / "req-0007.json"
    os.link(mine, path)
    verdict = triage(inbox, path)
    stored = inbox.accept(path, verdict)
    mine.write_text(json.dumps(request_payload("req-0007", ["rec-000002", "not-a-record"])))
    assert os.stat(stored).st_nlink == 1 and os.stat(stored).st_ino != os.stat(mine).st_ino
    assert json.loads(stored.read_text())["record_ids"] == ["rec-000002"]


def test_a_stale_request_in_force_does_not_reject_a_good_new_one(inbox):
    stale = inbox.requests / "req-old.json"
    stale.write_text(json.dumps(request_payload("req-old", ["rec-999999"])))  # names a record no longer there
    verdict = triage(inbox, drop(inbox, "req-0007.json", request_payload("req-0007", ["rec-000002"])))
    assert verdict.kind == "accept", verdict.reason


@pytest.mark.parametrize("record_id", ["NA", "null", "None", "N/A", "007"])
def test_ids_pandas_would_read_as_missing_or_numbers_stay_verbatim(tmp_path, record_id):
    """A record id of NA (or 007) is named by requests as written: data, triage and split agree on it."""
    import pandas as pd

    from bayesunlearn.io import datasets

    source = tmp_path / "raw.csv"
    pd.DataFrame({"id": [record_id, "rec-1", "rec-2"], "x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]}).to_csv(
        source, index=False)
    frame = datasets.from_csv(source, "y", "id")
    assert frame[datasets.ID].tolist() == [record_id, "rec-1", "rec-2"]
    store.save_table(tmp_path / "train.csv", frame)
    assert store.load_table(tmp_path / "train.csv")[datasets.ID].tolist() == [record_id, "rec-1", "rec-2"]
    assert datasets.record_ids(tmp_path / "train.csv") == [record_id, "rec-1", "rec-2"]


@pytest.mark.parametrize("record_id, rule", [("", "non-empty"), ("rec\u202e1", r"U\+202E"), ("a" * 300, "characters")])
def test_data_ids_no_request_could_name_are_refused_when_preparing(tmp_path, record_id, rule):
    from bayesunlearn.errors import DataError
    from bayesunlearn.io import datasets

    source = tmp_path / "raw.csv"
    source.write_text(f"id,x,y\n{record_id},1,1\nrec-1,2,2\n")
    with pytest.raises(DataError, match=rule):
        datasets.from_csv(source, "y", "id")


def test_lock_serialises_workspace_users(tmp_path):
    import threading
    import time

    from flows.workspace import Workspace

    workspace = Workspace(tmp_path)
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


def test_forgetting_records_removes_every_refused_entry_that_names_them_with_its_reason(inbox, tmp_path):
    """What a purge does to inbox/rejected/: the records' ids leave it, refused files naming others stay."""
    for name, ids in (("names.json", ["rec-000002", "rec-999999"]), ("other.json", ["rec-999998"]),
                      ("x.reason.json", ["rec-000002", "rec-999997"])):
        path = drop(inbox, name, request_payload("req-0002", ids))
        inbox.reject(path, triage(inbox, path))  # unknown ids: the reasons name rec-999999, -8 and -7
    outside = tmp_path / "outside.json"
    outside.write_text("rec-999999")
    (inbox.folder / "link.json").symlink_to(outside)
    (inbox.folder / "folder.json").mkdir()
    os.mkfifo(inbox.folder / "fifo.json")
    for path in inbox.pending():
        inbox.reject(path, triage(inbox, path))
    (inbox.rejected / "folder.json.reason.json").write_text('{"reason": "names rec-999999"}')
    assert "rec-999999" in sidecar(inbox.rejected / "names.json")["reason"]

    assert inbox.forget({"rec-000002"}) == ["names.json", "x.reason.json"]  # by content, an entry's own name
    assert inbox.forget({"rec-999999"}) == ["folder.json"]  # by its reason only: a link and a FIFO are not read
    left = sorted(p.name for p in inbox.rejected.iterdir())
    assert left == sorted(f"{n}{s}" for n in ("other.json", "link.json", "fifo.json") for s in ("", ".reason.json"))
    assert not any(b"rec-000002" in p.read_bytes() for p in inbox.rejected.iterdir() if p.is_file()
                   and not p.is_symlink() and not p.is_fifo())
    assert outside.exists() and inbox.forget({"rec-000002"}) == []
