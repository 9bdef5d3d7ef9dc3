"""Every command a user types ends a known failure with one line, what to do, and the documented exit code.

Each case names the command and the code it must exit with (bayesunlearn/errors.py `Exit`, whose meanings
docs/reliability.md's table is generated from). No case may print a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, sh

from bayesunlearn import exits
from bayesunlearn.errors import Exit
from lineage import cli
from lineage.repo import CommitRefused, commit

BAD_FRACTION = (REPO / "params.yaml").read_text().replace("test_fraction: 0.2", "test_fraction: 1.5", 1)


@pytest.fixture
def workspace(tmp_path) -> Path:
    """The smallest workspace the commands start in: params.yaml, the requests folder, a git repository."""
    root = tmp_path / "ws"
    (root / "data" / "requests").mkdir(parents=True)
    (root / ".dvc" / "tmp").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    sh("git", "init", "-q", cwd=root)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "start", cwd=root)
    return root


def stale_git_lock(root: Path) -> None:
    lock = root / ".git" / "index.lock"
    lock.touch()
    old = time.time() - 3600
    os.utime(lock, (old, old))


def run_module(module: str, root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(root / ".prefect")}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", module, "--repo", str(root), "--port", "1"], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def assert_one_line(stderr: str, prog: str, *needles: str) -> None:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and len(lines) == 1, stderr[-2000:]
    assert lines[0].startswith(f"{prog}: ") and all(n in lines[0] for n in needles), lines[0]


# (command, how the workspace is broken, the code, words the one line must hold)
CASES = [
    ("flows.intake", "bad params.yaml", Exit.INPUT, ["prepare.test_fraction", "less than 1"]),
    ("flows.audit", "bad params.yaml", Exit.INPUT, ["prepare.test_fraction"]),
    ("flows.serve", "bad params.yaml", Exit.INPUT, ["prepare.test_fraction"]),
    ("flows.intake", "stale git lock", Exit.GIT, ["index.lock", "rm "]),
    ("flows.audit", "stale git lock", Exit.GIT, ["index.lock", "rm "]),
]


@pytest.mark.parametrize("module, broken, code, needles", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_a_flow_command_stops_before_its_server_with_one_line(workspace, module, broken, code, needles):
    """Checked before any Prefect server starts (the port given is unusable, so reaching it would fail)."""
    if broken == "bad params.yaml":
        (workspace / "params.yaml").write_text(BAD_FRACTION)
    else:
        stale_git_lock(workspace)
    result = run_module(module, workspace)
    assert result.returncode == code, result.stderr[-2000:]
    assert_one_line(result.stderr, f"python -m {module}", *needles)


def test_request_check_without_the_prepared_data_says_how_to_restore_it(workspace, capsys):
    """Not `unknown-record` for a valid request: the verdict would be wrong, the data is what is missing."""
    request = workspace / "req.json"
    request.write_text('{"request_id": "req-9", "record_ids": ["rec-000001"], "reason": "r", '
                       '"received_at": "2026-11-20"}')
    assert cli.main(["--repo", str(workspace), "request", "check", str(request)]) == Exit.INPUT
    out, err = capsys.readouterr()
    assert "unknown-record" not in out + err
    assert_one_line(err, "deletions", "data/prepared/train.csv is missing", "dvc checkout prepare")
    assert cli.main(["--repo", str(workspace), "audit", "trace", "rec-000001"]) != 0  # not "no such record"
    assert "unknown" not in capsys.readouterr().err


def test_a_commit_a_hook_refuses_is_a_git_error_with_git_s_reason(workspace):
    hook = workspace / ".git" / "hooks" / "commit-msg"
    hook.write_text("#!/bin/sh\necho 'commit message must name a ticket' >&2\nexit 1\n")
    hook.chmod(0o755)
    (workspace / "metrics").mkdir()
    (workspace / "metrics" / "x.json").write_text("{}")
    with pytest.raises(CommitRefused, match="must name a ticket.*run again") as info:
        commit(workspace, ["metrics"], "event")
    assert info.value.exit_code == Exit.GIT and "\n" not in str(info.value)


def test_a_failed_stage_is_named_with_its_own_error_line(workspace):
    from flows.workspace import StageFailed, Workspace

    sh("dvc", "init", "-q", "-f", cwd=workspace)
    (workspace / "gate.py").write_text("import sys\nprint('writing')\nprint('error: metrics/audit.json: cannot be "
                                       "read; git checkout -- metrics/audit.json', file=sys.stderr)\nsys.exit(2)\n")
    (workspace / "dvc.yaml").write_text("stages:\n  gate:\n    cmd: python gate.py\n")
    with pytest.raises(StageFailed) as info:
        Workspace(workspace).repro("gate")
    assert str(info.value) == ("dvc repro gate failed: error: metrics/audit.json: cannot be read; "
                               "git checkout -- metrics/audit.json")
    assert info.value.exit_code == Exit.STAGE


# A real intake run whose stage fails (as on an unreadable metrics/audit.json) or whose commit a hook refuses;
# in a process of its own, so that Prefect's console output is exactly what a user sees.
FAILING_RUN = """
import sys
from flows import intake
from flows.workspace import StageFailed, Workspace
from lineage.repo import CommitRefused

def repro(self, stage):
    if sys.argv[2] == "stage":
        raise StageFailed("dvc repro params failed: error: metrics/audit.json: not JSON; restore it with "
                          "`git checkout -- metrics/audit.json`")
    return ""

def refused(*args, **kwargs):
    raise CommitRefused("git refused to commit the event (the hook said no); fix what git names and run again.")

Workspace.repro = repro
intake.events.record_pending = refused
sys.exit(intake.main(["--repo", sys.argv[1]]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("failure, code, needle", [("stage", Exit.STAGE, "git checkout -- metrics/audit.json"),
                                                   ("commit", Exit.GIT, "the hook said no")])
def test_an_error_inside_the_flow_is_one_line_and_its_code_without_prefect_s_traceback(
        prefect, workspace, failure, code, needle):
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": PREFECT_API_URL.value()}
    result = subprocess.run([sys.executable, "-c", FAILING_RUN, str(workspace), failure], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "Encountered exception during execution" in output  # Prefect still logs the failure, in one line
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m flows.intake: ") and needle in last, last


def test_every_exit_code_has_a_meaning_and_the_help_lists_them():
    assert set(exits.MEANING) == set(Exit)
    help_text = cli.parser().format_help()
    assert all(f"  {code.value}  " in help_text for code in Exit)
