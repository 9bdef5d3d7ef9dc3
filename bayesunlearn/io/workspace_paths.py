"""The rule every path setting obeys: relative, inside the workspace, outside the folders with a job of their own."""

from __future__ import annotations

from pathlib import PurePosixPath

RESERVED = (".git", ".dvc", "inbox", "audit")  # folders with a job of their own: no setting may point into them


def inside_workspace(value: str) -> str:
    parts = value.split("/")
    if (not value or PurePosixPath(value).is_absolute() or "\\" in value or any(p in ("", ".", "..") for p in parts)
            or any(not c.isprintable() for c in value)):
        raise ValueError(f"{value!r} must be a relative path inside the workspace (no '.', '..', empty or "
                         "non-printable parts, not absolute)")
    if parts[0] in RESERVED:
        raise ValueError(f"{value!r} lies inside {parts[0]}/, which belongs to "
                         f"{'git' if parts[0] == '.git' else 'DVC' if parts[0] == '.dvc' else 'the intake and audit'}")
    return value
