"""The committed history of the ledger: the anchor a copied, moved or freshly cloned folder cannot lose.

The ledger is append-only, so every version of `audit/ledger.jsonl` ever committed on the current
branch (and on its upstream, the second anchor once pushed) is a prefix of the working ledger. A
working ledger that is missing, shorter or different in its first lines undoes recorded forgetting
wherever the folder sits; only rewriting git history (and every pushed copy of it) gets past this.

The first committed entry also names the key the chain was sealed with (`key_id`, a fingerprint of
the key), so a replaced key is caught even when every line was resealed under it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .ledger import LEDGER, MAX_LEDGER_BYTES, AuditKey, LedgerError, loads
from .repo import run, tool_env
from .words import count

ZERO = "0" * 40


@dataclass(frozen=True)
class Version:
    """One committed version of the ledger: the first commit that holds it, and its bytes."""

    commit: str
    blob: bytes

    @property
    def lines(self) -> list[str]:
        return self.blob.decode("utf-8", "replace").splitlines()


@dataclass(frozen=True)
class History:
    versions: tuple[Version, ...]   # oldest first, one per distinct content

    @property
    def longest(self) -> Version | None:
        return max(self.versions, key=lambda v: len(v.blob), default=None)

    def key_id(self) -> str | None:
        """The key fingerprint of the first committed entry (None before the first commit)."""
        for version in self.versions:
            first = version.lines[:1]
            if first:
                try:
                    entry = loads(first[0])
                except ValueError:
                    return None
                return entry.get("key_id") if isinstance(entry, dict) else None
        return None


def _refs(root: Path) -> list[str]:
    """HEAD and, where configured, its upstream (a pushed copy of the history is a second anchor)."""
    upstream = run(root, "git", "rev-parse", "--verify", "--quiet", "@{upstream}", check=False)
    return ["HEAD"] + (["@{upstream}"] if upstream.returncode == 0 and upstream.stdout.strip() else [])


def history(root: Path) -> History:
    """Every distinct committed version of the ledger on HEAD (and its upstream), oldest first."""
    root = Path(root)
    if run(root, "git", "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode:
        return History(())  # no commit yet
    log = run(root, "git", "log", "--full-history", "-m", "--no-renames", "--no-abbrev", "--reverse",
              "--format=commit %H", "--raw", *_refs(root), "--", str(LEDGER)).stdout
    blobs: dict[str, str] = {}   # blob -> first commit holding it
    commit = ""
    for line in log.splitlines():
        if line.startswith("commit "):
            commit = line.split()[1]
        elif line.startswith(":"):
            blob = line.split("\t")[0].split()[3]
            if blob != ZERO:
                blobs.setdefault(blob, commit)
    contents = _read_blobs(root, list(blobs))
    return History(tuple(Version(commit, contents[blob]) for blob, commit in blobs.items()))


def _read_blobs(root: Path, blobs: list[str]) -> dict[str, bytes]:
    """The contents of these blobs, through one `git cat-file --batch`; a blob past the ledger's cap is damage."""
    process = subprocess.run(["git", "cat-file", "--batch"], cwd=root, env=tool_env(), capture_output=True,
                             input="".join(b + "\n" for b in blobs).encode())
    out, position, contents = process.stdout, 0, {}
    for blob in blobs:
        header_end = out.index(b"\n", position)
        name, _, size = out[position:header_end].decode().split()
        size = int(size)
        if size > MAX_LEDGER_BYTES:
            raise LedgerError(f"the ledger committed as blob {name} has {size} bytes: damage, not history")
        contents[blob] = out[header_end + 1:header_end + 1 + size]
        position = header_end + 1 + size + 1
    return contents


def problems(root: Path, working: bytes, key: AuditKey | None, past: History | None = None) -> list[str]:
    """What is wrong with the working ledger (its bytes) against the committed history; [] when it extends it."""
    past = history(root) if past is None else past
    found = []
    committed_key = past.key_id()
    if key is not None and committed_key is not None and committed_key != key.key_id:
        found.append(f"the audit key is not the one the committed ledger was sealed with (key id {committed_key} "
                     f"in git history, {key.key_id} here): the key was replaced. Restore the original key from "
                     "your secret store; entries resealed under another key are not the recorded ones")
    broken = [v for v in past.versions if not working.startswith(v.blob)]
    if broken:
        longest = max(broken, key=lambda v: len(v.blob))
        have, had = working.decode("utf-8", "replace").splitlines(), longest.lines
        same = next((i for i, (a, b) in enumerate(zip(have, had, strict=False)) if a != b), min(len(have), len(had)))
        lost = had[same:]
        found.append(f"{LEDGER} does not extend the ledger committed in {longest.commit[:12]}: "
                     f"{'it is missing' if not working else f'it has {len(have)} lines'}, and committed entries "
                     f"{same}-{len(had) - 1} ({_describe(lost)}) are missing or changed. Forgetting recorded in git "
                     f"cannot be undone by a working copy: restore them with "
                     f"`git checkout {longest.commit[:12]} -- {LEDGER}`")
    return found


def _describe(lines: list[str]) -> str:
    """The requests the given ledger lines recorded, for a message (best effort: the lines come from git)."""
    named = []
    for line in lines:
        try:
            entry = loads(line)
            named.append(entry.get("request", {}).get("request_id") or entry.get("event", "?"))
        except (ValueError, AttributeError):
            named.append("?")
    shown = ", ".join(map(str, named[:8])) + (f" and {len(named) - 8} more" if len(named) > 8 else "")
    return f"{count(len(lines), 'entry')}: {shown}"
