"""Deletion requests: the one schema every path validates with (split stage, intake flow, CLI).

A request is one JSON file, for example
    {"request_id": "req-0001", "record_ids": ["rec-000012", ...],
     "reason": "GDPR Art. 17 erasure", "received_at": "2026-11-20T09:30:00Z"}

Request files come from outside and are treated as hostile. The rules, checked
in this order, each a `RequestError` that names the file and the rule:
- a regular file (no symbolic link, folder, FIFO or device), at most
  `split.max_request_bytes` bytes (1 MB by default);
- UTF-8 without a byte-order mark (RFC 8259 §8.1: JSON text is UTF-8; a BOM
  is refused rather than guessed around);
- JSON with at most MAX_NESTING levels of arrays and objects, numbers of at
  most MAX_NUMBER_CHARS characters, no NaN/Infinity, no key twice in one object;
- exactly the four fields above; `request_id` from a safe alphabet (it names
  a file); `record_ids` a non-empty list of strings; text without control
  control, format (bidirectional overrides, zero-width) or surrogate
  characters; `received_at` a date (2026-11-20) or an RFC 3339 time with its
  offset (2026-11-20T09:30:00Z);
- against the data: every record id names a training record (not a test
  record); request ids are unique; together the requests leave at least one
  training record.
Nothing else escapes: every failure is a RequestError.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bayesunlearn.errors import RequestError
from bayesunlearn.io import files

DEFAULT_MAX_BYTES = 1_000_000
MAX_NESTING = 4          # a request is an object holding one list; deeper nesting has no meaning here
MAX_NUMBER_CHARS = 32    # Python refuses to convert integers of over 4,300 digits; far smaller suffices
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_RECORD_ID_CHARS = 256
FIELDS = ("request_id", "record_ids", "reason", "received_at")
# Either a whole string (an unterminated one runs to the end: linear, no backtracking) or one bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)
# A date, or a date and time with an explicit offset: a time without one means different instants to different readers.
RECEIVED_AT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?", re.ASCII)
# Control, format (U+202E, U+200B...) and surrogate characters: they hide or reorder text in logs and terminals.
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs")


@dataclass(frozen=True)
class DeletionRequest:
    request_id: str
    record_ids: tuple[str, ...]
    reason: str
    received_at: str
    source: str  # the file it came from, for messages


@dataclass(frozen=True)
class KnownIds:
    """Record ids of the prepared data: requests may name training ids only."""

    train: frozenset[str]
    test: frozenset[str]

    def where(self, record_id: str) -> str:
        return "train" if record_id in self.train else "test" if record_id in self.test else "unknown"


# --- bytes -> JSON -------------------------------------------------------------------------------
def read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; never follows a link, never blocks on a FIFO."""
    source = str(path)
    try:
        return files.read_regular(path, max_bytes)
    except files.NotRegular as err:
        raise RequestError(source, "not-a-regular-file",
                           f"is {err.what}; a request must be a regular file (copy it, do not link it)") from None
    except files.TooLarge as err:
        raise RequestError(source, "too-large", f"is {err.size:,} bytes, more than the {err.limit:,} allowed "
                           "(split.max_request_bytes); split it into several requests") from None
    except OSError as err:
        raise RequestError(source, "unreadable", f"cannot be read ({err.strerror})") from None


def decode_json(data: bytes, source: str) -> Any:
    """Strict UTF-8, bounded nesting and number length, no duplicate keys, no NaN: or a RequestError."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise RequestError(source, "byte-order-mark", "starts with a UTF-8 byte-order mark; save it as UTF-8 "
                           "without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(source, "not-utf8", f"is not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                           f"{err.start}); save it as UTF-8") from None
    depth = deepest = 0
    for token in _TOKENS.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif bracket in "]}":
            depth -= 1
    if deepest > MAX_NESTING:
        raise RequestError(source, "nesting-too-deep", f"nests arrays and objects {deepest} levels deep; "
                           f"a request needs at most 2 (limit {MAX_NESTING})")

    def number(kind):
        def parse(literal: str):
            if len(literal) > MAX_NUMBER_CHARS:
                raise RequestError(source, "number-too-long", f"holds a number of {len(literal)} characters "
                                   f"(limit {MAX_NUMBER_CHARS})")
            return kind(literal)
        return parse

    def constant(name: str):
        raise RequestError(source, "not-standard-json", f"holds {name}, which is not standard JSON")

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict:
        counts = Counter(key for key, _ in pairs)  # linear: a request of 100k keys is refused in milliseconds
        twice = sorted(_printable(k) for k, n in counts.items() if n > 1)
        if twice:
            raise RequestError(source, "duplicate-key", f"names the key {twice[0]} twice in one object; "
                               "JSON readers disagree on which one counts")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=unique_keys, parse_int=number(int), parse_float=number(float),
                          parse_constant=constant)
    except RequestError:
        raise
    except json.JSONDecodeError as err:
        raise RequestError(source, "malformed-json", f"malformed JSON ({err.msg} at line {err.lineno}, column "
                           f"{err.colno}); fix the file or move it out of the requests folder") from None
    except (RecursionError, ValueError) as err:  # bounded above; kept so that nothing else can escape
        raise RequestError(source, "malformed-json", f"cannot be read as JSON ({type(err).__name__})") from None


def _printable(value: str) -> str:
    """A repr safe to print and log: unpaired surrogates and control characters escaped."""
    return repr(value.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"))[:80]


# --- JSON -> request --------------------------------------------------------------------------
def _clean_text(value: str, what: str, max_chars: int) -> str:
    if len(value) > max_chars:
        raise ValueError(f"{what} is {len(value)} characters long (limit {max_chars})")
    bad = next((c for c in value if unicodedata.category(c) in REFUSED_CATEGORIES), None)
    if bad is not None:
        raise ValueError(f"{what} holds the control, format or surrogate character U+{ord(bad):04X}")
    return value


def record_id_problem(value: str) -> str | None:
    """What makes `value` unusable as a record id (None if nothing): the rule for requests and data alike."""
    if not value:
        return "every entry of record_ids must be a non-empty string"
    try:
        _clean_text(value, f"record id {_printable(value)}", MAX_RECORD_ID_CHARS)
    except ValueError as err:
        return str(err)
    return None


class _Schema(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    request_id: str
    record_ids: Annotated[list[str], Field(min_length=1)]
    reason: str
    received_at: str

    @field_validator("request_id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("request_id is empty")
        if not REQUEST_ID.fullmatch(value) or value in (".", ".."):
            raise ValueError(f"request_id {_printable(value)} is not a safe id: 1 to 128 of A-Z a-z 0-9 . _ -, "
                             "starting with a letter or digit (it names the request's file)")
        return value

    @field_validator("record_ids")
    @classmethod
    def _record_ids(cls, values: list[str]) -> list[str]:
        problem = next(filter(None, map(record_id_problem, values)), None)
        if problem:
            raise ValueError(problem)
        return values

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return _clean_text(value, "reason", 2000)

    @field_validator("received_at")
    @classmethod
    def _iso_time(cls, value: str) -> str:
        try:
            if not RECEIVED_AT.fullmatch(value):
                raise ValueError
            datetime.fromisoformat(value.replace("Z", "+00:00"))  # the ranges: no month 13
        except ValueError:
            raise ValueError(f"received_at {_printable(value)} is not a date (2026-11-20) or an RFC 3339 time "
                             "with its offset (2026-11-20T09:30:00Z)") from None
        return value


def _schema_error(source: str, err: ValidationError) -> RequestError:
    """The first problem, in the words of the rule it breaks."""
    errors = err.errors(include_url=False)
    extra = sorted(_printable(str(e["loc"][0])) for e in errors if e["type"] == "extra_forbidden")
    first = errors[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    kind = first["type"]
    if kind == "missing":
        return RequestError(source, "missing-field", f"missing field {field!r}; a request needs {sorted(FIELDS)}")
    if extra and kind == "extra_forbidden":
        return RequestError(source, "unknown-field", f"unknown fields [{', '.join(extra)}]; allowed are "
                            f"{sorted(FIELDS)}")
    if field == "record_ids" and kind == "too_short":
        return RequestError(source, "empty-request", "empty request (record_ids is []); name at least one "
                            "record to forget")
    if field == "record_ids" and len(first["loc"]) > 1:
        return RequestError(source, "bad-record-id", "every entry of record_ids must be a non-empty string")
    if kind == "value_error":
        rule = {"record_ids": "bad-record-id"}.get(field, f"bad-{field.replace('_', '-')}")
        return RequestError(source, rule, first["msg"].removeprefix("Value error, "))
    expected = {"record_ids": "list"}.get(field, "str")
    return RequestError(source, "wrong-type", f"field {field!r} must be a {expected}, got "
                        f"{type(first['input']).__name__}")


def parse_request(data: bytes | str, source: str) -> DeletionRequest:
    """Check one request's bytes against the schema (not yet its ids against the data)."""
    raw = decode_json(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data, source)
    if not isinstance(raw, dict):
        raise RequestError(source, "not-an-object", f"a request must be a JSON object with fields {sorted(FIELDS)}")
    extra = sorted(_printable(key) for key in raw if key not in FIELDS)  # before pydantic: it cannot print some
    if extra:
        raise RequestError(source, "unknown-field", f"unknown fields [{', '.join(extra)}]; allowed are {sorted(FIELDS)}")
    try:
        valid = _Schema.model_validate(raw)
    except ValidationError as err:
        raise _schema_error(source, err) from None
    return DeletionRequest(valid.request_id, tuple(valid.record_ids), valid.reason, valid.received_at, source)


def read_request(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> DeletionRequest:
    """One request file, checked from its bytes to its schema."""
    return parse_request(read_bytes(path, max_bytes), str(path))


# --- folders and sets of requests -------------------------------------------------------------
def request_files(folder: Path) -> list[Path]:
    """The *.json entries of a requests folder in name order (other files, e.g. a README, are ignored)."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise RequestError(str(folder), "missing-folder",
                           "is not a folder of the workspace (missing, a file or a link); a missing requests "
                           "folder never means 'nothing to forget': check split.requests_dir and restore it")
    return sorted(p for p in folder.iterdir() if p.name.endswith(".json"))


def load_requests(folder: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> list[DeletionRequest]:
    """Every request in `folder`, in file-name order."""
    return [read_request(path, max_bytes) for path in request_files(folder)]


def check_against_data(request: DeletionRequest, known: KnownIds) -> None:
    """Every id must name a training record; the test split is never deleted from."""
    ids = set(request.record_ids)
    in_test = sorted(ids & known.test)
    if in_test:
        raise RequestError(request.source, "test-record",
                           f"record ids {in_test[:5]} belong to the held-out test split, which is fixed and never "
                           "deleted from; remove them from the request")
    unknown = sorted(ids - known.train)
    if unknown:
        shown = [_printable(r) for r in unknown[:5]]
        raise RequestError(request.source, "unknown-record",
                           f"unknown record ids [{', '.join(shown)}]{' and more' if len(unknown) > 5 else ''}; "
                           "check them against data/prepared/train.csv")


def forgotten_ids(requests: Iterable[DeletionRequest], known: KnownIds) -> list[str]:
    """Validate a set of requests together and return the sorted union of forgotten ids.

    Each request's ids are checked against the data first, then the ids of the requests against each
    other, so the verdict on a set does not depend on the order its files are listed in.
    """
    requests = list(requests)
    for request in requests:
        check_against_data(request, known)
    return check_together(requests, known)


def check_together(requests: list[DeletionRequest], known: KnownIds) -> list[str]:
    """The rules a set of requests must meet together: unique request ids, some training record left.
    Returns the sorted union of forgotten ids."""
    seen: dict[str, str] = {}
    for request in requests:
        if request.request_id in seen:
            raise RequestError(request.source, "duplicate-request-id",
                               f"request id {request.request_id!r} is already used by {seen[request.request_id]}; "
                               "give each request its own id")
        seen[request.request_id] = request.source
    forgotten = {record_id for request in requests for record_id in request.record_ids}
    if known.train and forgotten >= known.train:
        raise RequestError(", ".join(seen.values()), "forgets-everything",
                           f"these requests together would forget all {len(known.train)} training records; "
                           "nothing would remain to learn from. Withdraw one or retire the model")
    return sorted(forgotten)
