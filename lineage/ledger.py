"""The deletion ledger: an append-only, keyed hash chain of JSON lines (audit/ledger.jsonl).

Each line is one event in canonical JSON (sorted keys, no spaces). Its
`entry_hash` is an HMAC-SHA256, under a secret key, of the line without that
field, and it carries the previous line's hash: editing, deleting, reordering
or inserting a line breaks the chain, and without the key nobody can compute
a valid hash for a forged line. Cutting lines off the end leaves a shorter
valid chain: the committed history is the anchor against that (every committed
version must be a prefix of the working ledger, see anchor.py), and the head
(sequence number and hash of the last line) of each working copy, kept next to
the key outside the repository, covers the lines not committed yet. The head is
derived from the ledger: a working copy without one (a clone, a moved folder, a
crash before the first head write) adopts a ledger that extends its history.

The key lives outside the repository: in $UNLEARN_AUDIT_KEY (hex), or in the
file `<audit home>/<repository id>/key` (mode 0600), created with the first
entry. The audit home is $UNLEARN_AUDIT_HOME, by default
~/.config/bayesunlearn/audit. Keep a copy of the key in a secret store: with
the key lost, record ids cannot be traced and the chain cannot be checked.
Record ids are stored only as HMACs under a key derived from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from bayesunlearn.io import atomic, files
from bayesunlearn.errors import Exit, UserError

from .entries import Entry, LedgerEntry

LEDGER = Path("audit") / "ledger.jsonl"
KEY_ENV = "UNLEARN_AUDIT_KEY"
HOME_ENV = "UNLEARN_AUDIT_HOME"
GENESIS = "0" * 64
MAX_LEDGER_BYTES = 1 << 30   # a ledger this large is damage (a link to /dev/zero), not history
HASH = re.compile(r"[0-9a-f]{64}")
_ENTRY = TypeAdapter(Entry)


class LedgerError(UserError):
    """The ledger or its key cannot be used as they are: missing key, another repository's ledger, damage."""

    exit_code = Exit.LEDGER


def canonical(entry: dict) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def loads(text: str):
    """JSON or ValueError: a line nested too deep or holding a 5,000-digit number is damage like any other."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_text(path: Path, max_bytes: int = MAX_LEDGER_BYTES) -> str:
    """A regular file's UTF-8 text (OSError or ValueError): see files.read_regular."""
    return files.read_regular(path, max_bytes).decode("utf-8")


def audit_home() -> Path:
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "bayesunlearn" / "audit"


@dataclass(frozen=True)
class AuditKey:
    secret: bytes

    @classmethod
    def from_hex(cls, text: str, where: str) -> AuditKey:
        try:
            secret = bytes.fromhex(text.strip())
        except ValueError:
            raise LedgerError(f"the audit key in {where} is not hexadecimal; restore it from your secret "
                              "store.") from None
        if len(secret) < 16:
            raise LedgerError(f"the audit key in {where} has {len(secret)} bytes; it needs at least 16.")
        return cls(secret)

    def _derived(self, purpose: bytes) -> bytes:
        return hmac.new(self.secret, purpose, hashlib.sha256).digest()

    @property
    def key_id(self) -> str:
        """Names the key without revealing it, so a wrong key is caught instead of matching nothing."""
        return hashlib.sha256(b"bayesunlearn-key-id:" + self.secret).hexdigest()[:16]

    def hash_id(self, record_id: str) -> str:
        return hmac.new(self._derived(b"record-id"), record_id.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()

    def hash_ids(self, record_ids: Iterable[str]) -> list[str]:
        return sorted({self.hash_id(r) for r in record_ids})  # sorted: the order of a request says nothing

    def seal(self, entry: dict) -> str:
        """The entry's hash: an HMAC of its canonical form without the hash itself."""
        body = canonical({k: v for k, v in entry.items() if k != "entry_hash"})
        return hmac.new(self._derived(b"chain"), body.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


class Ledger:
    """The ledger of one repository, with its key and head in the audit home."""

    def __init__(self, root: Path, repository: str) -> None:
        self.root = Path(root)
        self.repository = repository
        self.path = self.root / LEDGER
        self.local = audit_home() / repository

    @property
    def key_path(self) -> Path:
        return self.local / "key"

    @property
    def head_path(self) -> Path:
        """The head of this working copy's ledger (clones of one repository share the key, not the head)."""
        where = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        return self.local / f"head-{where}.json"

    # --- key and head ------------------------------------------------------------------------
    def key(self, create: bool = False) -> AuditKey:
        """The key; created on first use only while the ledger is empty (else its loss is an error)."""
        if os.environ.get(KEY_ENV):
            return AuditKey.from_hex(os.environ[KEY_ENV], f"${KEY_ENV}")
        text = None
        try:
            text = read_text(self.key_path, 4096)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as err:
            raise LedgerError(f"cannot read the audit key {self.key_path} ({err}).") from None
        if text is not None:
            return AuditKey.from_hex(text, str(self.key_path))
        if self.lines():
            raise LedgerError(
                f"the audit key is missing: {self.key_path} does not exist and ${KEY_ENV} is not set, but "
                f"{self.path} has entries. Restore the key from your secret store (or set ${KEY_ENV}); without "
                "it the chain cannot be checked and record ids cannot be traced.")
        if not create:
            raise LedgerError(f"no audit key yet: {self.key_path} is created by the first ledger entry "
                              "(a flow run or `deletions audit record`).")
        key = AuditKey(secrets.token_bytes(32))
        self.local.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.key_path, key.secret.hex() + "\n", mode=0o600)
        return key

    def available_key(self) -> AuditKey | None:
        """The key where there is one ($UNLEARN_AUDIT_KEY or the key file); None where there is none (a clone
        on a machine without the secret)."""
        return self.key() if os.environ.get(KEY_ENV) or os.path.lexists(self.key_path) else None

    def head(self) -> Head | None:
        if not os.path.lexists(self.head_path):
            return None
        try:
            raw = loads(read_text(self.head_path, 4096))
            if not (isinstance(raw, dict) and type(raw.get("seq")) is int and raw["seq"] >= 0
                    and isinstance(raw.get("hash"), str) and HASH.fullmatch(raw["hash"])):
                raise ValueError("not {seq: a count, hash: 64 hex digits}")
            return Head(raw["seq"], raw["hash"])
        except (OSError, ValueError) as err:
            raise LedgerError(f"the ledger head {self.head_path} is damaged ({type(err).__name__}); without it a "
                              "cut-off ledger cannot be detected. Restore it from a backup, or delete it to trust "
                              "the ledger as it is.") from None

    def write_head(self, seq: int, digest: str) -> None:
        self.local.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.head_path, json.dumps({"seq": seq, "hash": digest}) + "\n", mode=0o600)

    # --- reading ---------------------------------------------------------------------------
    def text(self) -> str:
        """The working ledger as it is on disk ('' when there is none)."""
        if not os.path.lexists(self.path):
            return ""
        try:
            return read_text(self.path)
        except (OSError, ValueError) as err:
            raise LedgerError(f"{self.path} cannot be read ({err}); restore it from git "
                              "(`git checkout -- audit/ledger.jsonl`).") from None

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def parse(self, lines: list[str]) -> list[LedgerEntry]:
        """These lines as typed entries, unchecked: for `verify`, which reports the chain itself, and for
        readers without the key. Everything else reads `entries()`."""
        return [parse_line(line, f"{self.path}:{number}") for number, line in enumerate(lines, start=1)]

    def problems(self, text: str, allow_empty: bool = True) -> list[str]:
        """Everything that makes this working ledger untrustworthy: its chain under the key and head, the
        committed history it must extend (anchor.py), and, unless `allow_empty`, being missing or empty."""
        from . import anchor  # anchor reads git through repo.py, which needs this module first

        lines = text.splitlines()
        key = self.key() if lines else self.available_key()
        found = chain_problems(lines, key, self.repository, self.head()) if key is not None and lines else []
        found += anchor.problems(self.root, text.encode(), key)
        if not lines and not found:
            if self.head() is not None:
                found.append(f"{LEDGER} is missing or empty, but this working copy wrote entries (its head is in "
                             f"{self.head_path}): restore the ledger from git (`git checkout -- {LEDGER}`)")
            elif not allow_empty:
                found.append(f"{LEDGER} is missing or empty: nothing is recorded in this working copy, so nothing "
                             "can be read from it (if entries were recorded elsewhere, pull or restore them from git)")
        return found

    def check(self, text: str, allow_empty: bool = True,
              refusal: str = "nothing is read from a ledger that may be forged or cut off") -> None:
        """Raise LedgerUntrusted unless the ledger passes every check of `problems`."""
        found = self.problems(text, allow_empty)
        if found:
            raise LedgerUntrusted(self.path, found, refusal)

    def entries(self, allow_empty: bool = False) -> list[LedgerEntry]:
        """Every entry, from one read of a ledger that checks out (chain, key, head and committed history):
        nothing acts on a forged, edited, reordered, cut-off or missing ledger. Readers refuse an empty one
        too; writers (`allow_empty`) start it."""
        text = self.text()
        self.check(text, allow_empty)
        return self.parse(text.splitlines())

    def check_repository(self) -> None:
        """Refuse a ledger copied from another repository: its events describe other data and commits."""
        owner = repository_of(self.root)
        if owner is not None and owner != self.repository:
            raise LedgerError(f"{self.path} was written in repository {owner}, not in this one ({self.repository}); "
                              "it describes another project's data and commits. Move it away to start a ledger here.")

    # --- writing ---------------------------------------------------------------------------
    def locked(self):
        return atomic.file_lock(self.root / ".dvc" / "tmp" / "audit-ledger.lock")

    def append(self, events: list[dict]) -> list[LedgerEntry]:
        """Seal `events` (sequence number, repository, key id, chain) and append them in one atomic write.

        The whole file is rewritten to a temporary file and renamed, so a crash leaves the
        old ledger or the new one, never part of a run's entries. Appending to a ledger that
        fails its checks is refused: it would seal a forgery, or a cut-off history, into the chain.
        """
        with self.locked():
            self.check_repository()
            key = self.key(create=True)
            text = self.text()
            self.check(text, refusal="refusing to append")
            lines = text.splitlines()
            previous = loads(lines[-1])["entry_hash"] if lines else GENESIS
            sealed_lines, sealed = [], []
            for event in events:
                entry = {**event, "seq": len(lines) + len(sealed_lines), "repository": self.repository,
                         "key_id": key.key_id, "prev_hash": previous}
                entry["entry_hash"] = previous = key.seal(entry)
                line = canonical(entry)
                sealed.append(parse_line(line, "new entry"))  # a malformed event fails here, before writing
                sealed_lines.append(line)
            atomic.write_text(self.path, "".join(line + "\n" for line in [*lines, *sealed_lines]))
            self.write_head(sealed[-1].seq, sealed[-1].entry_hash)
            return sealed

    def restore(self, text: str, head: Head | None) -> None:
        """Put back a ledger and head read before an append whose commit was refused: nothing half-done."""
        with self.locked():
            atomic.write_text(self.path, text)
            if head is None:
                self.head_path.unlink(missing_ok=True)
            else:
                self.write_head(head.seq, head.hash)

    def remove_temporaries(self) -> list[Path]:
        """Temporary files of a ledger write that a kill interrupted (the ledger itself is old or new, never half)."""
        leftovers = sorted(self.path.parent.glob(f".{self.path.name}.*.tmp"))
        for path in leftovers:
            path.unlink(missing_ok=True)
        return leftovers


class LedgerUntrusted(LedgerError):
    """The ledger fails a check: every command refuses to read it, with the same message."""

    def __init__(self, path: Path, problems: list[str], refusal: str) -> None:
        more = (f" (and {len(problems) - 1} more problems: `deletions audit verify` lists them)"
                if len(problems) > 1 else "")
        super().__init__(f"{path} cannot be trusted: {problems[0]}{more}; {refusal}.")
        self.path, self.problems, self.refusal = path, problems, refusal

    def __reduce__(self):  # picklable across processes (Prefect) despite the extra arguments
        return type(self), (self.path, self.problems, self.refusal)


def parse_line(line: str, where: str) -> LedgerEntry:
    try:
        return _ENTRY.validate_python(loads(line))
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise LedgerError(f"{where} is not a ledger entry ({'.'.join(map(str, first['loc']))}: {first['msg']}); "
                          "restore the ledger from git.") from None
    except ValueError as err:
        raise LedgerError(f"{where} is not JSON ({err}); the ledger was damaged. Restore it from git "
                          "(`git checkout -- audit/ledger.jsonl`).") from None


def repository_of(root: Path) -> str | None:
    """The repository named by the ledger's first line (None for an empty or unreadable ledger)."""
    path = Path(root) / LEDGER
    try:
        first = loads(read_text(path).partition("\n")[0])
        return first.get("repository") if isinstance(first, dict) else None
    except (OSError, ValueError):
        return None


def chain_problems(lines: list[str], key: AuditKey, repository: str, head: Head | None) -> list[str]:
    """Everything wrong with the chain of `lines`: damage, edits, forgeries, gaps, and lines cut off after the
    head's entry (a working copy without a head relies on the committed history alone: anchor.py)."""
    problems, previous = [], GENESIS
    for number, line in enumerate(lines):
        where = f"line {number + 1}"
        try:
            entry = loads(line)
        except ValueError:
            problems.append(f"{where}: not JSON (damaged or cut off)")
            previous = None
            continue
        if not isinstance(entry, dict):
            problems.append(f"{where}: not a JSON object")
            previous = None
            continue
        if canonical(entry) != line:
            problems.append(f"{where}: not in canonical form (edited by hand?)")
        if entry.get("key_id") != key.key_id:
            problems.append(f"{where}: sealed with key {entry.get('key_id')}, the local key is {key.key_id}")
        elif not hmac.compare_digest(str(entry.get("entry_hash")), key.seal(entry)):
            problems.append(f"{where}: its hash is not the HMAC of its content under the audit key "
                            "(edited or forged)")
        if entry.get("seq") != number:
            problems.append(f"{where}: sequence number {entry.get('seq')}, expected {number} "
                            "(a line was deleted, inserted or moved)")
        if previous is not None and entry.get("prev_hash") != previous:
            problems.append(f"{where}: does not link to the line before it (deleted, inserted or reordered)")
        if entry.get("repository") != repository:
            problems.append(f"{where}: written in repository {entry.get('repository')}, this is {repository}")
        try:
            _ENTRY.validate_python(entry)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            problems.append(f"{where}: not a ledger entry ({'.'.join(map(str, first['loc']))}: {first['msg']})")
        previous = entry.get("entry_hash")
    if head is not None:
        if _seal_at(lines, head.seq) != head.hash:  # a longer chain is fine: entries pulled from a clone
            where = "another entry there" if head.seq < len(lines) else "ends before it"
            problems.append(f"the last entry written here was {head.seq} ({head.hash[:12]}), but the ledger has "
                            f"{len(lines)} lines and {where}: lines were cut off the end or replaced")
    return problems


def _seal_at(lines: list[str], seq: int) -> str | None:
    """The hash of entry `seq`, if the ledger holds it."""
    try:
        entry = loads(lines[seq]) if 0 <= seq < len(lines) else None
    except ValueError:
        return None
    return entry.get("entry_hash") if isinstance(entry, dict) and entry.get("seq") == seq else None
