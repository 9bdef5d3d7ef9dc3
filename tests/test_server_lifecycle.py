"""The workspace's Prefect server over its lifetime (flows/server.py, flows/serve.py): two first runs at the same
instant share one server, a server of another workspace is refused, a user killed with SIGKILL leaves no server
behind, a taken port is refused in one line, and `make serve` stops on a terminal's Ctrl-C in one line with its run
in progress cancelled and no process left. The slow tests start a real server (10-60 s on a loaded machine); every
wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import REPO, sh, tiny_repo, train_ids, write_request
from test_schedules import free_port, runs, wait_for

slow = pytest.mark.slow  # these start real Prefect servers


def healthy(api: str) -> bool:
    from flows.server import healthy  # importing flows sets PREFECT_HOME: only in the tests that need it

    return healthy(api)


def clean_env(home: Path | None = None) -> dict[str, str]:
    """The test's environment without Prefect settings: no API address, Prefect's home given or left to the flows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return {**env, "PREFECT_HOME": str(home)} if home else env


def server_processes(home: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "--serve-home" in cmdline and str(home) in cmdline:
            found.append(process)
    return found


def gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still alive after up to `timeout` seconds."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return alive


@pytest.fixture(scope="module")
def two_users(tmp_path_factory):
    """Two `python -m flows.server` started at the same instant on an empty Prefect home."""
    home, port = tmp_path_factory.mktemp("prefect-home"), free_port()
    logs = [home.parent / f"user-{i}.log" for i in range(2)]
    users = []
    for log in logs:
        with open(log, "wb") as out:
            users.append(subprocess.Popen([sys.executable, "-m", "flows.server", "--port", str(port)], cwd=REPO,
                                          env=clean_env(home), stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True))
    try:
        wait_for(lambda: all("Ctrl-C stops it" in log.read_text() for log in logs)
                 or any(u.poll() is not None for u in users), 240, "both users to have the server")
        yield home, port, users, logs
    finally:
        for user in users:
            user.kill()
            user.wait()
        for server in gone(server_processes(home), 10):
            server.kill()


@slow
def test_two_first_runs_at_the_same_instant_share_one_server(two_users):
    home, port, users, logs = two_users
    outputs = [log.read_text() for log in logs]
    assert [u.poll() for u in users] == [None, None], outputs
    assert all("Traceback" not in out for out in outputs), outputs
    assert len(server_processes(home)) == 1
    assert healthy(f"http://127.0.0.1:{port}/api")


@slow
def test_a_server_of_another_workspace_is_refused_in_one_line(two_users, tmp_path):
    from bayesunlearn.errors import Exit

    _, port, _, _ = two_users
    out = subprocess.run([sys.executable, "-m", "flows.server", "--port", str(port)], cwd=REPO,
                         env=clean_env(tmp_path / "other-home"), capture_output=True, text=True, timeout=120)
    assert out.returncode == Exit.SERVER
    assert out.stderr.count("\n") == 1 and "another workspace" in out.stderr and "--port" in out.stderr, out.stderr
    assert not server_processes(tmp_path / "other-home")


@slow
def test_the_server_stays_while_a_user_lives_and_goes_with_the_last_killed_one(two_users):
    home, port, users, _ = two_users
    servers = server_processes(home)
    users[0].kill()  # SIGKILL: no clean-up runs in the user
    users[0].wait()
    time.sleep(2)
    assert healthy(f"http://127.0.0.1:{port}/api") and all(s.is_running() for s in servers)
    users[1].kill()
    users[1].wait()
    assert not gone(servers, 5), "the server outlived its last user by more than 5 s"


def test_a_port_taken_by_another_program_is_refused_in_one_line(tmp_path):
    from bayesunlearn.errors import Exit

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "flows.server", "--port", str(port)], cwd=REPO,
                             env=clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=120)
    assert out.returncode == Exit.SERVER
    assert out.stderr.count("\n") == 1 and "taken by another program" in out.stderr and "--port" in out.stderr, \
        out.stderr
    assert not server_processes(tmp_path / "home")


@slow
def test_make_serve_stops_on_ctrl_c_with_its_run_cancelled_and_no_process_left(tmp_path):
    root = tiny_repo(tmp_path / "ws")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["schedule"]["intake_cron"] = "0 0 1 1 *"  # no scheduled run during the test: only the manual one
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "commit", "-qam", "no scheduled intake", cwd=root)  # an uncommitted params.yaml stops every intake
    (root / ".venv").symlink_to(REPO / ".venv")
    write_request(root, "req-0002", train_ids(root)[10:12], folder="inbox")
    port, home, log = free_port(), root / ".prefect", tmp_path / "serve.log"
    # `make venv`'s additions to the activate script, written into a scratch file instead of the shared venv's
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "activate").write_text("# venv's own script\n")
    os.utime(scratch / "activate", (1e9, 1e9))  # written by `python -m venv`, before the packages' stamp
    (scratch / ".installed").touch()
    for _ in range(2):  # idempotent
        subprocess.run(["make", "-s", "venv", f"BIN={scratch}", f"STAMP={scratch / '.installed'}",
                        f"PREFECT_PORT={port}"], cwd=root, env=clean_env(), check=True, timeout=60)
    assert (scratch / "activate").read_text().count("export PREFECT_API_URL=") == 1

    make = ["make", "-o", ".venv/.installed", "-o", ".venv/bin/activate", "serve", f"PREFECT_PORT={port}"]
    with open(log, "wb") as out:  # a session of its own, as `setsid make serve`; its process group is the terminal's
        serving = subprocess.Popen(make, cwd=root, env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(lambda: "Ctrl-C stops" in log.read_text() or serving.poll() is not None, 240, "make serve")
        assert serving.poll() is None, log.read_text()
        # the README's manual run, from an environment activated with the script above
        trigger = subprocess.run(["bash", "-c", f"source {scratch / 'activate'} && prefect deployment run "
                                  "process_deletion_requests/intake"], cwd=root, env=clean_env(),
                                 capture_output=True, text=True, timeout=120)
        assert trigger.returncode == 0, trigger.stdout + trigger.stderr
        wait_for(lambda: any(r.state and r.state.is_running() for r in runs(api, "intake")), 120, "a running run")
        time.sleep(3)  # a stage in flight
        tree = [psutil.Process(serving.pid), *psutil.Process(serving.pid).children(recursive=True)]
        assert len(server_processes(home)) == 1 and any("prefect.engine" in " ".join(p.cmdline()) for p in tree)
        start = time.monotonic()
        os.killpg(serving.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        code = serving.wait(timeout=60)
        seconds = time.monotonic() - start
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)
    output = log.read_text()
    # make re-raises a SIGINT it received once its recipe is done (status 130 in a shell), whatever the recipe's
    # status; a recipe that failed would add a "make: *** ... Error" line
    assert code == -signal.SIGINT and "make: ***" not in output, output[-3000:]
    assert "Traceback" not in output and "Error logging" not in output, output[-3000:]
    assert output.strip().splitlines()[-1].startswith("stopped serving in"), output[-3000:]
    assert seconds < 15, f"stopping took {seconds:.1f} s"
    left = gone(tree + server_processes(home), 5)
    assert not left, [p.cmdline() for p in left]
    with sqlite3.connect(home / "prefect.db") as db:
        states = [s for (s,) in db.execute("SELECT state_type FROM flow_run")]
    assert states and set(states) <= {"COMPLETED", "CANCELLED"}, states
