"""Serve the intake and audit flows on the cron schedules of params.yaml `schedule` (`make serve`).

    python -m flows.serve [--repo .] [--port 4200]

Starts a real local Prefect server when none answers at PREFECT_API_URL (its
scheduler is what fires the cron schedules; UI at http://127.0.0.1:4200) and
serves both deployments until Ctrl-C. A manual run:
    prefect deployment run process_deletion_requests/intake
Runs of one workspace are serialised by the workspace's file lock, which a
killed run releases with its process: there is no Prefect concurrency slot to
leak.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import serve

from bayesunlearn import exits

from . import command
from .audit import audit_unlearning
from .intake import process_deletion_requests
from .server import DEFAULT_PORT, local_server
from .workspace import Workspace


def deployments(repo: str) -> list:
    """The intake and audit deployments of the workspace `repo`, on its cron schedules."""
    repo = str(Path(repo).resolve())
    schedule = Workspace(Path(repo)).settings().schedule
    return [process_deletion_requests.to_deployment("intake", cron=schedule.intake_cron, parameters={"repo": repo}),
            audit_unlearning.to_deployment("nightly-audit", cron=schedule.audit_cron, parameters={"repo": repo})]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__, epilog=exits.text(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC workspace the flows work on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the local Prefect server")
    args = parser.parse_args(argv)

    def body() -> None:
        served = deployments(args.repo)  # a bad params.yaml fails here, before any server starts
        with local_server(args.port):
            serve(*served)

    return command.run(parser.prog, body)


if __name__ == "__main__":
    raise SystemExit(main())
