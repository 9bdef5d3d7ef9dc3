"""`unlearn audit verify`: the chain is intact, the forgotten ids are gone, the workspace is what the ledger says.

Three checks, each a list of problems (empty = passed):
1. chain: every line re-hashes to its `entry_hash`, links to the previous one,
   has the next sequence number, belongs to this repository and this salt, and
   the last line is the head kept in the local audit config;
2. data: no forgotten id (compared as salted hashes) is in the retained data or
   in any table the served posterior was built from. Until a purge, the base
   model's training data and the forgotten set itself (the term that unlearning
   subtracts) still hold them by design: reported as notes, not problems.
   After a purge, no table may hold a purged id, and no request file may remain;
3. workspace: dvc.lock and the files on disk match the last entry's artifacts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from bayesunlearn.datasets import ID

from . import events, repo
from .events import current_artifacts
from .ledger import GENESIS, Ledger, canonical, entry_hash

SUBTRAHEND = "data/split/forgotten.csv"  # what unlearning divides out: holds unpurged forgotten records by design
BASE_INPUTS = ("data/prepared/train.csv", "data/prepared/test.csv")  # the base model's data until a purge


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def chain_problems(ledger: Ledger, repository: str) -> list[str]:
    problems, previous = [], GENESIS
    lines = ledger.lines()
    for number, line in enumerate(lines):
        where = f"line {number + 1}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"{where}: not JSON")
            previous = None
            continue
        if canonical(entry) != line:
            problems.append(f"{where}: not in canonical form (edited by hand?)")
        if entry.get("entry_hash") != entry_hash(entry):
            problems.append(f"{where}: content does not match its hash (edited)")
        if entry.get("seq") != number:
            problems.append(f"{where}: sequence number {entry.get('seq')}, expected {number} "
                            "(a line was deleted, inserted or moved)")
        if previous is not None and entry.get("prev_hash") != previous:
            problems.append(f"{where}: does not link to the line before it (deleted, inserted or reordered)")
        if entry.get("repository") != repository:
            problems.append(f"{where}: written in repository {entry.get('repository')}, this is {repository}")
        previous = entry.get("entry_hash")
    head = ledger.head()
    if head is not None:
        last = json.loads(lines[-1]) if lines else {}
        if (last.get("seq"), last.get("entry_hash")) != (head["seq"], head["hash"]):
            problems.append(f"the ledger ends at entry {last.get('seq')}, but the last entry written here was "
                            f"{head['seq']} ({head['hash'][:12]}): lines were cut off the end or replaced")
    elif lines:
        problems.append(f"no head in {ledger.config_path}: cannot tell whether lines were cut off the end")
    return problems


def salt_problems(ledger: Ledger, entries: list[dict]) -> list[str]:
    salt_id = ledger.salt().salt_id
    return [f"entry {e.get('seq')}: hashed with salt {e.get('salt_id')}, the local salt is {salt_id}"
            for e in entries if e.get("salt_id") != salt_id]


def forgotten_hashes(entries: list[dict]) -> tuple[set[str], set[str]]:
    """(every forgotten id's hash, those already purged)."""
    forgotten, purged = set(), set()
    for e in entries:
        if "request" in e:
            forgotten.update(e["request"]["record_hashes"])
        for archived in e.get("archived_requests", []):
            purged.update(archived["record_hashes"])
    return forgotten, purged


def table_ids(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    if not lines or lines[0].split(",")[0] != ID:
        return []
    return [line.split(",", 1)[0] for line in lines[1:]]


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


def data_report(root: Path, ledger: Ledger, entries: list[dict], lock: dict) -> Report:
    report = Report()
    salt = ledger.salt()
    forgotten, purged = forgotten_hashes(entries)
    for table in lineage_tables(root, lock):
        hits = {salt.hash_id(i) for i in table_ids(root / table)}
        bad_purged, unpurged = hits & purged, (hits & forgotten) - purged
        if bad_purged:
            report.problems.append(f"{table}: holds {len(bad_purged)} records that were purged")
        if not unpurged:
            continue
        if table == SUBTRAHEND:
            report.notes.append(f"{table}: the {len(unpurged)} forgotten records that unlearning divides out "
                                "(kept until `unlearn purge`)")
        elif table in BASE_INPUTS or table.startswith("data/raw/"):
            report.notes.append(f"{table}: still holds {len(unpurged)} forgotten records, as input of the base "
                                "model only; the served posterior removed them by unlearning. `unlearn purge` "
                                "deletes them and retrains the base.")
        else:
            report.problems.append(f"{table}: holds {len(unpurged)} forgotten records (an input of the served "
                                   "posterior)")
    archived = {a["request_id"] for e in entries for a in e.get("archived_requests", [])}
    for request_id in sorted(archived):
        if (root / "data" / "requests" / f"{request_id}.json").exists():
            report.problems.append(f"data/requests/{request_id}.json: purged request still present (ids in clear)")
    return report


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def workspace_problems(root: Path, entries: list[dict], lock: dict) -> list[str]:
    """dvc.lock equals the last entry's artifacts, and every file on disk equals dvc.lock."""
    if not entries:
        return []
    problems = []
    last, now = entries[-1]["artifacts_after"], current_artifacts(root, lock)
    for path in sorted(set(last) | set(now)):
        if last.get(path) != now.get(path):
            problems.append(f"{path}: dvc.lock has {now.get(path) or 'nothing'}, the last ledger entry "
                            f"{last.get(path) or 'nothing'} (a change not recorded: run `unlearn audit record`)")
    for path, md5 in now.items():
        problems += _on_disk_problems(root, path, md5)
    status = repo.run(root, "dvc", "status", "--json", repo.production_stages(events.params(root))[-1]).stdout
    for stage, changes in sorted((json.loads(status or "{}")).items()):
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
    ledger = Ledger(root)
    repository = repo.repository_id(root)
    report = Report(problems=chain_problems(ledger, repository))
    entries = ledger.entries_raw()
    if not entries:
        report.notes.append("the ledger is empty: nothing recorded yet")
        return report
    report.problems += salt_problems(ledger, entries)
    lock = repo.read_lock(root)
    data = data_report(root, ledger, entries, lock)
    report.problems += data.problems + workspace_problems(root, entries, lock)
    report.notes += data.notes
    return report
