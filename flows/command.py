"""What the flows' command lines share: one line and a documented exit code for every known error.

A flow or task that raises a `UserError` (bad params.yaml, a git lock, a refused commit, a failed
stage) is the user's to fix, and its message says how: Prefect's run loggers would print its
traceback, so a filter drops the traceback of those errors (the message stays, in the console and
in Prefect's logs). Any other exception is a bug, and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from bayesunlearn.errors import Exit, UserError
from lineage.repo import check_git_lock

from .workspace import Workspace

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class NoTracebackForUserErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserError):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_user_errors() -> None:
    """Install the filter on Prefect's flow-run and task-run loggers (once)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoTracebackForUserErrors) for f in logger.filters):
            logger.addFilter(NoTracebackForUserErrors())


def preflight(repo: str) -> Workspace:
    """What stops a run before anything starts, checked before the Prefect server: params.yaml and the git lock."""
    workspace = Workspace(Path(repo).resolve())
    workspace.settings()
    check_git_lock(workspace.root)
    return workspace


def run(prog: str, body: Callable[[], None]) -> int:
    """Run a command's body: a UserError ends it with one line `PROG: message` and the error's exit code."""
    quiet_user_errors()
    try:
        body()
    except UserError as err:
        print(f"{prog}: {' '.join(str(err).split())}", file=sys.stderr)
        return err.exit_code
    return Exit.OK
