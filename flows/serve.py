"""Serve the intake and audit flows on the cron schedules of params.yaml `schedule`.

    python -m flows.serve [--repo .]

With no Prefect server configured this starts a temporary one (about 20 s);
against a real server, set PREFECT_API_URL first (see README). Ctrl-C stops.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import serve

from .audit import audit_unlearning
from .intake import process_deletion_requests
from .workspace import Workspace


def deployments(repo: str) -> list:
    """The intake and audit deployments, each limited to one concurrent run."""
    repo = str(Path(repo).resolve())
    schedule = Workspace(Path(repo)).settings().schedule
    return [
        process_deletion_requests.to_deployment("intake", cron=schedule.intake_cron, parameters={"repo": repo},
                                                concurrency_limit=1),
        audit_unlearning.to_deployment("nightly-audit", cron=schedule.audit_cron, parameters={"repo": repo},
                                       concurrency_limit=1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC workspace the flows work on")
    serve(*deployments(parser.parse_args().repo))


if __name__ == "__main__":
    main()
