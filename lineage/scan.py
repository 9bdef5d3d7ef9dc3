"""Byte-wise search for forgotten records: the proof step of `deletions purge`.

The needles are each forgotten record's id (not searched in .py and .md files,
which name example ids), values and whole rows, in every form the
project writes them: the text of the raw and prepared CSVs (`%.17g`) and the
raw float64 bytes (what `.npz` arrays hold). Short text values (fewer than
`MIN_TEXT` characters, e.g. "1.5") would match by chance and are searched only
as float64 bytes; values and rows that kept records also hold are not searched. Hits name the area, the file and the kind of needle, never
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

from bayesunlearn.io.datasets import ID, SUBSET, TARGET

MIN_TEXT = 8
SKIP_DIRS = {".git", ".venv", "__pycache__"}
SOURCE_SUFFIXES = {".py", ".md"}  # code and docs name example ids such as "rec-000001"; values are searched there too


@dataclass(frozen=True)
class Needle:
    record: str   # salted hash of the record id (what the ledger may name)
    kind: str     # "id" | "value-text" | "value-float64" | "row-text" | "row-float64"
    data: bytes


def needles_for(tables: Iterable[pd.DataFrame], record_ids: set[str], hash_id,
                vocabulary: Iterable[str] = ()) -> list[Needle]:
    """Needles for the forgotten rows of `tables` (read with dtype=str, so the text is as on disk).

    Each forgotten row gives its id, its values and the row itself (its text without the id, and its inputs
    as consecutive float64: a row of an `.npz` array). A value or row that a kept record also holds (a
    category's 0/1 input, a round number) is no trace of the forgotten one and would be found wherever the
    kept record is: it is not a needle. The row needles still find a record whose every value is shared.
    Nor is a value of the schema's `vocabulary` (a class label, which params.yaml and the code declare
    even when a purge removes every record of the class).
    """
    tables = list(tables)
    found: dict[tuple, Needle] = {}

    def add(needle: Needle) -> None:
        found.setdefault((needle.kind, needle.data), needle)

    for record_id in record_ids:
        add(Needle(hash_id(record_id), "id", record_id.encode()))
    kept_cells, kept_rows = set(), set()
    for table in tables:
        kept = table[~table[ID].isin(record_ids)].drop(columns=[ID])
        kept_cells.update(kept.to_numpy().ravel().tolist())
        kept_rows.update(kept.itertuples(index=False, name=None))
    kept_cells.update(vocabulary)
    kept_numbers = {number for text in kept_cells if (number := _number(text)) is not None}
    for table in tables:
        inputs = [i for i, c in enumerate(table.columns) if c not in (ID, TARGET, SUBSET)]
        for row in table[table[ID].isin(record_ids)].itertuples(index=False, name=None):
            record = hash_id(row[list(table.columns).index(ID)])
            values = tuple(text for column, text in zip(table.columns, row, strict=True) if column != ID)
            for text in values:
                value = _number(text)
                if text in kept_cells or (value is not None and value in kept_numbers):
                    continue  # a value kept records share
                if value is not None:
                    add(Needle(record, "value-float64", struct.pack("<d", value)))
                if len(text) >= MIN_TEXT:
                    add(Needle(record, "value-text", text.encode()))
            if len(values) < 2 or values in kept_rows:
                continue  # one value is covered above; a duplicate of a kept row is no trace
            if len(line := ",".join(values)) >= MIN_TEXT:
                add(Needle(record, "row-text", line.encode()))
            numbers = [_number(row[i]) for i in inputs]
            if len(numbers) > 1 and None not in numbers:
                add(Needle(record, "row-float64", struct.pack(f"<{len(numbers)}d", *numbers)))
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
