"""The ledger alone (no DVC, no TensorFlow): chain, salt, tampering, bad input, atomic appends."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import sh

from lineage import cli
from lineage.ledger import Ledger, LedgerError, entry_hash
from lineage.repo import repository_id
from lineage.verify import chain_problems

IDS = ["rec-000003", "rec-000007"]


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    sh("git", "init", "-q", cwd=path)
    (path / "README").write_text(f"{path.name}\n")
    sh("git", "add", "README", cwd=path)
    sh("git", "commit", "-qm", "root", cwd=path)
    return path


def event(request_id: str, ids: list[str], salt) -> dict:
    return {"event": "applied", "applied_at": "2026-11-27T10:00:00Z", "recorded_at": "2026-11-27T10:00:01Z",
            "served_path": "fast", "git_commit": "0" * 40, "served": "abc.dir", "artifacts_after": {},
            "request": {"request_id": request_id, "reason": "test", "received_at": "2026-11-27T09:00:00Z",
                        "n_records": len(ids), "record_hashes": salt.hash_ids(ids)}}


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    root = git_repo(tmp_path / "repo")
    ledger = Ledger(root)
    salt = ledger.salt(create=True)
    for number in range(4):
        ledger.append(event(f"req-{number:04d}", [f"rec-{number:06d}", *IDS[:number % 2]], salt), repository_id(root))
    return ledger


def problems(ledger: Ledger) -> list[str]:
    return chain_problems(ledger, repository_id(ledger.root))


def rewrite(ledger: Ledger, lines: list[str]) -> None:
    ledger.path.write_text("".join(line + "\n" for line in lines))


def test_an_intact_chain_passes_and_stores_no_record_id_in_clear(ledger):
    assert problems(ledger) == []
    text = ledger.path.read_text()
    assert "rec-0" not in text
    entries = ledger.entries_raw()
    assert [e["seq"] for e in entries] == [0, 1, 2, 3]
    assert all(e["entry_hash"] == entry_hash(e) for e in entries)
    assert entries[1]["prev_hash"] == entries[0]["entry_hash"]


def test_an_edited_line_is_caught(ledger):
    lines = ledger.lines()
    entry = json.loads(lines[1])
    entry["request"]["n_records"] += 1
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    rewrite(ledger, lines)
    assert any("line 2: content does not match its hash" in p for p in problems(ledger))


def test_a_deleted_line_is_caught(ledger):
    lines = ledger.lines()
    rewrite(ledger, lines[:1] + lines[2:])
    found = problems(ledger)
    assert any("sequence number 2, expected 1" in p for p in found)
    assert any("does not link to the line before it" in p for p in found)


def test_a_cut_off_last_line_is_caught_by_the_head(ledger):
    rewrite(ledger, ledger.lines()[:-1])
    assert any("lines were cut off the end" in p for p in problems(ledger))


def test_reordered_lines_are_caught(ledger):
    lines = ledger.lines()
    lines[1], lines[2] = lines[2], lines[1]
    rewrite(ledger, lines)
    assert any("sequence number 2, expected 1" in p for p in problems(ledger))


def test_an_inserted_line_is_caught_even_with_a_valid_hash(ledger):
    lines = ledger.lines()
    forged = json.loads(lines[1])
    forged["request"]["request_id"] = "req-forged"
    forged["entry_hash"] = entry_hash(forged)  # self-consistent, but the chain around it breaks
    rewrite(ledger, lines[:2] + [json.dumps(forged, sort_keys=True, separators=(",", ":"))] + lines[2:])
    found = problems(ledger)
    assert any("line 3" in p and "does not link" in p for p in found)


def test_a_ledger_from_another_repository_is_refused(ledger, tmp_path):
    other = git_repo(tmp_path / "other")
    (other / "audit").mkdir()
    (other / "audit" / "ledger.jsonl").write_text(ledger.path.read_text())
    os.environ.pop("UNLEARN_AUDIT_SALT", None)
    copied = Ledger(other)
    copied._write_config(ledger._config())  # even with the right salt
    with pytest.raises(LedgerError, match="belongs to repository"):
        copied.append({"event": "applied"}, repository_id(other))
    assert any("written in repository" in p for p in chain_problems(copied, repository_id(other)))
    assert cli.main(["--repo", str(other), "audit", "list"]) == cli.EXIT_LEDGER


def test_a_missing_salt_is_a_clear_error_with_exit_code_3(ledger, capsys):
    ledger.config_path.unlink()
    with pytest.raises(LedgerError, match="audit salt is missing"):
        ledger.salt()
    assert cli.main(["--repo", str(ledger.root), "audit", "trace", "rec-000003"]) == cli.EXIT_LEDGER
    assert "Restore" in capsys.readouterr().err


def test_unknown_request_and_record_exit_with_code_2(ledger, capsys):
    assert cli.main(["--repo", str(ledger.root), "audit", "show", "req-9999"]) == cli.EXIT_INPUT
    assert "not in the ledger" in capsys.readouterr().err
    assert cli.main(["--repo", str(ledger.root), "audit", "trace", "rec-999999"]) == cli.EXIT_INPUT
    assert "is unknown" in capsys.readouterr().err


def test_trace_finds_the_request_by_salted_hash(ledger, capsys):
    assert cli.main(["--repo", str(ledger.root), "audit", "trace", "rec-000002"]) == 0
    assert "forgotten by request req-0002" in capsys.readouterr().out


def test_a_crash_while_appending_leaves_the_old_ledger_whole(ledger, monkeypatch):
    before = ledger.path.read_bytes()

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        ledger.append(event("req-0100", IDS, ledger.salt()), repository_id(ledger.root))
    monkeypatch.undo()
    assert ledger.path.read_bytes() == before
    assert not [p for p in ledger.path.parent.iterdir() if p.name != "ledger.jsonl"]  # no temporary left


def test_every_command_explains_itself():
    commands = [[], ["audit"], ["audit", "list"], ["audit", "show"], ["audit", "trace"], ["audit", "verify"],
                ["audit", "reproduce"], ["audit", "record"], ["purge"]]
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*command, "--help"])
        assert exit_info.value.code == 0
