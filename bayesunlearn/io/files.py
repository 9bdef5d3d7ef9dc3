"""Read a file that may be hostile: a regular file of bounded size, or an error; never a hang.

One reader for request files, the ledger, its key and head, and params.yaml: a
symbolic link (unless followed on purpose), a folder, a FIFO or a device is
refused before it is opened (a FIFO would block, /dev/zero would never end),
the file is opened without following links and without blocking, checked again
through its descriptor (it may have been swapped since), and read up to the cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegular(ValueError):
    """The path is not a regular file; `what` says what it is."""

    def __init__(self, what: str) -> None:
        super().__init__(f"is {what}, not a regular file")
        self.what = what


class TooLarge(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"is {size:,} bytes, more than the {limit:,} allowed")
        self.size, self.limit = size, limit


def _kind(mode: int) -> str:
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode)
            else "a FIFO, socket or device")


def read_regular(path: str | os.PathLike, max_bytes: int, follow_symlinks: bool = False) -> bytes:
    """The bytes of a regular file of at most `max_bytes`: OSError (missing, unreadable), NotRegular or TooLarge."""
    info = os.stat(path, follow_symlinks=follow_symlinks)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegular(_kind(info.st_mode))
    if info.st_size > max_bytes:
        raise TooLarge(info.st_size, max_bytes)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    with os.fdopen(os.open(Path(path), flags), "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):  # swapped for something else since the first look
            raise NotRegular(_kind(mode))
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(len(data), max_bytes)
    return data
