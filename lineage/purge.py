"""`deletions purge`: compaction. Delete forgotten records for good and start a new epoch.

For every applied request whose retention period (`ledger.retention_days`) has
passed: remove its records from the raw data (materialised as
data/raw/records.csv with ids and a fixed train/test column, tracked with
`dvc add`), delete the request files (their ids stay in the ledger only as
salted hashes), re-run the production stages so that the base model is
retrained exactly on what remains (resetting the approximation error that
unlearning accumulated), delete the refused files in inbox/rejected/ that name
a purged record (a pending inbox file that names one stops the purge before it
starts: the intake triages it first), push, `dvc gc` workspace, cache and the default
remote, and then search workspace, cache, remote and Prefect's storage byte by
byte for the records. The result goes into a `purge` ledger entry, which also
lists the events that can no longer be re-run.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from bayesunlearn.io import datasets, requests, settings, store
from bayesunlearn.io import progress as bars
from bayesunlearn.errors import UserError
from bayesunlearn.io.sections import Prepare

from . import events, inflight, repo, scan
from .entries import Applied, LedgerEntry
from .inbox import Inbox
from .words import count

RAW = "data/raw/records.csv"
LEFTOVERS = [
    "git history: earlier dvc.lock files name the hashes of purged artifacts (hashes only, no values); the "
    "committed request files of purged requests hold their record ids (never values) until history is rewritten",
    "DVC run-cache (.dvc/cache/runs): maps old dependency hashes to old output hashes (hashes only)",
    "synthetic sources (two_clusters) can regenerate the original records from params and code in git history",
    "packaged sources (diabetes, concrete, diamonds) keep every original record in the installed package; they "
    "are public tables, and the purged workspace no longer reads them",
]


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with its offset, as written in the ledger ("Z" for UTC)."""
    try:
        time = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        time = None
    if time is None or time.tzinfo is None:
        raise UserError(f"{text!r} is not an ISO-8601 time with its offset, such as 2026-11-20T09:30:00Z.")
    return time


def eligible_requests(entries: list[LedgerEntry], retention_days: float, now: datetime
                      ) -> tuple[list[Applied], list[Applied]]:
    """(applied requests past their retention, those still waiting), each not yet archived."""
    archived = events.archived_ids(entries)
    applied = [e for e in entries if isinstance(e, Applied) and e.request.request_id not in archived]
    due = [e for e in applied if parse_time(e.applied_at) + timedelta(days=retention_days) <= now]
    return due, [e for e in applied if e not in due]


def _set_csv_source(root: Path, raw_path: str, categorical: list[str], prepare: Prepare) -> None:
    """Point `prepare` at the purged raw table, changing only those values in params.yaml. Its categorical
    columns stay categorical, whatever values the purge left in them; a categorical target keeps its labels
    in their order, even when the purge left no record of a class (the model keeps its K outputs)."""
    kind = prepare.target_kind
    classes = {"prepare.csv.classes": list(datasets.class_labels(prepare))} if kind == "categorical" else {}
    settings.update_params(root / settings.PARAMS, {"prepare.source": "csv", "prepare.csv.path": raw_path,
                                                    "prepare.csv.target": datasets.TARGET,
                                                    "prepare.csv.id_column": datasets.ID,
                                                    "prepare.csv.categorical": categorical,
                                                    # only when not real: a real target's params stay as they were
                                                    **({"prepare.csv.target_kind": kind} if kind != "real" else {}),
                                                    **classes})


def _raw_table(frame: pd.DataFrame, prepare: Prepare) -> pd.DataFrame:
    """The source as the purge writes it: ids and train/test column, and a categorical target's labels (the
    csv source reads labels, not their indices); a binary target keeps its 0/1 as before."""
    raw = datasets.raw_table(frame, prepare.test_fraction, prepare.seed)
    if prepare.target_kind == "categorical":
        raw[datasets.TARGET] = datasets.class_names(raw[datasets.TARGET], datasets.class_labels(prepare))
    return raw


def _raw_text(root: Path, prepare: Prepare) -> pd.DataFrame:
    """The raw CSV as text, with record ids as `prepare` assigns them: the exact strings on disk."""
    id_column = prepare.csv.id_column
    table = store.read_strings(root / prepare.csv.path)
    return datasets.with_record_ids(table.rename(columns={id_column: datasets.ID}) if id_column else table)


@contextmanager
def _rollback_on_failure(root: Path, paths: list[Path]):
    """Put these files back as they were if a step fails, so a failed purge can simply be run again."""
    saved = {p: p.read_bytes() if p.exists() else None for p in paths}
    try:
        yield
    except Exception as err:
        for path, content in saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        raise UserError(f"purge failed and was rolled back (raw data, params and requests restored): {err}. "
                        "Fix the cause and run `deletions purge` again; `dvc repro serve` rebuilds the "
                        "artifacts of the restored state.") from err


def _remote(root: Path) -> tuple[str | None, str | None, str | None]:
    """(name, url, endpoint) of the default DVC remote, if one is configured."""
    found = repo.run(root, "dvc", "config", "core.remote", check=False)
    name = found.stdout.strip() if found.returncode == 0 else None
    if not name:
        return None, None, None
    url = repo.run(root, "dvc", "config", f"remote.{name}.url").stdout.strip()
    endpoint = repo.run(root, "dvc", "config", f"remote.{name}.endpointurl", check=False).stdout.strip() or None
    if "://" not in url and not os.path.isabs(url):
        url = str((root / ".dvc" / url).resolve())  # DVC resolves relative remote paths from .dvc/
    return name, url, endpoint


def _prefect_paths() -> list[Path]:
    """Prefect's result storage and database folder, from the environment with Prefect's documented defaults.

    Read without importing Prefect: this package stays free of orchestration imports. A server with its
    database elsewhere (PostgreSQL, a test harness) is added with `deletions purge --scan PATH`.
    """
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    paths = [Path(os.environ.get("PREFECT_LOCAL_STORAGE_PATH", home / "storage")).expanduser()]
    database = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL", "")
    paths.append(Path(database.split("///", 1)[-1]).parent if database.startswith("sqlite") else home)
    return [p for p in dict.fromkeys(paths) if p.exists()]


def purge(root: Path, now: datetime | None = None, progress=print, scan_paths: list[Path] = ()) -> dict | None:
    """Run the purge; return its ledger entry, or None when no request is due yet.

    `scan_paths`: more folders to search for the purged records (e.g. a Prefect database elsewhere).
    """
    root = Path(root).resolve()
    if now is not None and now.tzinfo is None:
        raise UserError("purge: `now` needs a time zone (a naive time means different instants to different hosts)")
    ledger = events.ledger(root)
    entries, key = ledger.entries(), ledger.key()  # the chain checks out before anything is deleted
    params = settings.load(root / settings.PARAMS)
    if params.ledger.commit:
        inflight.refuse_foreign(root, "the purge")  # its commit must hold the purge, and nothing else
    retention = params.ledger.retention_days
    due, waiting = eligible_requests(entries, retention, now or datetime.now(UTC))
    if not due:
        progress(f"nothing to purge: {len(waiting)} applied requests are within their {retention:g}-day retention")
        return None
    files = events.request_files(root)
    missing = [e.request.request_id for e in due if e.request.request_id not in files]
    if missing:
        raise UserError(f"request files of {missing} are gone but not archived in the ledger; restore them from "
                        "git (`git checkout -- data/requests`) so the purge knows which records to delete.")
    request_files = [files[e.request.request_id] for e in due]
    record_ids = set()
    for path in request_files:
        record_ids.update(requests.read_request(path, params.split.max_request_bytes).record_ids)

    intake = Inbox(root)
    if pending := intake.naming(intake.folder, record_ids):
        raise UserError(f"inbox files {pending} name records this purge deletes; triage them first (run the "
                        "intake: a refused file the purge then removes from inbox/rejected/), then purge again.")
    intake.naming(intake.rejected, record_ids)  # a linked inbox/rejected/ stops the purge here, not half-way

    # Needles first: after the purge the values exist nowhere we could read them from.
    prepare = params.prepare
    frame, _ = datasets.load_source(prepare, root)
    raw = _raw_table(frame, prepare)
    raw_path = prepare.csv.path if prepare.source == "csv" else RAW
    tables = [store.read_strings(root / p) for p in ("data/prepared/train.csv", "data/prepared/test.csv")]
    tables.append(_raw_text(root, prepare) if prepare.source == "csv" else raw.astype(str))
    needles = scan.needles_for(tables, record_ids, key.hash_id, datasets.class_labels(prepare) or ())
    start = events.snapshot(root)
    git_tracked = bool(repo.git(root, "ls-files", "--", raw_path))
    remote, url, endpoint = _remote(root)

    restorable = [root / "params.yaml", root / raw_path, root / f"{raw_path}.dvc",
                  root / Path(raw_path).parent / ".gitignore", *request_files]
    steps = bars.progress(total=4 + bool(remote), desc="purge",  # on stderr; stdout: the result
                          postfix=f"removing {count(len(record_ids), 'record')} of {count(len(due), 'request')} "
                          f"from the raw data ({raw_path})")
    with _rollback_on_failure(root, restorable):
        store.save_table(root / raw_path, raw[~raw[datasets.ID].isin(record_ids)])
        _set_csv_source(root, raw_path, datasets.categorical_columns(raw), prepare)
        for path in request_files:
            path.unlink()
        if not git_tracked:
            repo.run(root, "dvc", "add", raw_path)
        bars.advance(steps, "re-running the production stages on what remains (new base model)")
        repo.run(root, "dvc", "repro", repo.production_stages(root)[-1])
        if remote:
            bars.advance(steps, f"pushing to remote {remote!r}")
            repo.run(root, "dvc", "push")
    if refused := intake.forget(record_ids):
        progress(f"removed {count(len(refused), 'refused file')} naming purged records from inbox/rejected/ "
                 "(with their reasons)")
    bars.advance(steps, "dvc gc: workspace, cache" + (f" and remote {remote!r}" if remote else ""))
    repo.run(root, "dvc", "gc", "--workspace", "--force", *(["--cloud"] if remote else []))

    bars.advance(steps, f"scanning for {count(len(needles), 'needle')}")
    areas = {"workspace": (scan.local_files(root, root, skip=[root / ".dvc" / "cache"] +
                                            ([Path(url)] if url and "://" not in url else [])))}
    areas["cache"] = scan.local_files(root, root / ".dvc" / "cache")
    notes = []
    if url and "://" not in url:
        areas["remote"] = scan.local_files(root, Path(url))
    elif url and url.startswith("s3://"):
        areas["remote"] = scan.s3_files(url, endpoint)
    elif url:
        notes.append(f"remote {url} not scanned: only local-directory and S3 remotes are supported")
    for path in _prefect_paths():
        areas[f"prefect:{path.name}"] = scan.local_files(root, path)
    for path in scan_paths:
        areas[f"extra:{Path(path).name}"] = scan.local_files(root, Path(path))
    searched, hits = {}, []
    for area, blobs in areas.items():
        searched[area], found = scan.scan_bytes(bars.progress(blobs, desc=f"scan {area}", unit="file"), needles, area)
        hits += found
    steps.update()
    steps.close()

    after = repo.current_artifacts(root)
    archived = [{"request_id": e.request.request_id, "n_records": e.request.n_records,
                 "record_hashes": e.request.record_hashes} for e in due]
    leftovers = LEFTOVERS + ([f"{raw_path} is tracked by git: its history holds the purged values"]
                             if git_tracked else [])
    raw_files = [raw_path + ".dvc", str(Path(raw_path).parent / ".gitignore")]
    revision = repo.commit(root, repo.event_paths(root) + raw_files,
                           f"purge: delete {count(len(record_ids), 'forgotten record')} "
                           f"({count(len(due), 'request')}), new epoch")
    entry = {"event": "purge", "run_id": events.new_run_id(), "epoch": events.epoch(entries) + 1,
             "recorded_at": events.now(), "retention_days": retention, "archived_requests": archived,
             "n_records_removed": len(record_ids), "raw_data": raw_path,
             "not_rerunnable": [e.seq for e in entries if isinstance(e, Applied)],
             "gc": {"workspace": True, "cache": True, "remote": remote},
             "scan": {"needles": len(needles), "files_searched": searched, "hits": len(hits), "where": hits,
                      "notes": notes},
             "leftovers": leftovers, "git_commit": revision, "dirty": repo.dirty_paths(root),
             "served": after.get("models/served", ""), "artifacts_before": start.artifacts, "artifacts_after": after}
    sealed = ledger.append([entry])[0]
    repo.commit(root, [str(ledger.path.relative_to(root))], f"audit: ledger entry {sealed.seq} (purge)")
    return sealed
