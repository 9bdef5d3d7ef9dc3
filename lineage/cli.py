"""`deletions`: deletion requests and their audit trail, from request to data version to posterior to metrics.

  deletions request check FILE...     validate request files with the pipeline's own rules
  deletions request submit FILE       validate one, then place it in inbox/ for the intake flow
  deletions audit list|show|trace|verify|reproduce|record    read and check the deletion ledger
  deletions purge                     delete forgotten records for good (new epoch)

Exit codes (for scripts) are listed at the end of this help (bayesunlearn/exits.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bayesunlearn import exits
from bayesunlearn.errors import Exit, RequestError, UserError
from bayesunlearn.io import atomic

from . import events, html
from . import purge as purging
from .entries import Applied, Purge
from .inbox import Inbox
from .ledger import LedgerError
from .reproduce import NotReproducible, find_event
from .words import count

EXIT_FAILED, EXIT_INPUT, EXIT_LEDGER, EXIT_NOT_REPRODUCIBLE = (Exit.FAILED, Exit.INPUT, Exit.LEDGER,
                                                              Exit.NOT_REPRODUCIBLE)


# --- requests ----------------------------------------------------------------------------------
def cmd_request_check(args) -> int:
    inbox = Inbox(args.repo)
    existing, known = inbox.in_force(), inbox.known_ids()
    worst = 0
    for path in args.files:
        verdict = inbox.triage(path, existing, known)
        if verdict.kind == "accept":
            print(f"{path}: ok: request {verdict.request_id} would forget "
                  f"{count(len(set(verdict.request.record_ids)), 'record')}")
        else:
            print(f"{verdict.reason} [{verdict.rule}]")
            worst = EXIT_INPUT
    return worst


def cmd_request_submit(args) -> int:
    inbox = Inbox(args.repo)
    verdict = inbox.triage(args.file, inbox.in_force(), inbox.known_ids())
    if verdict.kind != "accept":
        print(f"{verdict.reason} [{verdict.rule}]", file=sys.stderr)
        return EXIT_INPUT
    target = inbox.folder / f"{verdict.request_id}.json"
    with inbox.opened(inbox.folder, create=True) as folder:
        try:
            atomic.write_new(target.name, verdict.data, folder)  # the bytes that were validated, not a second read
        except FileExistsError:
            raise RequestError(str(args.file), "name-taken", f"{target} is already waiting in the inbox") from None
    print(f"submitted {verdict.request_id} to {target}; the intake flow applies it on its next run")
    return 0


# --- audit -------------------------------------------------------------------------------------
def cmd_list(args) -> int:
    entries = events.ledger(args.repo).entries()
    if args.json:
        print(json.dumps([e.model_dump() for e in entries], indent=2))
        return 0
    print(f"{'seq':>3}  {'event':8}  {'request':12}  {'time':20}  {'path':8}  {'gate':8}  served")
    for e in entries:
        if isinstance(e, Applied):
            request, time = e.request.request_id, e.applied_at
        elif isinstance(e, Purge):
            request, time = f"{len(e.archived_requests)} archived", e.recorded_at
        else:  # Revised: the served posterior changed, the requests did not
            request, time = f"{len(e.requests)} in force", e.recorded_at
        path, gate = ("", "") if isinstance(e, Purge) else (e.served_path, e.gate.decision)
        print(f"{e.seq:>3}  {e.event:8}  {request:12}  {time:20}  {path:8}  {gate:8}  {e.served[:16]}")
    return 0


def cmd_show(args) -> int:
    entries = events.ledger(args.repo).entries()
    event = find_event(entries, args.request)
    if args.html:
        atomic.write_text(args.html, html.event_page(event, entries, args.repo))
        print(f"wrote {args.html}")
    else:
        print(event.model_dump_json(indent=2))
    return 0


def cmd_trace(args) -> int:
    from .trace import trace

    print("\n".join(trace(args.repo, args.record_id).lines()))
    return 0


def cmd_verify(args) -> int:
    from .verify import verify

    report = verify(args.repo)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    if report.untrusted:
        print(f"verify: FAILED: the ledger cannot be trusted ({count(len(report.problems), 'problem')}); every other "
              "command refuses it too")
        return EXIT_LEDGER
    print("verify: " + ("passed" if report.ok else f"FAILED ({count(len(report.problems), 'problem')})"))
    return 0 if report.ok else EXIT_FAILED


def cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    result = reproduce(args.repo, args.request, keep=args.keep)
    print(f"reproduced {result.request_id} at commit {result.git_commit[:12]}:")
    for path, md5 in result.identical.items():
        print(f"  identical  {path}  {md5}")
    for path, (recorded, got) in result.different.items():
        print(f"  DIFFERENT  {path}  recorded {recorded}, reproduced {got}")
    n = len(result.different)
    print("bit-identical" if result.ok else f"{count(n, 'artifact')} {'differs' if n == 1 else 'differ'}")
    return 0 if result.ok else EXIT_FAILED


def cmd_record(args) -> int:
    recorded = events.record_pending(args.repo, commit=not args.no_commit, only=args.requests or None)
    if not recorded:
        print("nothing to record: every applied request and the served posterior are already in the ledger")
    for e in recorded:
        what = (f"{e.request.request_id} ({count(e.request.n_records, 'record')}" if isinstance(e, Applied)
                else f"of the served posterior ({e.served_path} path, no new request")
        print(f"entry {e.seq}: {e.event} {what}, gate {e.gate.decision})")
    return 0


def cmd_purge(args) -> int:
    now = purging.parse_time(args.now) if args.now else None
    entry = purging.purge(args.repo, now=now, scan_paths=args.scan)
    if entry is None:
        return 0
    scan = entry.scan
    print(f"purge entry {entry.seq} (epoch {entry.epoch}): {count(entry.n_records_removed, 'record')} removed; "
          f"scan of {count(sum(scan['files_searched'].values()), 'file')} for {count(scan['needles'], 'needle')}: "
          f"{count(scan['hits'], 'hit')}")
    for hit in scan["where"]:
        print(f"  HIT {hit['area']}: {hit['file']} ({hit['kind']} of record {hit['record']})")
    return 0 if scan["hits"] == 0 else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="deletions", description=__doc__, epilog=exits.text(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--repo", type=Path, default=Path("."), help="the project workspace (default: here)")
    commands = main.add_subparsers(dest="command", required=True)

    request = commands.add_parser("request", help="check or submit deletion request files",
                                  description="Check deletion request files with the rules the pipeline applies "
                                              "(the same code as the `split` stage and the intake flow).")
    sub = request.add_subparsers(dest="request_command", required=True)
    p = sub.add_parser("check", help="validate request files against the schema, the data and the requests in "
                                     "force", description="Validate each FILE; prints ok or the broken rule.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(run=cmd_request_check)
    p = sub.add_parser("submit", help="validate a request file and place it in inbox/",
                       description="Validate FILE, then copy it to inbox/REQUEST_ID.json for the intake flow "
                                   "(never overwriting a file there).")
    p.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(run=cmd_request_submit)

    audit = commands.add_parser("audit", help="read and check the deletion ledger (audit/ledger.jsonl)",
                                description="Read and check the deletion ledger (audit/ledger.jsonl).")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    p = sub.add_parser("list", help="one line per event", description="One line per ledger event.")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("show", help="one event in full", description="Show the ledger entry of one request.")
    p.add_argument("request", help="a request id, e.g. req-0002")
    p.add_argument("--html", metavar="FILE", type=Path,
                   help="write a page for a person: request, lineage, gate, revision")
    p.set_defaults(run=cmd_show)
    p = sub.add_parser("trace", help="who forgot a record, and which served posteriors had it",
                       description="Which request forgot RECORD_ID, when, and which served posteriors were fitted "
                                   "with it or without it. The id is hashed with the audit key, never stored.")
    p.add_argument("record_id")
    p.set_defaults(run=cmd_trace)
    p = sub.add_parser("verify", help="chain authentic, ledger complete, forgotten ids gone, workspace as recorded",
                       description="Check the keyed hash chain, that every applied request has exactly one entry, "
                                   "that no forgotten id is in the retained data or any input of the served "
                                   "posterior, and that the workspace matches the last entry.")
    p.set_defaults(run=cmd_verify)
    p = sub.add_parser("reproduce", help="rebuild an event in a temporary worktree and compare hashes",
                       description="Check out the event's commit in a temporary git worktree, run the production "
                                   "stages with `dvc repro`, and compare every artifact hash with the ledger.")
    p.add_argument("request")
    p.add_argument("--keep", action="store_true", help="keep the temporary worktree for inspection")
    p.set_defaults(run=cmd_reproduce)
    p = sub.add_parser("record", help="record requests applied, or a served posterior changed, by a manual "
                                      "`dvc repro`",
                       description="Append one entry per applied request that is not in the ledger yet (after "
                                   "`dvc repro serve`), or, when none is pending, one `revised` entry if the "
                                   "served posterior changed since the last entry. The production chain must be "
                                   "up to date. Commits the event first, so it can be reproduced.")
    p.add_argument("requests", nargs="*", help="request ids (default: every applied, unrecorded request)")
    p.add_argument("--no-commit", action="store_true", help="record HEAD as it is instead of committing the event")
    p.set_defaults(run=cmd_record)

    p = commands.add_parser("purge", help="delete forgotten records for good and retrain the base (new epoch)",
                            description=purging.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--now", help="the time to judge retention against (ISO 8601; default: now)")
    p.add_argument("--scan", action="append", type=Path, default=[], metavar="PATH",
                   help="another folder to search for the purged records (repeatable), e.g. a Prefect database "
                        "outside $PREFECT_HOME")
    p.set_defaults(run=cmd_purge)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.repo = args.repo.resolve()
    try:
        return args.run(args)
    except UserError as err:  # each error class names its exit code (bayesunlearn/exits.py)
        kind = {LedgerError: "ledger unusable: ", NotReproducible: "not reproducible: "}
        prefix = next((text for cls, text in kind.items() if isinstance(err, cls)), "")
        print(f"deletions: {prefix}{err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
