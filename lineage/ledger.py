"""The deletion ledger: an append-only, hash-chained JSON-lines file (audit/ledger.jsonl).

Each line is one event in canonical JSON (sorted keys, no spaces). Its
`entry_hash` is the SHA-256 of the line without that field, and it carries the
previous line's hash, so editing, deleting, reordering or inserting a line
breaks the chain. Cutting lines off the end leaves a shorter valid chain: the
head (sequence number and hash of the last line) is also kept in the local
audit config, next to the salt, so a truncation is caught too.

Record ids are stored only as HMAC-SHA256(salt, id). The salt lives outside the
ledger, in `.dvc/audit.local` (not committed) or $UNLEARN_AUDIT_SALT, so the
committed ledger alone cannot be used to confirm a guessed id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bayesunlearn import atomic
from bayesunlearn.errors import UserError

LEDGER = Path("audit") / "ledger.jsonl"
LOCAL_CONFIG = Path(".dvc") / "audit.local"
SALT_ENV = "UNLEARN_AUDIT_SALT"
GENESIS = "0" * 64


class LedgerError(UserError):
    """The ledger cannot be used as it is: no salt, another repository's ledger, unreadable lines."""


def canonical(entry: dict) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "entry_hash"}).encode()).hexdigest()


@dataclass(frozen=True)
class Salt:
    secret: bytes

    @property
    def salt_id(self) -> str:
        """Names the salt without revealing it, so a wrong salt is caught instead of matching nothing."""
        return hashlib.sha256(b"bayesunlearn-salt-id:" + self.secret).hexdigest()[:16]

    def hash_id(self, record_id: str) -> str:
        return hmac.new(self.secret, record_id.encode(), hashlib.sha256).hexdigest()

    def hash_ids(self, record_ids: Iterable[str]) -> list[str]:
        return sorted({self.hash_id(r) for r in record_ids})  # sorted: the order of a request says nothing


class Ledger:
    """The ledger of one workspace, with its local config (salt and head)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / LEDGER
        self.config_path = self.root / LOCAL_CONFIG

    # --- local config: salt and head -------------------------------------------------------
    def _config(self) -> dict:
        if not self.config_path.exists():
            return {}
        return json.loads(self.config_path.read_text())

    def salt(self, create: bool = False) -> Salt:
        """The salt; created on first use only while the ledger is empty (else its loss is an error)."""
        if os.environ.get(SALT_ENV):
            return Salt(bytes.fromhex(os.environ[SALT_ENV]))
        config = self._config()
        if "salt" in config:
            return Salt(bytes.fromhex(config["salt"]))
        if self.entries_raw():
            raise LedgerError(
                f"the audit salt is missing: {self.config_path} does not exist and ${SALT_ENV} is not set, but "
                f"{self.path} has entries hashed with salt id {self.entries_raw()[0].get('salt_id')}. Restore "
                f"{self.config_path} from your secret store (or set ${SALT_ENV}); without it record ids cannot "
                "be traced or checked.")
        if not create:
            raise LedgerError(f"no audit salt yet: {self.config_path} is created by the first ledger entry "
                              "(a flow run or `unlearn audit record`).")
        salt = Salt(secrets.token_bytes(32))
        self._write_config({**config, "salt": salt.secret.hex()})
        return salt

    def _write_config(self, config: dict) -> None:
        atomic.write_json(self.config_path, config)
        os.chmod(self.config_path, 0o600)

    def head(self) -> dict | None:
        return self._config().get("head")

    # --- reading ---------------------------------------------------------------------------
    def entries_raw(self) -> list[dict]:
        """Every line parsed, without checking the chain (see `verify.chain_problems`)."""
        if not self.path.exists():
            return []
        entries = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise LedgerError(f"{self.path}:{number} is not JSON ({err.msg}); the ledger was damaged. "
                                  "Restore it from git (`git checkout -- audit/ledger.jsonl`).") from None
            if not isinstance(entry, dict):
                raise LedgerError(f"{self.path}:{number} is not a JSON object; restore the ledger from git.")
            entries.append(entry)
        return entries

    def check_repository(self, repository: str) -> None:
        """Refuse a ledger copied from another repository: its events describe other data and commits."""
        lines = self.lines()
        owner = json.loads(lines[0]).get("repository") if lines else repository
        if owner != repository:
            raise LedgerError(f"{self.path} was written in repository {owner}, not in this one ({repository}); "
                              "it describes another project's data and commits. Move it away to start a ledger here.")

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    # --- writing ---------------------------------------------------------------------------
    def locked(self):
        return atomic.file_lock(self.root / ".dvc" / "tmp" / "audit-ledger.lock")

    def append(self, entry: dict, repository: str) -> dict:
        """Seal `entry` (sequence number, repository, salt id, chain) and append it atomically.

        The whole file is rewritten to a temporary file and renamed, so a crash
        leaves either the old ledger or the new one, never a partial line.
        """
        with self.locked():
            salt = self.salt(create=True)
            lines = self.lines()
            previous = json.loads(lines[-1]) if lines else None
            if previous is not None and previous.get("repository") != repository:
                raise LedgerError(
                    f"{self.path} belongs to repository {previous.get('repository')}, not to this one "
                    f"({repository}); it was copied from elsewhere. Move it away to start a ledger here.")
            sealed = {**entry, "seq": len(lines), "repository": repository, "salt_id": salt.salt_id,
                      "prev_hash": previous["entry_hash"] if previous else GENESIS}
            sealed["entry_hash"] = entry_hash(sealed)
            atomic.write_text(self.path, "".join(line + "\n" for line in [*lines, canonical(sealed)]))
            self._write_config({**self._config(), "head": {"seq": sealed["seq"], "hash": sealed["entry_hash"]}})
            return sealed
