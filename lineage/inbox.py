"""The request inbox: triage each file with the one request schema, then move it where it belongs.

Folders (the only ones intake ever writes to): `inbox/` (new files),
`inbox/rejected/` (refused files, each with a `.reason.json` sidecar) and the
requests folder (`split.requests_dir`, accepted files named by their request
id). File names are never taken from request contents unchecked: the request
id must match the schema's safe alphabet before it names a file. These folders
must be real folders of the workspace: every name is resolved relative to a
descriptor of the folder, opened without following a link at any step, so
nothing is written outside them even if a folder is swapped for a link after
the check. The requests folder is never created (its absence is an error, not
"nothing to forget"). Nothing is ever overwritten: a rejected name
that is taken gets a number. An accepted request is stored as a new file
holding exactly the bytes that were validated (never the submitter's file,
which another hard link or an open handle could still change). A purge removes
the refused files that name its records, reasons included (`Inbox.forget`).

No Prefect here: the intake flow, the CLI and the tests share these functions.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from bayesunlearn.io import atomic, datasets, requests, settings
from bayesunlearn.errors import RequestError, UserError
from bayesunlearn.io.requests import DeletionRequest, KnownIds
from bayesunlearn.io.sections import Split

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
SIDECAR = ".reason.json"  # a rejected entry's reason is in `<its name>.reason.json` beside it


@dataclass(frozen=True)
class Verdict:
    kind: Literal["accept", "duplicate", "reject"]
    request: DeletionRequest | None
    rule: str     # the rule a rejected file breaks (e.g. "not-utf8"); "" when accepted
    reason: str   # the full message, naming the file
    data: bytes = b""  # the bytes that were validated (accepted files)

    @property
    def request_id(self) -> str:
        return self.request.request_id if self.request else ""


@dataclass(frozen=True)
class Inbox:
    """The intake folders of one workspace."""

    root: Path

    @property
    def folder(self) -> Path:
        return self.root / "inbox"

    @property
    def rejected(self) -> Path:
        return self.folder / "rejected"

    @cached_property
    def split(self) -> Split:
        """The split settings, read once: one run uses one requests folder and size cap throughout."""
        return settings.load(self.root / settings.PARAMS).split

    @property
    def requests(self) -> Path:
        return self.root / self.split.requests_dir

    @contextmanager
    def opened(self, folder: Path, create: bool = False) -> Iterator[int]:
        """A descriptor of one of the intake folders (see atomic.open_folder): every name the intake writes is
        resolved relative to it, so a folder swapped for a link after the check still leads nowhere else."""
        stack = ExitStack()
        try:
            fd = stack.enter_context(atomic.open_folder(self.root, folder.relative_to(self.root), create))
        except OSError as err:
            what = "a symbolic link or not a folder" if err.errno in (errno.ELOOP, errno.ENOTDIR) else "missing"
            remedy = ("a missing requests folder never means 'nothing to forget': check split.requests_dir and "
                      "restore it" if folder == self.requests else "replace it with a folder")
            raise UserError(f"{folder} (or a folder on its path) is {what}; the intake writes only into real "
                            f"folders of the workspace: {remedy}.") from None
        with stack:
            yield fd

    def check_folders(self) -> None:
        """Stop before anything moves unless inbox/, inbox/rejected/ (created if missing) and the requests
        folder (never created: its absence is an error, not 'nothing to forget') are real folders."""
        for folder, create in ((self.rejected, True), (self.requests, False)):
            with self.opened(folder, create):
                pass

    @property
    def max_bytes(self) -> int:
        return self.split.max_request_bytes

    def pending(self) -> list[Path]:
        """Inbox entries named *.json, in name order (any kind of entry: triage refuses what is not a file)."""
        if not os.path.lexists(self.folder):
            return []
        with self.opened(self.folder) as fd:
            return sorted(self.folder / name for name in os.listdir(fd) if name.endswith(".json"))

    def known_ids(self) -> KnownIds:
        return datasets.prepared_ids(self.root / "data" / "prepared")

    def in_force(self) -> list[DeletionRequest]:
        """The requests already in the requests folder (a damaged one there is the flow's failure, not the
        new file's: it raises)."""
        return requests.load_requests(self.requests, self.max_bytes)

    # --- deciding -----------------------------------------------------------------------------
    def triage(self, path: Path, existing: list[DeletionRequest], known: KnownIds) -> Verdict:
        """The verdict on one candidate file: the rules of the `split` stage, plus "already applied".

        The file alone is judged against the data; against the requests in force only for what they
        share (request ids, leaving some records), so a stale request there never rejects a good file.
        """
        try:
            data = requests.read_bytes(path, self.max_bytes)
            request = requests.parse_request(data, str(path))
            same = next((r for r in existing if r.request_id == request.request_id), None)
            if same is not None and _content(same) == _content(request):
                return Verdict("duplicate", request, "already-applied",
                               f"{path}: request {request.request_id} was already applied")
            target = self.requests / f"{request.request_id}.json"
            if same is None and os.path.lexists(target):
                raise RequestError(str(path), "name-taken", f"{target.name} already exists in the requests folder "
                                   "and holds another request; give this request another id")
            requests.check_against_data(request, known)
            requests.check_together([*existing, request], known)
        except RequestError as err:
            return Verdict("reject", None, err.rule, str(err))
        return Verdict("accept", request, "", "", data)

    # --- moving ------------------------------------------------------------------------------
    def accept(self, path: Path, verdict: Verdict) -> Path:
        """Store the validated bytes in the requests folder under the (checked) request id; remove `path`."""
        request = verdict.request
        if not requests.REQUEST_ID.fullmatch(request.request_id):  # checked by the schema; never trusted blindly
            raise RequestError(str(path), "bad-request-id", "request id is not safe to name a file")
        name = f"{request.request_id}.json"
        with self.opened(self.requests) as target, self.opened(path.parent) as source:
            atomic.write_new(name, verdict.data, target)
            os.unlink(path.name, dir_fd=source)
        return self.requests / name

    def reject(self, path: Path, verdict: Verdict) -> Path:
        """Move a refused entry (file, link, folder, FIFO: whatever it is) to inbox/rejected/ with its reason."""
        note = {"file": _printable(path.name), "rule": verdict.rule, "reason": _printable(verdict.reason)}
        with self.opened(path.parent) as source, self.opened(self.rejected, create=True) as target:
            name = _free_name(target, path.name)
            atomic.move_new(source, path.name, target, name)
            atomic.write_new(f"{name}{SIDECAR}", json.dumps(note, indent=2, sort_keys=True).encode(), target)
        return self.rejected / name

    # --- purging ------------------------------------------------------------------------------
    def naming(self, folder: Path, record_ids: Collection[str]) -> list[str]:
        """The entries of an intake folder whose bytes hold one of `record_ids` (regular files only: a link,
        folder or FIFO is not read), in name order."""
        if not os.path.lexists(folder):
            return []
        needles = [record_id.encode() for record_id in record_ids]
        with self.opened(folder) as fd:
            return [name for name in sorted(os.listdir(fd)) if any(n in _contents(fd, name) for n in needles)]

    def forget(self, record_ids: Collection[str]) -> list[str]:
        """Remove every refused entry of inbox/rejected/ that names one of `record_ids`, in itself or in its
        reason, with its sidecar (a purge deletes the records' ids; a refused file is no record anything
        reads). Returns the removed entries' names. A link, folder or FIFO is judged by its sidecar only."""
        named = self.naming(self.rejected, record_ids)
        if not named:
            return []
        with self.opened(self.rejected) as fd:
            names = set(os.listdir(fd))
            # a sidecar is `<entry>.reason.json` beside its entry; an entry may itself end in .reason.json
            entries = {n.removesuffix(SIDECAR) if n.endswith(SIDECAR) and n.removesuffix(SIDECAR) in names else n
                       for n in named}
            for name in entries:
                _remove(fd, name)
                _remove(fd, f"{name}{SIDECAR}")
        return sorted(entries)

    def return_to_inbox(self, applied: Path) -> Path:
        """Undo an acceptance after a failed run: the request is pending again."""
        with self.opened(applied.parent) as source, self.opened(self.folder, create=True) as target:
            name = _free_name(target, applied.name)
            atomic.move_new(source, applied.name, target, name)
        return self.folder / name


def _content(request: DeletionRequest) -> tuple:
    return (request.request_id, frozenset(request.record_ids), request.reason, request.received_at)


def _printable(text: str) -> str:
    """Text safe to store and log: undecodable bytes of file names and surrogates escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _free_name(folder: int, name: str) -> str:
    """`name` made safe (a sanitised, bounded copy of an untrusted name), numbered if taken in `folder`."""
    safe = SAFE_NAME.sub("_", _printable(name))[:100].lstrip(".") or "request.json"
    stem, dot, suffix = safe.rpartition(".") if "." in safe else (safe, "", "")
    candidate, number = safe, 2
    while _exists(folder, candidate) or _exists(folder, f"{candidate}{SIDECAR}"):
        candidate = f"{stem}-{number}{dot}{suffix}" if dot else f"{safe}-{number}"
        number += 1
    return candidate


def _exists(folder: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _contents(folder: int, name: str) -> bytes:
    """A regular file's bytes; nothing for anything else (never blocks on a FIFO, never follows a link)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read()
    finally:
        os.close(fd)


def _remove(folder: int, name: str) -> None:
    try:
        if stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            shutil.rmtree(name, dir_fd=folder)
        else:
            os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        pass


def sidecar(rejected: Path) -> dict:
    return json.loads(rejected.with_name(rejected.name + SIDECAR).read_text())
