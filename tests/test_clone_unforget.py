"""The un-forget attacks, run in a fresh `git clone` at another path (what every CI checkout is).

A workspace records two requests and commits its ledger. In a clone elsewhere — with the repository's key (same
machine), with no key at all (another machine), or with a replaced key under which every line was resealed — the
ledger and the request files are deleted or the key swapped, and the pipeline is asked to split again. The `split`
stage refuses, `verify` fails with exit 3, and every reader refuses with the same exit code instead of answering
"not forgotten" from a ledger that says nothing.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from conftest import sh, tiny_repo, train_ids, write_request

from lineage import cli, events
from lineage.ledger import GENESIS, AuditKey, Ledger, canonical

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> tuple[Path, str]:
    """Two requests applied, recorded and committed; returns the workspace and one forgotten record id."""
    root = tiny_repo(tmp_path_factory.mktemp("origin"))
    forgotten = train_ids(root)[30:32]
    write_request(root, "req-0002", forgotten)
    sh("dvc", "repro", "serve", cwd=root)
    events.record_pending(root)
    assert sh("git", "status", "--porcelain", "audit", "data/requests", cwd=root).stdout == ""
    return root, forgotten[0]


@pytest.fixture
def clone(origin, tmp_path) -> Path:
    target = tmp_path / "checkout"
    sh("git", "clone", "-q", str(origin[0]), str(target), cwd=tmp_path)
    return target


def refused(root: Path, capsys, record: str) -> None:
    """verify and every reader exit 3; none says the record is not forgotten."""
    assert cli.main(["--repo", str(root), "audit", "verify"]) == cli.EXIT_LEDGER
    assert "PROBLEM" in capsys.readouterr().out
    for command in (["audit", "trace", record], ["audit", "list"], ["audit", "show", "req-0002"]):
        assert cli.main(["--repo", str(root), *command]) == cli.EXIT_LEDGER, command
        captured = capsys.readouterr()
        assert "cannot be trusted" in captured.err and "not forgotten" not in captured.out, captured


def split_refused(root: Path, *expected: str) -> None:
    result = sh("dvc", "repro", "split", cwd=root, check=False)
    assert result.returncode != 0, result.stdout
    assert all(text in result.stderr + result.stdout for text in expected), result.stderr[-3000:]
    assert not (root / "data/split/retained.csv").exists()  # no split that retains the forgotten records


def test_a_clone_with_the_key_cannot_un_forget(origin, clone, capsys):
    """Finding 1 and 2: ledger and request files deleted in a copy at another path (no head here)."""
    (clone / "audit/ledger.jsonl").unlink()
    for path in (clone / "data/requests").glob("*.json"):
        path.unlink()
    split_refused(clone, "does not extend the ledger committed in", "req-0002")
    refused(clone, capsys, origin[1])


def test_a_clone_without_the_key_cannot_un_forget(origin, clone, tmp_path, monkeypatch, capsys):
    """Another machine: no key at all. The committed history still holds."""
    monkeypatch.setenv("UNLEARN_AUDIT_HOME", str(tmp_path / "empty-home"))
    (clone / "audit/ledger.jsonl").write_text("")
    (clone / "data/requests/req-0002.json").unlink()
    split_refused(clone, "does not extend the ledger committed in")


def test_a_replaced_key_with_every_line_resealed_cannot_un_forget(origin, clone, tmp_path, monkeypatch, capsys):
    """Finding 5: a new key in the audit home, the ledger resealed under it, a request file deleted."""
    led = events.ledger(clone)
    entries = led.entries()
    monkeypatch.setenv("UNLEARN_AUDIT_HOME", str(tmp_path / "new-home"))
    led = Ledger(clone, led.repository)
    key = AuditKey(secrets.token_bytes(32))
    led.key_path.parent.mkdir(parents=True)
    led.key_path.write_text(key.secret.hex() + "\n")
    previous, lines = GENESIS, []
    for entry in entries:
        line = entry.model_dump()
        line.update(key_id=key.key_id, prev_hash=previous)
        line["entry_hash"] = previous = key.seal(line)
        lines.append(canonical(line))
    led.path.write_text("".join(line + "\n" for line in lines))
    led.write_head(len(lines) - 1, previous)
    (clone / "data/requests/req-0002.json").unlink()
    split_refused(clone, "the key was replaced")
    refused(clone, capsys, origin[1])
