"""What each exit code means: `deletions`, `python -m flows.intake|audit|serve`, `python -m
bayesunlearn.io.settings` and the DVC stages exit with the codes of `bayesunlearn.errors.Exit` (each
error class names its own, `exit_code`).

The `--help` texts and docs/reliability.md's table are generated from MEANING (`python -m bench.docs`).
Kept apart from the codes so that rewording a meaning is no code change for DVC (every stage depends on
errors.py).
"""

from __future__ import annotations

import textwrap

from bayesunlearn.errors import Exit

MEANING = {
    Exit.OK: "done / check passed",
    Exit.FAILED: "a check failed: `audit verify` found problems (completeness, data, workspace), `audit "
                 "reproduce` differed, the purge scan found records",
    Exit.INPUT: "bad input: a request file that breaks a rule, an unknown request or record id, a bad "
                "`params.yaml`, a missing pipeline output (restore it with `dvc checkout`), uncommitted changes that an "
                "event would commit (commit or restore them first), bad arguments",
    Exit.LEDGER: "the ledger cannot be used or trusted, for every command (`audit verify` included, which lists "
                 "every problem): audit key missing, damaged or replaced, ledger head damaged, ledger of another "
                 "repository, a ledger that is missing, empty, shorter than its committed history or fails its "
                 "chain check",
    Exit.NOT_REPRODUCIBLE: "the event cannot be re-run (purged on purpose, or its commit is missing)",
    Exit.GIT: "git cannot commit the event: a stale `.git/index.lock`, or a hook refused the commit; nothing is "
              "recorded until it can",
    Exit.STAGE: "a pipeline stage failed: the run's requests are back in the inbox, the served posterior is "
                "unchanged; or the audit right after an intake (`audit.after_intake`) failed: the intake's event "
                "stays served and recorded, and the next audit judges what is served then",
    Exit.SERVER: "the workspace's Prefect server cannot be had: it did not start, or the port serves another "
                 "workspace or program (choose another with `--port` or `make serve PREFECT_PORT=N`)",
}


def table() -> str:
    """MEANING as a markdown table (docs/reliability.md)."""
    return "\n".join(["| code | meaning |", "|---|---|", *[f"| {code.value} | {MEANING[code]} |" for code in Exit]])


def text() -> str:
    """MEANING as plain text, for `--help`."""
    return "Exit codes:\n" + "\n".join(textwrap.fill(MEANING[code], 100, initial_indent=f"  {code.value}  ",
                                                       subsequent_indent="     ") for code in Exit)
