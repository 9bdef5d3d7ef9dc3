"""The committed history anchors the ledger: no copy of the folder can un-forget (no DVC, no TensorFlow).

Each attack starts from a ledger of four entries committed to git. A copy of the workspace at another path (no
head there), a deleted ledger, a shorter one, a deletion committed to git, and a replaced key with every line
resealed are all refused by verify and by every reader with the same exit code; a ledger longer than its history
(appended, not yet committed) is adopted and its head re-derived.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest
from conftest import sh
from test_ledger import IDS, event, git_repo

from lineage import anchor, cli, events
from lineage.ledger import GENESIS, AuditKey, Ledger, LedgerUntrusted, canonical, chain_problems
from lineage.repo import repository_id

READERS = [["audit", "list"], ["audit", "show", "req-0001"], ["audit", "trace", "rec-000001"],
           ["audit", "reproduce", "req-0001"], ["purge", "--now", "2100-01-01T00:00:00Z"]]


@pytest.fixture
def committed(tmp_path) -> Ledger:
    """Four entries, committed to git as the intake commits them (one commit per append)."""
    root = git_repo(tmp_path / "repo")
    led = Ledger(root, repository_id(root))
    key = led.key(create=True)
    for number in range(4):
        led.append([event(f"req-{number:04d}", [f"rec-{number:06d}", *IDS[:number % 2]], key, f"run-{number}")])
        sh("git", "add", "audit/ledger.jsonl", cwd=root)
        sh("git", "commit", "-qm", f"audit: entry {number}", cwd=root)
    return led


def moved(led: Ledger, tmp_path: Path) -> Ledger:
    """The same working copy at another path: the repository's key is found, this path's head is not."""
    target = tmp_path / "elsewhere"
    shutil.copytree(led.root, target, symlinks=True)
    copy = Ledger(target, led.repository)
    assert copy.head() is None and copy.key().key_id == led.key().key_id
    return copy


def refused_everywhere(led: Ledger, capsys, *expected: str) -> None:
    """verify and every reader exit 3 and say the same thing."""
    assert cli.main(["--repo", str(led.root), "audit", "verify"]) == cli.EXIT_LEDGER
    shown = capsys.readouterr().out
    assert all(text in shown for text in expected), shown
    for command in READERS:
        assert cli.main(["--repo", str(led.root), *command]) == cli.EXIT_LEDGER, command
        err = capsys.readouterr().err
        assert "cannot be trusted" in err and all(text in err for text in expected), (command, err)


def test_history_lists_every_committed_version(committed):
    past = anchor.history(committed.root)
    assert [len(v.lines) for v in past.versions] == [1, 2, 3, 4]
    assert past.key_id() == committed.key().key_id
    assert anchor.problems(committed.root, committed.path.read_bytes(), committed.key()) == []


def test_a_copy_without_its_ledger_cannot_un_forget(committed, tmp_path, capsys):
    """Finding 1: a moved folder (no head there) with the ledger deleted."""
    copy = moved(committed, tmp_path)
    copy.path.unlink()
    with pytest.raises(LedgerUntrusted, match=r"committed entries 0-3 \(4 entries: req-0000, req-0001"):
        copy.entries()
    refused_everywhere(copy, capsys, "does not extend the ledger committed in", "git checkout")


@pytest.mark.parametrize("keep", [0, 2])
def test_a_shorter_ledger_without_a_head_is_refused(committed, tmp_path, capsys, keep):
    copy = moved(committed, tmp_path)
    copy.path.write_text("".join(line + "\n" for line in copy.lines()[:keep]))
    refused_everywhere(copy, capsys, f"committed entries {keep}-3")


def test_a_deletion_committed_to_git_is_still_refused(committed, capsys):
    """Git history keeps every version: committing the deletion does not make it history."""
    sh("git", "rm", "-q", "audit/ledger.jsonl", cwd=committed.root)
    sh("git", "commit", "-qm", "forget the forgetting", cwd=committed.root)
    committed.head_path.unlink()
    refused_everywhere(committed, capsys, "committed entries 0-3")


def test_a_replaced_key_is_refused_even_with_every_line_resealed(committed, capsys):
    """Finding 5: a new key, every line sealed again under it, the head rewritten to match."""
    entries = committed.parse(committed.lines())
    committed.key_path.unlink()
    key = AuditKey(secrets.token_bytes(32))
    committed.key_path.write_text(key.secret.hex() + "\n")
    previous, lines = GENESIS, []
    for entry in entries:
        line = entry.model_dump()
        line["request"]["record_hashes"] = key.hash_ids([f"rec-{entry.seq:06d}"])
        line.update(key_id=key.key_id, prev_hash=previous)
        line["entry_hash"] = previous = key.seal(line)
        lines.append(canonical(line))
    committed.path.write_text("".join(line + "\n" for line in lines))
    committed.write_head(len(lines) - 1, previous)
    assert chain_problems(lines, key, committed.repository, committed.head()) == []  # a perfect chain, alone
    refused_everywhere(committed, capsys, "the key was replaced")


def test_a_ledger_longer_than_its_history_and_without_a_head_is_adopted(committed, tmp_path):
    """A crash after the ledger write and before the head write (or the commit), on the first entry or a later."""
    copy = moved(committed, tmp_path)
    copy.append([event("req-0100", IDS, copy.key(), "run-9")])
    copy.head_path.unlink()
    assert len(copy.entries()) == 5  # readers accept it: it extends what git holds
    assert events.recover(copy.root, copy) == [4]  # head re-derived, the entry committed
    assert copy.head().seq == 4
    assert sh("git", "status", "--porcelain", "audit", cwd=copy.root).stdout == ""
    assert "appended by a run that stopped before committing" in sh("git", "log", "-1", "--format=%s",
                                                                    cwd=copy.root).stdout


def test_temporaries_of_a_killed_ledger_write_are_removed_on_recovery(committed):
    stray = committed.path.parent / ".ledger.jsonl.0123456789ab.tmp"
    stray.write_text('{"half": ')
    events.recover(committed.root, committed)
    assert not stray.exists() and len(committed.entries()) == 4


def test_readers_refuse_an_empty_ledger_and_writers_start_one(tmp_path, capsys):
    root = git_repo(tmp_path / "fresh")
    led = Ledger(root, repository_id(root))
    assert led.entries(allow_empty=True) == []
    assert cli.main(["--repo", str(root), "audit", "list"]) == cli.EXIT_LEDGER
    assert "missing or empty" in capsys.readouterr().err
