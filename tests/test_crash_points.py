"""Kill -9 at every write point of a recording, for the first entry and for a later one: the next run completes it.

The write points, in order: the event's commit (dvc.lock, params, requests), the ledger line (a kill in the middle
of the write leaves a temporary file; after it, the head is not yet moved), the head, the ledger's commit. The
intake's own points (inbox move, served file) are killed in test_intake_recovery. After each kill the next
recording (what every intake and audit run does first) leaves exactly one entry per request in force, the ledger
committed, its head at its last entry, no temporary file, and `verify` passing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, sh, tiny_repo, train_ids, write_request

from lineage import cli, events
from lineage.entries import Applied

pytestmark = pytest.mark.slow

KILLER = """
import os, signal, sys
from lineage import events, ledger, repo
from bayesunlearn.io import atomic

point = sys.argv[2]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "event-commit":  # the event is committed, the ledger not yet written
    ledger.Ledger.append = die
elif point == "ledger-write":  # in the middle of writing the ledger: a temporary file, the old ledger
    real_write = atomic.write_text
    def half(target, text, mode=0o666):
        if str(target).endswith("ledger.jsonl"):
            with atomic.atomic_path(target) as tmp:
                tmp.write_text(text[: len(text) // 2])
                die()
        real_write(target, text, mode)
    ledger.atomic.write_text = half
elif point == "ledger-line":  # the ledger holds the new line; the head does not
    ledger.Ledger.write_head = die
elif point == "head":  # line and head written; the ledger not committed
    real_commit = repo.commit
    events.repo.commit = lambda root, paths, message: die() if message.startswith("audit:") else \\
        real_commit(root, paths, message)
events.record_pending(sys.argv[1])
"""

POINTS = ["event-commit", "ledger-write", "ledger-line", "head"]


def recorded(root: Path) -> list[str]:
    return [e.request.request_id for e in events.ledger(root).entries(allow_empty=True) if isinstance(e, Applied)]


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Path:
    """Served with the shipped request, nothing recorded yet: the next recording writes the first entry."""
    root = tiny_repo(tmp_path_factory.mktemp("first"))
    sh("dvc", "repro", "serve", cwd=root)
    return root


@pytest.fixture(scope="module")
def later(first, tmp_path_factory) -> Path:
    """One entry recorded and committed, then a second request served: the next recording writes entry 1."""
    root = tmp_path_factory.mktemp("later") / "ws"
    shutil.copytree(first, root, symlinks=True)
    events.record_pending(root)
    write_request(root, "req-0002", train_ids(root)[20:22])
    sh("dvc", "repro", "serve", cwd=root)
    return root


def killed(template: Path, tmp_path: Path, point: str) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-c", KILLER, str(root), point], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == -9, result.stderr[-2000:]  # killed, not failed
    return root


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("which", ["first", "later"])
def test_a_recording_killed_at_any_write_point_is_completed_by_the_next(request, tmp_path, capsys, which, point):
    root = killed(request.getfixturevalue(which), tmp_path, point)
    led = events.ledger(root)
    if point == "ledger-write":
        assert list(led.path.parent.glob(".ledger.jsonl.*.tmp"))  # the kill left its temporary file
    events.record_pending(root)  # what the next intake or audit run does first
    in_force = events.in_force(root)
    assert sorted(recorded(root)) == sorted(in_force) and len(set(recorded(root))) == len(in_force)
    assert not list(led.path.parent.glob(".*.tmp"))
    assert sh("git", "status", "--porcelain", "audit", cwd=root).stdout == ""  # the ledger is committed
    entries = led.entries()
    assert led.head().seq == entries[-1].seq
    assert cli.main(["--repo", str(root), "audit", "verify"]) == 0, capsys.readouterr().out


def test_an_event_whose_inputs_change_while_it_is_recorded_is_refused(first, tmp_path, monkeypatch):
    """One snapshot per event: an edit of params.yaml after it was read stops the recording before any commit."""
    root = tmp_path / "ws"
    shutil.copytree(first, root, symlinks=True)
    head = sh("git", "rev-parse", "HEAD", cwd=root).stdout
    read = events.read_state

    def read_then_edit(*args):
        state = read(*args)
        with open(root / "params.yaml", "a") as handle:
            handle.write("# edited while the event was recorded\n")
        return state

    monkeypatch.setattr(events, "read_state", read_then_edit)
    with pytest.raises(events.WorkspaceChanged, match="params.yaml changed while the event was being recorded"):
        events.record_pending(root)
    assert sh("git", "rev-parse", "HEAD", cwd=root).stdout == head and not (root / "audit/ledger.jsonl").exists()
