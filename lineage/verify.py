"""`deletions audit verify`: the chain is authentic, the ledger is complete, the forgotten ids are gone,
the workspace is what the ledger says.

Four checks, each a list of problems (empty = passed):
1. chain: every line is canonical JSON, a valid entry, sealed with this repository's key
   (an HMAC: a line forged or edited without the key fails), numbered and linked in order,
   and holding the entry of the head kept outside the repository (the ledger may be longer:
   entries pulled from another clone); the ledger extends every version committed to git on
   this branch and its upstream, sealed with the key whose fingerprint the first committed
   entry holds (anchor.py). The same checks guard every other reader, with the same message;
2. completeness, both ways: every request in force (the split that dvc.lock records, and the
   request files) has exactly one entry, and every recorded request is in force or purged.
   An empty or missing ledger while requests are in force fails;
3. data: no forgotten id (compared as keyed hashes) is in the retained data or in any table the
   served posterior was built from. Until a purge, the base model's training data and the
   forgotten set itself (the term unlearning divides out) still hold them by design: notes,
   not problems. After a purge no table may hold a purged id and no request file may remain;
4. workspace: dvc.lock and the files on disk match the last entry, and `dvc status --with-deps`
   finds the production chain up to date.
What it cannot prove: that nobody with the key rewrote the chain and git history (keep the key
secret; push the branch, whose upstream becomes a second anchor), or that the ledger and its
head were deleted before their first commit.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bayesunlearn.io import datasets
from bayesunlearn.errors import UserError

from . import events, repo
from .entries import Applied, LedgerEntry, Purge
from .ledger import Ledger
from .words import count

SUBTRAHEND = "data/split/forgotten.csv"  # what unlearning divides out: holds unpurged forgotten records by design
BASE_INPUTS = ("data/prepared/train.csv", "data/prepared/test.csv")  # the base model's data until a purge


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    untrusted: bool = False   # the ledger itself fails its checks: the exit code every reader gives it

    @property
    def ok(self) -> bool:
        return not self.problems


def completeness_problems(root: Path, entries: list[LedgerEntry]) -> list[str]:
    """Every applied request recorded once; every recorded request applied or purged."""
    recorded = Counter(e.request.request_id for e in entries if isinstance(e, Applied))
    purged = events.archived_ids(entries)
    applied = set(events.in_force(root))
    try:
        files = set(events.request_files(root))
    except UserError as err:
        return [f"requests folder: {err}"]
    problems = []
    if applied and not entries:
        problems.append(f"the ledger is empty or missing, but {count(len(applied), 'request')} "
                        f"{'is' if len(applied) == 1 else 'are'} in force: every "
                        "applied deletion must be recorded (run the intake flow or `deletions audit record`)")
    for request_id in sorted(applied - set(recorded)):
        problems.append(f"request {request_id} is applied but has no ledger entry (run the intake flow or "
                        "`deletions audit record`)")
    for request_id, count in sorted(recorded.items()):
        if count > 1:
            problems.append(f"request {request_id} has {count} ledger entries; it must have exactly one")
        if request_id not in applied and request_id not in purged:
            problems.append(f"request {request_id} is recorded as applied but the split no longer applies it "
                            "(its forgetting was undone): restore its request file and `dvc repro serve`")
    for request_id in sorted(files - applied):
        problems.append(f"request {request_id} is in the requests folder but not applied (run the intake flow)")
    for request_id in sorted(files & purged):
        problems.append(f"request {request_id} was purged but its file (record ids in clear) is still there")
    return problems


def lineage_tables(root: Path, lock: dict) -> list[str]:
    """Every CSV the served posterior was built from: dvc.lock followed back from `serve`."""
    stages = lock.get("stages", {})
    producer = {out["path"]: name for name, s in stages.items() for out in s.get("outs", [])}
    seen, todo, tables = set(), ["serve"], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in stages:
            continue
        seen.add(name)
        for dep in stages[name].get("deps", []):
            path = dep["path"]
            owner = producer.get(path) or next((producer[o] for o in producer if path.startswith(o + "/")), None)
            if owner:
                todo.append(owner)
            target = root / path
            files = sorted(target.rglob("*.csv")) if target.is_dir() else [target] if path.endswith(".csv") else []
            tables.update(str(f.relative_to(root)) for f in files if f.exists())
    return sorted(tables)


def data_report(root: Path, key, entries: list[LedgerEntry], lock: dict) -> Report:
    report = Report()
    forgotten = {h for e in entries if isinstance(e, Applied) for h in e.request.record_hashes}
    purged = {h for e in entries if isinstance(e, Purge) for a in e.archived_requests for h in a.record_hashes}
    for table in lineage_tables(root, lock):
        hits = {key.hash_id(i) for i in datasets.record_ids(root / table)}
        bad_purged, unpurged = hits & purged, (hits & forgotten) - purged
        if bad_purged:
            report.problems.append(f"{table}: holds {count(len(bad_purged), 'record')} that were purged")
        if not unpurged:
            continue
        if table == SUBTRAHEND:
            report.notes.append(f"{table}: the {len(unpurged)} forgotten records that unlearning divides out "
                                "(kept until `deletions purge`)")
        elif table in BASE_INPUTS or table.startswith("data/raw/"):
            report.notes.append(f"{table}: still holds {len(unpurged)} forgotten records, as input of the base "
                                "model only; the served posterior removed them by unlearning. `deletions purge` "
                                "deletes them and retrains the base.")
        else:
            report.problems.append(f"{table}: holds {len(unpurged)} forgotten records (an input of the served "
                                   "posterior)")
    return report


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def workspace_problems(root: Path, entries: list[LedgerEntry], lock: dict) -> list[str]:
    """dvc.lock equals the last entry's artifacts, every file on disk equals dvc.lock, nothing is stale."""
    problems = []
    now = repo.current_artifacts(root, lock)
    if entries:
        last = entries[-1].artifacts_after
        for path in sorted(set(last) | set(now)):
            if last.get(path) != now.get(path):
                problems.append(f"{path}: dvc.lock has {now.get(path) or 'nothing'}, the last ledger entry "
                                f"{last.get(path) or 'nothing'} (a change not recorded: run `deletions audit record`)")
    for path, md5 in now.items():
        problems += _on_disk_problems(root, path, md5)
    try:
        changed = repo.stale_stages(root)
    except (UserError, RuntimeError, OSError, ValueError) as err:  # no dvc.yaml, a broken one, no dvc
        return [*problems, f"dvc status could not check the production chain: {str(err).splitlines()[0][:300]}"]
    for stage, changes in sorted(changed.items()):
        problems.append(f"dvc status: stage {stage} is not up to date: {json.dumps(changes)}")
    return problems


def _on_disk_problems(root: Path, path: str, md5: str) -> list[str]:
    target = root / path
    if not target.exists():
        return [f"{path}: missing on disk (run `dvc checkout`)"]
    if not md5.endswith(".dir"):
        return [] if target.is_dir() or file_md5(target) == md5 else [f"{path}: file differs from dvc.lock"]
    manifest = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    if not manifest.exists():  # an input folder (requests, raw): not cached; `dvc status` checks it
        return []
    listed = {item["relpath"]: item["md5"] for item in json.loads(manifest.read_text())}
    actual = {str(f.relative_to(target)) for f in target.rglob("*") if f.is_file()}
    problems = [f"{path}/{rel}: not in dvc.lock's listing" for rel in sorted(actual - set(listed))]
    for rel, digest in sorted(listed.items()):
        if rel not in actual:
            problems.append(f"{path}/{rel}: missing on disk")
        elif file_md5(target / rel) != digest:
            problems.append(f"{path}/{rel}: differs from dvc.lock")
    return problems


def verify(root: Path) -> Report:
    root = Path(root).resolve()
    led: Ledger = events.ledger(root)
    text = led.text()
    report = Report()
    report.problems += led.problems(text)  # chain, key, head, committed history: what every reader checks
    if report.problems:  # nothing below can be trusted on such a ledger
        report.untrusted = True
        return report
    entries = led.parse(text.splitlines())  # the lines checked above
    if not entries:
        report.notes.append("the ledger is empty")
    elif led.head() is None:
        report.notes.append(f"no ledger head for this working copy in {led.head_path}: the ledger is checked "
                            "against its committed history (the next entry written here creates the head)")
    report.problems += completeness_problems(root, entries)
    lock = repo.read_lock(root)
    if entries:
        data = data_report(root, led.key(), entries, lock)
        report.problems += data.problems
        report.notes += data.notes
    report.problems += workspace_problems(root, entries, lock)
    return report
