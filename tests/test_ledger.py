"""The ledger alone (no DVC, no TensorFlow): keyed chain, key, tampering, forgery, damage, atomic appends."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from conftest import REPO, sh

from lineage import cli
from lineage.ledger import Ledger, LedgerError, canonical, chain_problems
from lineage.repo import repository_id

IDS = ["rec-000003", "rec-000007"]


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    sh("git", "init", "-q", cwd=path)
    (path / "README").write_text(f"{path.name}\n")
    shutil.copy(REPO / "params.yaml", path / "params.yaml")
    sh("git", "add", "README", "params.yaml", cwd=path)
    sh("git", "commit", "-qm", "root", cwd=path)
    return path


def event(request_id: str, ids: list[str], key, run: str = "run-1") -> dict:
    """A complete applied-request event, as events.record_pending writes it."""
    return {"event": "applied", "run_id": run, "applied_together": [request_id], "applied_at": "2026-11-27T10:00:00Z",
            "recorded_at": "2026-11-27T10:00:01Z", "epoch": 0, "git_commit": "0" * 40, "dirty": [],
            "method": "ggn_newton", "posterior": "full_ggn", "served_path": "fast", "served": "abc.dir",
            "artifacts_before": None, "artifacts_after": {"models/served": "abc.dir"},
            "gate": {"decision": "pass", "reasons": [], "thresholds": {}, "metrics": {}},
            "request": {"request_id": request_id, "reason": "test", "received_at": "2026-11-27T09:00:00Z",
                        "n_records": len(ids), "record_hashes": key.hash_ids(ids)}}


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    root = git_repo(tmp_path / "repo")
    ledger = Ledger(root, repository_id(root))
    key = ledger.key(create=True)
    for number in range(4):
        ledger.append([event(f"req-{number:04d}", [f"rec-{number:06d}", *IDS[:number % 2]], key, f"run-{number}")])
    return ledger


def problems(ledger: Ledger) -> list[str]:
    return chain_problems(ledger.lines(), ledger.key(), ledger.repository, ledger.head())


def rewrite(ledger: Ledger, lines: list[str]) -> None:
    ledger.path.write_text("".join(line + "\n" for line in lines))


def test_an_intact_chain_passes_and_stores_no_record_id_in_clear(ledger):
    assert problems(ledger) == []
    text = ledger.path.read_text()
    assert "rec-0" not in text
    entries = ledger.entries()
    assert [e.seq for e in entries] == [0, 1, 2, 3]
    assert entries[1].prev_hash == entries[0].entry_hash
    assert all(e.entry_hash == ledger.key().seal(e.model_dump()) for e in entries)


def test_the_key_lives_outside_the_repository_with_owner_only_access(ledger):
    assert not ledger.key_path.is_relative_to(ledger.root)
    assert stat.S_IMODE(ledger.key_path.stat().st_mode) == 0o600
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o666 & ~umask  # the ledger: the umask's mode


def test_an_edited_line_is_caught(ledger):
    lines = ledger.lines()
    entry = json.loads(lines[1])
    entry["request"]["n_records"] += 1
    lines[1] = canonical(entry)
    rewrite(ledger, lines)
    assert any("line 2: its hash is not the HMAC of its content" in p for p in problems(ledger))


def test_a_forged_line_with_a_recomputed_plain_hash_and_head_is_caught(ledger):
    """The attack of the issue: append a line, hash it with SHA-256, update the head. Without the key it fails."""
    lines = ledger.lines()
    last = json.loads(lines[-1])
    forged = {**last, "seq": last["seq"] + 1, "prev_hash": last["entry_hash"]}
    forged["request"] = {**forged["request"], "request_id": "req-forged"}
    body = canonical({k: v for k, v in forged.items() if k != "entry_hash"})
    forged["entry_hash"] = hashlib.sha256(body.encode()).hexdigest()
    rewrite(ledger, [*lines, canonical(forged)])
    ledger.write_head(forged["seq"], forged["entry_hash"])
    found = problems(ledger)
    assert found and all("line 5" in p for p in found), found
    assert cli.main(["--repo", str(ledger.root), "audit", "verify"]) == cli.EXIT_LEDGER


def test_a_deleted_line_is_caught(ledger):
    lines = ledger.lines()
    rewrite(ledger, lines[:1] + lines[2:])
    found = problems(ledger)
    assert any("sequence number 2, expected 1" in p for p in found)
    assert any("does not link to the line before it" in p for p in found)


def test_a_cut_off_last_line_is_caught_by_the_head(ledger):
    rewrite(ledger, ledger.lines()[:-1])
    assert any("lines were cut off the end" in p for p in problems(ledger))


def test_a_ledger_longer_than_its_head_is_accepted(ledger):
    """Entries appended in another clone (pulled here), or a crash between the ledger and the head write."""
    entries = ledger.entries()
    ledger.write_head(entries[1].seq, entries[1].entry_hash)  # this copy last wrote entry 1
    assert problems(ledger) == [] and len(ledger.entries()) == 4
    ledger.append([event("req-0100", IDS, ledger.key())])
    assert ledger.head().seq == 4  # appending moves the head to the end again
    ledger.write_head(entries[1].seq, "0" * 64)  # but a head that names another entry is still refused
    assert any("another entry there" in p for p in problems(ledger))


def test_reordered_lines_are_caught(ledger):
    lines = ledger.lines()
    lines[1], lines[2] = lines[2], lines[1]
    rewrite(ledger, lines)
    assert any("sequence number 2, expected 1" in p for p in problems(ledger))


def test_an_inserted_line_is_caught_even_with_a_valid_hash(ledger):
    lines = ledger.lines()
    forged = json.loads(lines[1])
    forged["request"]["request_id"] = "req-forged"
    forged["entry_hash"] = ledger.key().seal(forged)  # even sealed with the key, the chain around it breaks
    rewrite(ledger, lines[:2] + [canonical(forged)] + lines[2:])
    found = problems(ledger)
    assert any("line 3" in p and "does not link" in p for p in found)


def test_appending_to_a_tampered_ledger_is_refused(ledger):
    rewrite(ledger, ledger.lines()[:-1])
    with pytest.raises(LedgerError, match="refusing to append"):
        ledger.append([event("req-0100", IDS, ledger.key())])


@pytest.mark.parametrize("damage, code, message", [
    ("half-cut line", cli.EXIT_LEDGER, "line 4: not JSON (damaged or cut off)"),
    ("non-hex key", cli.EXIT_LEDGER, "is not hexadecimal"),
    ("short key", cli.EXIT_LEDGER, "it needs at least 16"),
    ("non-JSON head", cli.EXIT_LEDGER, "ledger head"),
    ("binary ledger", cli.EXIT_LEDGER, "cannot be read"),
    ("valid JSON, not an entry", cli.EXIT_LEDGER, "line 2: not a ledger entry"),
])
def test_every_damaged_file_gives_a_message_and_an_exit_code(ledger, capsys, damage, code, message):
    lines = ledger.lines()
    if damage == "half-cut line":
        rewrite(ledger, lines[:3] + [lines[3][: len(lines[3]) // 2]])
    elif damage == "non-hex key":
        ledger.key_path.write_text("not-hex\n")
    elif damage == "short key":
        ledger.key_path.write_text("abcd\n")
    elif damage == "non-JSON head":
        ledger.head_path.write_text("{oops")
    elif damage == "binary ledger":
        ledger.path.write_bytes(b"\xff\xfe" + ledger.path.read_bytes())
    else:
        lines[1] = canonical({"seq": 1, "note": "hello"})
        rewrite(ledger, lines)
    assert cli.main(["--repo", str(ledger.root), "audit", "verify"]) == code
    captured = capsys.readouterr()
    assert message in captured.out + captured.err and "Traceback" not in captured.err


def forge_without_the_key(ledger) -> None:
    """Edit line 2's run and time, recompute a plain hash for it and re-link the rest, update the head."""
    lines, previous = ledger.lines(), None
    for number, line in enumerate(lines):
        entry = json.loads(line)
        if number == 1:
            entry.update(run_id="FORGED-RUN", applied_at="1999-01-01T00:00:00Z")
        if previous is not None:
            entry["prev_hash"] = previous
        body = canonical({k: v for k, v in entry.items() if k != "entry_hash"})
        entry["entry_hash"] = previous = hashlib.sha256(body.encode()).hexdigest()
        lines[number] = canonical(entry)
    rewrite(ledger, lines)
    ledger.write_head(len(lines) - 1, previous)


@pytest.mark.parametrize("command", [["audit", "list"], ["audit", "show", "req-0001"],
                                     ["audit", "trace", "rec-000001"], ["audit", "reproduce", "req-0001"],
                                     ["audit", "record"], ["purge", "--now", "2100-01-01T00:00:00Z"]])
def test_no_command_acts_on_a_forged_ledger(ledger, capsys, command):
    """Only verify reads a ledger whose chain fails; every other command stops with exit 3 and acts on nothing."""
    forge_without_the_key(ledger)
    before = {p: p.read_bytes() for p in ledger.root.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert cli.main(["--repo", str(ledger.root), *command]) == cli.EXIT_LEDGER
    captured = capsys.readouterr()
    assert "cannot be trusted" in captured.err and "FORGED-RUN" not in captured.out
    assert {p: p.read_bytes() for p in ledger.root.rglob("*") if p.is_file() and ".git" not in p.parts} == before


@pytest.mark.parametrize("damage", ["huge seq", "deep head", "head hash not hex", "head is a list",
                                    "deep first line", "5000-digit seq", "ledger links to /dev/zero",
                                    "ledger is a FIFO"])
def test_hostile_ledger_and_head_files_are_exit_3_never_a_traceback(ledger, capsys, damage):
    if damage == "huge seq":
        ledger.head_path.write_text('{"seq": 1e999, "hash": "x"}')
    elif damage == "deep head":
        ledger.head_path.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "head hash not hex":
        ledger.head_path.write_text(json.dumps({"seq": 3, "hash": "z" * 64}))
    elif damage == "head is a list":
        ledger.head_path.write_text("[3]")
    elif damage == "deep first line":
        rewrite(ledger, ["[" * 100_000 + "]" * 100_000, *ledger.lines()[1:]])
    elif damage == "5000-digit seq":
        rewrite(ledger, ['{"seq": ' + "9" * 5000 + "}", *ledger.lines()[1:]])
    elif damage == "ledger links to /dev/zero":
        ledger.path.unlink()
        ledger.path.symlink_to("/dev/zero")
    else:
        ledger.path.unlink()
        os.mkfifo(ledger.path)
    for command in (["audit", "list"], ["audit", "trace", "rec-000001"]):
        assert cli.main(["--repo", str(ledger.root), *command]) == cli.EXIT_LEDGER
        assert "Traceback" not in capsys.readouterr().err
    assert cli.main(["--repo", str(ledger.root), "audit", "verify"]) in (cli.EXIT_FAILED, cli.EXIT_LEDGER)
    assert "Traceback" not in capsys.readouterr().err


def test_verify_without_a_pipeline_reports_it_instead_of_crashing(ledger, capsys):
    """A plain git repository (no dvc.yaml): the chain passes, the workspace check names what is missing."""
    assert cli.main(["--repo", str(ledger.root), "audit", "verify"]) == cli.EXIT_FAILED
    captured = capsys.readouterr()
    assert "dvc status could not check the production chain" in captured.out and "Traceback" not in captured.err


@pytest.mark.parametrize("now", ["2026-12-31", "2026-12-31T00:00:00", "tomorrow"])
def test_purge_wants_a_time_with_its_offset(ledger, capsys, now):
    assert cli.main(["--repo", str(ledger.root), "purge", "--now", now]) == cli.EXIT_INPUT
    assert "with its offset" in capsys.readouterr().err


def test_a_ledger_from_another_repository_is_refused(ledger, tmp_path):
    other = git_repo(tmp_path / "other")
    (other / "audit").mkdir()
    (other / "audit" / "ledger.jsonl").write_text(ledger.path.read_text())
    copied = Ledger(other, repository_id(other))
    with pytest.raises(LedgerError, match="was written in repository"):
        copied.append([event("req-0100", IDS, ledger.key())])
    assert cli.main(["--repo", str(other), "audit", "list"]) == cli.EXIT_LEDGER


def test_a_missing_key_is_a_clear_error_with_exit_code_3(ledger, capsys):
    ledger.key_path.unlink()
    with pytest.raises(LedgerError, match="audit key is missing"):
        ledger.key()
    assert cli.main(["--repo", str(ledger.root), "audit", "trace", "rec-000003"]) == cli.EXIT_LEDGER
    assert "Restore the key" in capsys.readouterr().err


def test_the_key_can_come_from_the_environment(ledger, monkeypatch):
    secret = ledger.key_path.read_text().strip()
    ledger.key_path.unlink()
    monkeypatch.setenv("UNLEARN_AUDIT_KEY", secret)
    assert problems(ledger) == []


def test_unknown_request_and_record_exit_with_code_2(ledger, capsys):
    assert cli.main(["--repo", str(ledger.root), "audit", "show", "req-9999"]) == cli.EXIT_INPUT
    assert "not in the ledger" in capsys.readouterr().err
    prepared = ledger.root / "data" / "prepared"
    prepared.mkdir(parents=True)
    for name in ("train.csv", "test.csv"):
        (prepared / name).write_text("record_id,x,y\nrec-000100,0.0,0.0\n")
    assert cli.main(["--repo", str(ledger.root), "audit", "trace", "rec-999999"]) == cli.EXIT_INPUT
    assert "is unknown" in capsys.readouterr().err


def test_trace_finds_the_request_by_keyed_hash(ledger, capsys):
    assert cli.main(["--repo", str(ledger.root), "audit", "trace", "rec-000002"]) == 0
    assert "forgotten by request req-0002" in capsys.readouterr().out


def test_a_crash_while_appending_leaves_the_old_ledger_whole(ledger, monkeypatch):
    before = ledger.path.read_bytes()

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        ledger.append([event("req-0100", IDS, ledger.key())])
    monkeypatch.undo()
    assert ledger.path.read_bytes() == before
    assert not [p for p in ledger.path.parent.iterdir() if p.name != "ledger.jsonl"]  # no temporary left


def test_every_command_explains_itself():
    commands = [[], ["request"], ["request", "check"], ["request", "submit"], ["audit"], ["audit", "list"],
                ["audit", "show"], ["audit", "trace"], ["audit", "verify"], ["audit", "reproduce"],
                ["audit", "record"], ["purge"]]
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*command, "--help"])
        assert exit_info.value.code == 0


def revision(run: str = "run-9") -> dict:
    """A `revised` entry, as events.record_pending writes it when the served posterior changed without a request."""
    return {"event": "revised", "run_id": run, "recorded_at": "2026-11-28T03:00:00Z", "epoch": 0,
            "git_commit": "1" * 40, "dirty": [], "served": "def.dir", "artifacts_before": {"models/served": "abc.dir"},
            "artifacts_after": {"models/served": "def.dir"}, "requests": ["req-0000"], "method": "ggn_damped",
            "posterior": "full_ggn", "served_path": "fallback",
            "gate": {"decision": "fallback", "reasons": ["the audit found this posterior poor (gain 1.2 ≥ 1)"],
                     "thresholds": {}, "metrics": {}}}


def test_a_revision_of_the_served_posterior_joins_the_chain_and_the_listing(ledger, capsys):
    sealed = ledger.append([revision()])
    assert sealed[0].event == "revised" and sealed[0].seq == 4 and problems(ledger) == []
    assert ledger.entries()[-1].artifacts_after == {"models/served": "def.dir"}
    assert cli.main(["--repo", str(ledger.root), "audit", "list"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert last[:5] == ["4", "revised", "1", "in", "force"] and "fallback" in last


@pytest.mark.parametrize("change", [{"gate": None}, {"requests": "req-0000"}, {"served_path": "slow"},
                                    {"request": {"request_id": "req-0001"}}])
def test_a_malformed_revision_is_refused(ledger, change):
    with pytest.raises(LedgerError):
        ledger.append([revision() | change])
