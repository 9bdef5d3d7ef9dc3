"""The README's commands, as a user types them, in a tiny workspace: a stale command fails here, not for a user.

The commands are read from README.md itself: every line of its ```bash blocks (a here-document is one command)
and every inline code span that starts with a program a user runs (`dvc ...`, `deletions ...`). Each is either
run (the quick start's block in its order, then AFTER) with its exit code and what its output shows (SHOWS)
asserted, checked through its `--help` (a command group the prose names), or skipped for the reason SKIPPED gives:
long (its time measured by `make bench` in docs/bench.json, or "not measured") or needing a server `make serve`
runs; a skipped command still has a quick check that fails when it goes stale (the make target, the module).
A command in none of these lists, or a list entry no longer in the README, fails the test.

One substitution, documented beside the command in the README: `python -m flows.intake` gets `--port N`, a free
port, so that the test neither uses nor starts a Prefect server on the default port 4200.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, sh, tiny_repo, train_ids
from test_schedules import free_port

README = REPO / "README.md"
BENCH = REPO / "docs" / "bench.json"
PROGRAMS = {"cat", "deletions", "dvc", "make", "prefect", "python", "source"}
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Skip:
    """A README command too long for CI or impossible in a test: why, its measured seconds as a key path into
    docs/bench.json (None: not measured), and a quick command that still fails if it went stale (None: none)."""

    why: str
    bench: tuple[str, ...] | None = None
    check: str | None = None


# Every README command the test does not run. Each `check` runs in the tiny workspace (`dvc dag`: the pipelines
# parse; `dvc repro --dry` cannot stand in, it fails on outputs a dry run does not make); `-S` values are checked
# against the settings schema by test_every_set_param_in_the_readme_is_a_valid_setting.
SKIPPED: dict[str, Skip] = {
    "make test": Skip("long, not measured: every test", check="make -n test"),
    'make test PYTEST_ARGS="-m \'not slow\'"': Skip("long, not measured: every fast test",
                                                   check='make -n test PYTEST_ARGS="-m \'not slow\'"'),
    "make study": Skip("long, not measured: every method, both studies and the sweep", check="make -n study"),
    "make bench": Skip("long, not measured as a whole: the benchmark", check="make -n bench"),
    "dvc repro": Skip("long: every configured method, each with timed retrains, from a fresh clone",
                      bench=("every_method", "seconds"), check="dvc dag"),
    "dvc repro --force": Skip("long, not measured: every stage of `dvc repro` rerun", check="dvc dag"),
    "dvc exp run": Skip("long: without a target, every configured method as `dvc repro`",
                        bench=("every_method", "seconds"), check="dvc dag"),
    "dvc exp run headline -S model.prior_precision=2.0": Skip(
        "long: the main job with every stage after `split`'s inputs rerun; not measured itself (the main job from "
        "nothing, `make repro` in a fresh clone, is bench `main_job`)", bench=("main_job", "seconds")),
    "python -m flows.sweep": Skip("long, not measured: the sweep's grid, part of `make study`",
                                  check="python -m flows.sweep --help"),
    "make serve": Skip("serves until Ctrl-C; tests/test_server_lifecycle.py runs and stops it", check="make -n serve"),
    "prefect deployment run process_deletion_requests/intake": Skip(
        "needs the server `make serve` runs; tests/test_server_lifecycle.py triggers it there"),
}
# Command groups the prose names without arguments: every one has `--help` (README), which must exit 0.
HELP = {"deletions request", "deletions audit list|show|trace|verify|reproduce|record"}
# README commands outside the quick start's block that the test runs, after the block, in this order. `make venv`
# runs first: in a workspace whose .venv is installed it only adds the Prefect settings to .venv/bin/activate.
AFTER = ["make repro", "python -m bayesunlearn.io.settings", "dvc plots show", "make experiments", "deletions purge",
         "deletions audit verify", "dvc remote add -d shared s3://BUCKET/PREFIX"]
SET_UP = "make venv"
# What a command's output shows, as the README describes it (the quick start's comments).
SHOWS = {
    "deletions request check my-request.json": ["ok: request req-0002 would forget 1 record"],
    "deletions request submit my-request.json": ["submitted req-0002 to ", "/inbox/req-0002.json"],
    "python -m flows.intake": ['"req-0002"', '"ledger_entries"'],
    "cat models/served/provenance.json": ['"path"', '"method"', '"gate_reasons"'],
    "dvc repro headline && dvc metrics show": ["metrics/headline.json"],
    "deletions audit show req-0002 --html page.html": ["wrote page.html"],
    "deletions audit trace rec-000012": ["forgotten by request req-0002"],
    "deletions audit verify": ["verify: passed"],
    "deletions audit reproduce req-0002": ["bit-identical"],
    "make repro": ["Forgot 6 of 48 training records (2 requests: req-0001, req-0002)", "Served: "],
    "python -m bayesunlearn.io.settings": [],
    "deletions purge": ["nothing to purge", "30-day retention"],
    "make experiments": ["Experiment"],
}


def blocks(text: str) -> list[list[str]]:
    """The README's shell blocks, each a list of commands; a here-document joins its lines into one."""
    found = []
    for language, body in FENCE.findall(text):
        if language.strip() not in {"bash", "sh", "shell"}:
            continue
        commands, heredoc = [], None
        for line in body.splitlines():
            if heredoc is not None:
                commands[-1] += "\n" + line
                heredoc = None if line.strip() == heredoc else heredoc
            elif line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
                marker = re.search(r"<<-?\s*'?\"?(\w+)", line)
                heredoc = marker.group(1) if marker else None
        found.append(commands)
    return found


def without_comment(command: str) -> str:
    """The command without its trailing `# ...` comment (the README's comments follow two spaces)."""
    return re.split(r"\s{2,}#", command, maxsplit=1)[0].strip()


def inline(text: str) -> list[str]:
    """Inline code spans outside fenced blocks and HTML comments that are commands: a program and its arguments."""
    prose = re.sub(r"<!--.*?-->", "", FENCE.sub("", text), flags=re.S)
    spans = (re.sub(r"\s+", " ", span).strip() for span in re.findall(r"`([^`]+)`", prose))
    return list(dict.fromkeys(s for s in spans if len(s.split()) > 1 and s.split()[0] in PROGRAMS))


def test_extraction_sees_here_documents_comments_and_commands_in_prose():
    text = ("Run `make repro` or `python`, not `prepare.source`.\n```bash\nmake a   # why\ncat > f <<'EOF'\n"
            "{\"a\": 1}\nEOF\n# a comment\n```\n```\nnot a command\n```\n")
    assert blocks(text) == [["make a   # why", "cat > f <<'EOF'\n{\"a\": 1}\nEOF"]]
    assert [without_comment(c) for c in blocks(text)[0]] == ["make a", "cat > f <<'EOF'\n{\"a\": 1}\nEOF"]
    assert inline(text) == ["make repro"]


def quick_start() -> list[str]:
    """The commands of the block that holds `source .venv/bin/activate`: the quick start."""
    found = [b for b in blocks(README.read_text()) if "source .venv/bin/activate" in b]
    assert len(found) == 1, "README.md: the quick start's block (the one that activates .venv) not found"
    return [without_comment(c) for c in found[0]]


def test_every_readme_command_is_run_or_skipped_for_a_stated_reason():
    text = README.read_text()
    fenced = {without_comment(c) for block in blocks(text) for c in block}
    ran = {part for command in [*quick_start(), *AFTER, SET_UP] for part in [command, *command.split(" && ")]}
    commands = fenced | set(inline(text))
    unaccounted = sorted(c for c in commands if c not in ran and c not in SKIPPED and c not in HELP)
    assert not unaccounted, f"README.md commands neither run nor listed in SKIPPED with a reason: {unaccounted}"
    stale = sorted(c for c in [*SKIPPED, *HELP, *AFTER, SET_UP, *SHOWS] if c not in commands)
    assert not stale, f"listed here but no longer in README.md: {stale}"
    assert not set(SKIPPED) & ran, "a command both run and skipped"


def test_every_measured_time_of_a_skipped_command_is_in_the_bench_results():
    bench = json.loads(BENCH.read_text())
    for command, skip in SKIPPED.items():
        value = bench
        for key in skip.bench or ():
            value = value[key]
        assert skip.bench is None or isinstance(value, float) and value > 0, (command, skip.bench)
        assert skip.bench is not None or "not measured" in skip.why or "long" not in skip.why, command


def test_every_set_param_in_the_readme_is_a_valid_setting(tmp_path):
    """A `-S key=value` of the README applied as `dvc exp run` applies it, then the settings schema's verdict."""
    from dvc.utils.hydra import apply_overrides

    from bayesunlearn.io import settings

    overrides = re.findall(r"(?:^|\s)-S\s+(\S+)", README.read_text().replace("`", " "), flags=re.M)
    assert overrides, "README.md gives no `-S` override: this test checks nothing"
    for override in overrides:
        copy = tmp_path / f"{len(list(tmp_path.iterdir()))}" / "params.yaml"
        copy.parent.mkdir()
        copy.write_text((REPO / "params.yaml").read_text())
        apply_overrides(copy, [override])
        settings.load(copy)  # raises a ConfigError naming the key when the README's override is stale


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, int]:
    """A tiny workspace set up as the README's set-up leaves it: committed, its data prepared, and a .venv whose
    packages are the project's (bin/ and lib/ linked to them) with the stock activate script; `make venv` adds
    the Prefect settings, for this workspace's Prefect home and a free port."""
    root = tiny_repo(tmp_path_factory.mktemp("readme") / "ws")
    venv, real = root / ".venv", Path(sys.prefix)  # the environment running the tests (`make test`: .venv)
    (venv / "bin").mkdir(parents=True)
    for name in ("lib", "lib64", "include", "share"):
        if (real / name).exists():
            (venv / name).symlink_to((real / name).resolve())
    (venv / "pyvenv.cfg").write_text((real / "pyvenv.cfg").read_text())
    for path in (real / "bin").iterdir():
        if not path.name.startswith("activate"):
            (venv / "bin" / path.name).symlink_to(path)
    stock = (real / "bin" / "activate").read_text().split("# make venv:", 1)[0]  # the shared venv's additions cut
    (venv / "bin" / "activate").write_text(stock)
    os.utime(venv / "bin" / "activate", (1e9, 1e9))  # written by `python -m venv`, before the packages' stamp
    (venv / ".installed").touch()
    return root, free_port()


def user_env() -> dict[str, str]:
    """A shell before `source .venv/bin/activate`: no Prefect settings and no virtual environment on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VIRTUAL_ENV"))}
    venv = Path(sys.executable).parent.resolve()
    path = [p for p in env["PATH"].split(os.pathsep)
            if p and Path(p).resolve() != venv and ".venv" not in Path(p).parts]
    return {**env, "PATH": os.pathsep.join(path), "PYTHONPATH": str(REPO), "DO_NOT_TRACK": "1",
            "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}


def run(root: Path, command: str, port: int) -> subprocess.CompletedProcess:
    """`command` in bash, in the workspace, after `source .venv/bin/activate` (the quick start's first line)."""
    if command == "python -m flows.intake":
        command += f" --port {port}"  # the README's "another port: --port N"; never the default 4200
    return subprocess.run(["bash", "-c", f"source .venv/bin/activate\n{command}"], cwd=root, env=user_env(),
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_readme_commands_run_in_a_tiny_workspace(workspace):
    root, port = workspace
    made = subprocess.run([*SET_UP.split(), f"PREFECT_PORT={port}"], cwd=root, env=user_env(),
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    activated = run(root, "command -v python dvc deletions prefect; echo $PREFECT_HOME $PREFECT_API_URL", port)
    found = activated.stdout.split()
    assert [Path(p).name for p in found[:4]] == ["python", "dvc", "deletions", "prefect"], activated.stdout
    assert found[4:] == [str(root / ".prefect"), f"http://127.0.0.1:{port}/api"], activated.stdout
    # the README's record id is a training record of the tiny data too, and no shipped request forgets it
    assert "rec-000012" in train_ids(root)
    assert "rec-000012" not in (root / "data/requests/req-0001.json").read_text()
    commands = quick_start()
    assert commands[0] == "source .venv/bin/activate"
    failed, seconds = [], {}
    for command in [*commands[1:], *AFTER]:  # every command, so that one run names every stale one
        start = time.monotonic()
        result = run(root, command, port)
        seconds[command] = round(time.monotonic() - start, 1)
        output = result.stdout + result.stderr
        missing = [phrase for phrase in SHOWS.get(command, []) if phrase not in result.stdout]
        if result.returncode or "Traceback" in output or missing:
            failed.append(f"{command}: exit {result.returncode}, missing {missing}\n{output[-3000:]}")
    print("seconds per command:", json.dumps(seconds, indent=1))
    for command, skip in SKIPPED.items():
        if skip.check:  # not run, but still there: the make target, the dvc command, the module
            result = run(root, skip.check, port)
            if result.returncode:
                failed.append(f"{skip.check} (for {command}): exit {result.returncode}\n{result.stderr[-2000:]}")
    assert not failed, "\n\n".join(failed)
    assert "req-0002" in (root / "page.html").read_text()
    assert (root / "dvc_plots" / "index.html").is_file()  # `dvc plots show` rendered the plots
    assert "shared" in sh("dvc", "remote", "list", cwd=root).stdout
    for group in HELP:
        words = group.split()
        for sub in words[-1].split("|") if "|" in words[-1] else [None]:
            args = [*words[:-1], sub] if sub else words
            helped = run(root, " ".join([*args, "--help"]), port)
            assert helped.returncode == 0 and "usage:" in helped.stdout, helped.stdout + helped.stderr
