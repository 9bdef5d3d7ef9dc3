"""Serve the intake and audit flows on the cron schedules of params.yaml `schedule` (`make serve`).

    python -m flows.serve [--repo .] [--port 4200]

Uses the workspace's local Prefect server (flows/server.py; its scheduler is
what fires the cron schedules; UI at http://127.0.0.1:4200), starting it when
it is not running, and serves both deployments until Ctrl-C, SIGINT or SIGTERM.
A manual run, from the activated environment (`make venv` points it at this
server):
    prefect deployment run process_deletion_requests/intake
Runs of one workspace are serialised by the workspace's file lock, which a
killed run releases with its process: there is no Prefect concurrency slot to
leak.

Stopping. The runner (Prefect's, and the flow runs it starts) lives in a
session of its own, so a terminal's Ctrl-C reaches only this process, which
then stops, in order: the runner (runs in progress are cancelled and marked
Cancelled in Prefect, the schedules paused), then the server. One line, exit 0.
On Linux the runner also stops when this process is killed (SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bayesunlearn import exits
from bayesunlearn.errors import Exit, UserError

from .server import DEFAULT_PORT, healthy, python_path, run_with_server
from .workspace import Workspace

STOP_TIMEOUT = 30.0  # seconds the runner gets to cancel its runs and stop before its process group is killed
PR_SET_PDEATHSIG = 1


def deployments(repo: str) -> list:
    """The intake and audit deployments of the workspace `repo`, on its cron schedules."""
    from .audit import audit_unlearning
    from .intake import process_deletion_requests

    repo = str(Path(repo).resolve())
    schedule = Workspace(Path(repo)).settings().schedule
    return [process_deletion_requests.to_deployment("intake", cron=schedule.intake_cron, parameters={"repo": repo}),
            audit_unlearning.to_deployment("nightly-audit", cron=schedule.audit_cron, parameters={"repo": repo})]


def run_runner(repo: str, port: int) -> None:
    """The runner process: both deployments against the workspace's server, until SIGTERM."""
    from prefect.runner import Runner

    class QuietRunner(Runner):
        def handle_sigterm(self, *args, **kwargs) -> None:
            logging.getLogger("prefect.runner").setLevel(logging.WARNING)  # the serving process says it in one line
            super().handle_sigterm(*args, **kwargs)

    served = deployments(repo)

    def serve() -> None:
        runner = QuietRunner(pause_on_shutdown=True)
        for deployment in served:
            runner.add_deployment(deployment)
        names = ", ".join(f"{d.flow_name}/{d.name} ({d.schedules[0].schedule.cron})" for d in served)
        print(f"serving {names} with the Prefect server at http://127.0.0.1:{port} (UI); Ctrl-C stops", flush=True)
        asyncio.run(runner.start())

    def quit_before_serving(*_) -> None:  # until Runner.start installs its own SIGTERM handler
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, quit_before_serving)
    signal.signal(signal.SIGINT, lambda *_: os.kill(os.getpid(), signal.SIGTERM))  # the same clean stop
    run_with_server(port, serve)


def die_with(parent: int):
    """For the runner's process before it runs: SIGTERM when `parent` dies, even by SIGKILL (Linux only)."""
    def preexec() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # it died before prctl took effect
                os.kill(os.getpid(), signal.SIGTERM)
    return preexec


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__, epilog=exits.text(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC workspace the flows work on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the local Prefect server")
    parser.add_argument("--runner", action="store_true", help=argparse.SUPPRESS)  # the runner's process
    args = parser.parse_args()
    if args.runner:
        run_runner(args.repo, args.port)
        return
    try:
        Workspace(Path(args.repo).resolve()).settings()  # a bad params.yaml fails here, before any server starts
    except UserError as err:
        print(f"{parser.prog}: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(err.exit_code)
    sys.exit(supervise(args.repo, args.port))


def supervise(repo: str, port: int) -> int:
    """Start the runner in its own session, forward the first stop signal to it, wait; its exit code."""
    runner = subprocess.Popen([sys.executable, "-m", "flows.serve", "--runner", "--repo", repo, "--port", str(port)],
                              start_new_session=True, preexec_fn=die_with(os.getpid()),
                              env={**os.environ, "PYTHONPATH": python_path()})
    stopping: list[float] = []

    def stop(signum: int, _frame) -> None:
        if not stopping:
            stopping.append(time.monotonic())
            runner.send_signal(signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    while True:
        try:
            code = runner.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() - stopping[0] > STOP_TIMEOUT:
                os.killpg(runner.pid, signal.SIGKILL)  # the runner and its flow runs; the server stops without users
    if not stopping:
        if code not in (0, Exit.SERVER):
            print(f"error: the runner exited with code {code}; see the output above", file=sys.stderr)
        return code
    seconds = time.monotonic() - stopping[0]
    if code != 0:
        print(f"error: the runner did not stop cleanly (exit code {code}) in {seconds:.1f} s", file=sys.stderr)
        return 1
    server = ("still serves other processes of this workspace" if healthy(f"http://127.0.0.1:{port}/api", 1.0)
              else "stopped")
    print(f"stopped serving in {seconds:.1f} s (any run in progress cancelled, schedules paused); the Prefect server "
          f"on port {port} {server}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
