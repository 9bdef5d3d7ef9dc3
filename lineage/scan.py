"""Byte-wise search for forgotten records: the proof step of `deletions purge`.

The needles are each forgotten record's id (not searched in .py and .md files,
which name example ids) and values, in every form the
project writes them: the text of the raw and prepared CSVs (`%.17g`) and the
raw float64 bytes (what `.npz` arrays hold). Short text values (fewer than
`MIN_TEXT` characters, e.g. "1.5") would match by chance and are searched only
as float64 bytes. Hits name the area, the file and the kind of needle, never
the value found.

What is not searched (README, "What a purge cannot erase"): git objects are
zlib-compressed (the history is not searched here), and remote storage other
than a local directory or S3 is skipped with a note.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bayesunlearn.io.datasets import ID

MIN_TEXT = 8
SKIP_DIRS = {".git", ".venv", "__pycache__"}
SOURCE_SUFFIXES = {".py", ".md"}  # code and docs name example ids such as "rec-000001"; values are searched there too


@dataclass(frozen=True)
class Needle:
    record: str   # salted hash of the record id (what the ledger may name)
    kind: str     # "id" | "value-text" | "value-float64"
    data: bytes


def needles_for(tables: Iterable[pd.DataFrame], record_ids: set[str], hash_id) -> list[Needle]:
    """Needles for the forgotten rows of `tables` (read with dtype=str, so the text is as on disk).

    A value that a kept record also holds (a category's 0/1 input, a round number) is no trace of the
    forgotten one and would be found wherever the kept record is: such values are not needles.
    """
    tables = list(tables)
    found: dict[tuple, Needle] = {}
    for record_id in record_ids:
        needle = Needle(hash_id(record_id), "id", record_id.encode())
        found[(needle.kind, needle.data)] = needle
    kept = set()
    for table in tables:
        kept.update(table[~table[ID].isin(record_ids)].drop(columns=[ID]).to_numpy().ravel().tolist())
    kept_numbers = {number for text in kept if (number := _number(text)) is not None}
    for table in tables:
        for row in table[table[ID].isin(record_ids)].itertuples(index=False):
            record = hash_id(getattr(row, ID))
            for column, text in zip(table.columns, row, strict=True):
                value = _number(text)
                if column == ID or value is None or value in kept_numbers:
                    continue  # text such as the subset column, or a value kept records share
                candidates = [Needle(record, "value-float64", struct.pack("<d", value))]
                if len(text) >= MIN_TEXT:
                    candidates.append(Needle(record, "value-text", text.encode()))
                for needle in candidates:
                    found.setdefault((needle.kind, needle.data), needle)
    return list(found.values())


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def walk(root: Path, skip: Iterable[Path] = ()) -> Iterator[Path]:
    skip = {p.resolve() for p in skip}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and (Path(folder) / d).resolve() not in skip]
        for name in files:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


def scan_bytes(blobs: Iterable[tuple[str, bytes]], needles: list[Needle], area: str) -> tuple[int, list[dict]]:
    """(files searched, hits) for named byte strings."""
    count, hits = 0, []
    for name, data in blobs:
        count += 1
        source = Path(name).suffix in SOURCE_SUFFIXES
        for needle in needles:
            if needle.kind == "id" and source:
                continue
            if needle.data in data:
                hits.append({"area": area, "file": name, "record": needle.record[:16], "kind": needle.kind})
    return count, hits


def local_files(root: Path, base: Path, skip: Iterable[Path] = ()) -> Iterator[tuple[str, bytes]]:
    for path in walk(base, skip):
        try:
            name = str(path.relative_to(root))
        except ValueError:
            name = str(path)
        yield name, path.read_bytes()


def s3_files(url: str, endpoint: str | None) -> Iterator[tuple[str, bytes]]:
    import s3fs  # installed with dvc-s3; credentials from the environment, as for DVC itself

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else {})
    base = url.removeprefix("s3://")
    for key in fs.find(base):
        yield f"s3://{key}", fs.cat_file(key)
