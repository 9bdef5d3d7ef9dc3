"""Write files so that a crash never leaves a half-written artifact behind.

Every writer goes to a temporary file in the destination folder, flushes it to
disk, renames it over the target (atomic on POSIX file systems) and then
flushes the folder, so that the rename itself survives a power cut. Files get
the mode the umask gives (`mkstemp` would make every artifact 0600).
`write_new` and `move_new` never replace a file: they hard-link the finished
file under its name, inside folders reached through descriptors (`open_folder`),
for the folders that people outside the project write into (the inbox).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock


def _create_temporary(folder: Path, prefix: str, suffix: str, mode: int) -> Path:
    """A new empty file with a random name; `mode` is filtered by the umask, as for any new file."""
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, mode))
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {folder}")


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename or a new entry in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "", mode: int = 0o666) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temporary(target.parent, f".{target.name}.", suffix + ".tmp", mode)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
        fsync_folder(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | os.PathLike, text: str, mode: int = 0o666) -> None:
    with atomic_path(target, mode=mode) as tmp:
        tmp.write_text(text)


def write_json(target: str | os.PathLike, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_with(target: str | os.PathLike, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Atomically write `target` with a function that writes to a given path.

    `suffix` keeps the extension for writers that insist on one (e.g. np.savez).
    """
    with atomic_path(target, suffix=suffix) as tmp:
        writer(tmp)


@contextmanager
def open_folder(root: str | os.PathLike, relative: str | os.PathLike, create: bool = False) -> Iterator[int]:
    """A descriptor of the folder `root/relative`, reached one component at a time without following a
    symbolic link (O_NOFOLLOW at every step), each missing one created when `create`. Names used relative
    to it (`dir_fd=`) stay inside, even if a component is swapped for a link afterwards.
    OSError when a component is a link (ELOOP), not a folder (ENOTDIR) or missing."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open(root, flags)
    try:
        for part in Path(relative).parts:
            if create:
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass
            child = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def write_new(name: str, data: bytes, dir_fd: int) -> None:
    """Write a new file `name` in the folder `dir_fd` holding `data`: complete or absent after a crash,
    written through the descriptor that created it; FileExistsError if the name is taken."""
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)  # never replaces
        os.fsync(dir_fd)
    finally:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass


def move_new(source: int, name: str, target: int, new_name: str) -> None:
    """Move `name` from the folder `source` to `new_name` in the folder `target` (descriptors), never replacing
    a file there: a hard link then an unlink, both folders flushed. A folder cannot be hard-linked: it is
    renamed (callers pick a free name under their lock)."""
    if stat.S_ISDIR(os.stat(name, dir_fd=source, follow_symlinks=False).st_mode):
        os.rename(name, new_name, src_dir_fd=source, dst_dir_fd=target)
    else:
        os.link(name, new_name, src_dir_fd=source, dst_dir_fd=target, follow_symlinks=False)
        os.unlink(name, dir_fd=source)
    os.fsync(target)
    os.fsync(source)


def file_lock(path: str | os.PathLike) -> FileLock:
    """An exclusive lock on `path` (created if needed), held for a `with` block; serialises writers
    across threads and processes."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path, thread_local=False)
