"""Unit tests of deletion-request validation (bayesunlearn.io.requests).

Every rejection must be a RequestError whose message names the offending file
and says what is wrong with it, so that the person who dropped the file in
data/requests/ can fix it without reading the code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bayesunlearn.errors import RequestError, UserError
from bayesunlearn.io.requests import (
    FIELDS,
    DeletionRequest,
    KnownIds,
    check_against_data,
    forgotten_ids,
    load_requests,
    parse_request,
    read_request,
)

SOURCE = "data/requests/req-0007.json"
TRAIN_IDS = {f"rec-{i:06d}" for i in range(10)}
TEST_IDS = {f"rec-{i:06d}" for i in range(10, 13)}
KNOWN = KnownIds(frozenset(TRAIN_IDS), frozenset(TEST_IDS))


def validate_all(requests, train_ids, test_ids):
    return forgotten_ids(requests, KnownIds(frozenset(train_ids), frozenset(test_ids)))


def valid(**overrides) -> dict:
    request = {
        "request_id": "req-0007",
        "record_ids": ["rec-000003", "rec-000001"],
        "reason": "GDPR Art. 17 erasure",
        "received_at": "2026-11-20T09:30:00Z",
    }
    request.update(overrides)
    return request


def parse(obj, source: str = SOURCE) -> DeletionRequest:
    return parse_request(obj if isinstance(obj, str) else json.dumps(obj), source)


def rejected(obj, *patterns: str, source: str = SOURCE) -> str:
    """Parse `obj`, expect a RequestError naming `source` and matching every pattern."""
    with pytest.raises(RequestError) as info:
        parse(obj, source)
    return assert_message(info.value, source, *patterns)


def assert_message(err: Exception, source: str | None, *patterns: str) -> str:
    message = str(err)
    if source is not None:
        assert source in message, f"message does not name {source}: {message}"
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in message: {message}"
    return message


# --------------------------------------------------------------------------- parse_request


def test_valid_request_parses():
    request = parse(valid())
    assert request == DeletionRequest("req-0007", ("rec-000003", "rec-000001"), "GDPR Art. 17 erasure",
                                      "2026-11-20T09:30:00Z", SOURCE)


def test_request_error_is_a_user_error():
    # stages.common.run turns UserError into "error: ..." and exit code 2
    assert issubclass(RequestError, UserError)


@pytest.mark.parametrize("text", ['{"request_id": "req-0007",', "not json at all", ""])
def test_malformed_json(text):
    rejected(text, r"malformed JSON", r"line \d+, column \d+")


@pytest.mark.parametrize("obj", [["rec-000001"], "req-0007", 42, None])
def test_not_a_json_object(obj):
    rejected(json.dumps(obj), r"must be a JSON object")


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_missing_field(field):
    request = valid()
    del request[field]
    rejected(request, rf"missing field '{field}'")


@pytest.mark.parametrize("field, value, expected, got", [
    ("request_id", 7, "str", "int"),
    ("record_ids", "rec-000001", "list", "str"),
    ("reason", None, "str", "NoneType"),
    ("received_at", 20261120, "str", "int"),
])
def test_field_of_wrong_type(field, value, expected, got):
    rejected(valid(**{field: value}), rf"field '{field}' must be a {expected}, got {got}")


def test_unknown_extra_field():
    rejected(valid(requester="alice@example.org"), r"unknown fields \['requester'\]")


def test_blank_request_id():
    rejected(valid(request_id="   "), r"request_id is empty")


def test_empty_record_ids():
    rejected(valid(record_ids=[]), r"empty request", r"record_ids is \[\]")


@pytest.mark.parametrize("record_ids", [["rec-000001", 2], ["rec-000001", None], ["rec-000001", ""]])
def test_non_string_record_id(record_ids):
    rejected(valid(record_ids=record_ids), r"every entry of record_ids must be a non-empty string")


@pytest.mark.parametrize("received_at", ["yesterday", "2026-13-40T09:30:00Z", "20/11/2026 09:30", "", "20261120",
                                         "2026-W47-5", "2026-11-20 09:30", "2026-11-20T09:30:00",
                                         "\u0662\u0660\u0662\u0666-11-20"])  # a time without offset; Arabic digits
def test_bad_received_at(received_at):
    rejected(valid(received_at=received_at), r"received_at '.*' is not a date")


@pytest.mark.parametrize("received_at", ["2026-11-20T09:30:00Z", "2026-11-20T09:30:00+01:00", "2026-11-20",
                                         "2026-11-20T09:30Z", "2026-11-20T09:30:00.123456789-05:00"])
def test_good_received_at(received_at):
    assert parse(valid(received_at=received_at)).received_at == received_at


# --------------------------------------------------------------------------- check_against_data


def test_unknown_record_id():
    request = parse(valid(record_ids=["rec-000001", "rec-999999"]))
    with pytest.raises(RequestError) as info:
        check_against_data(request, KNOWN)
    message = assert_message(info.value, SOURCE, r"unknown record ids \['rec-999999'\]")
    assert "rec-000001" not in message  # only the bad id is named


def test_many_unknown_record_ids_are_truncated():
    request = parse(valid(record_ids=[f"bogus-{i}" for i in range(8)]))
    with pytest.raises(RequestError) as info:
        check_against_data(request, KNOWN)
    message = assert_message(info.value, SOURCE, r"unknown record ids", r"and more")
    assert "bogus-7" not in message


def test_test_set_record_id():
    request = parse(valid(record_ids=["rec-000001", "rec-000011"]))
    with pytest.raises(RequestError) as info:
        check_against_data(request, KNOWN)
    assert_message(info.value, SOURCE, r"\['rec-000011'\] belong to the held-out test split")


def test_known_training_ids_pass():
    check_against_data(parse(valid()), KNOWN)


# --------------------------------------------------------------------------- validate_all / load_requests


def write_request(folder: Path, name: str, **overrides) -> Path:
    path = folder / name
    path.write_text(json.dumps(valid(**overrides)))
    return path


def test_request_id_used_twice_across_files(tmp_path):
    first = write_request(tmp_path, "a.json", request_id="req-0001", record_ids=["rec-000001"])
    second = write_request(tmp_path, "b.json", request_id="req-0001", record_ids=["rec-000002"])
    with pytest.raises(RequestError) as info:
        validate_all(load_requests(tmp_path), TRAIN_IDS, TEST_IDS)
    # the later file is the offender; the message points at the earlier one too
    assert_message(info.value, str(second), r"request id 'req-0001' is already used by", re.escape(str(first)))


def test_requests_that_together_forget_every_training_record(tmp_path):
    ids = sorted(TRAIN_IDS)
    write_request(tmp_path, "a.json", request_id="req-0001", record_ids=ids[:6])
    write_request(tmp_path, "b.json", request_id="req-0002", record_ids=ids[4:])
    with pytest.raises(RequestError) as info:
        validate_all(load_requests(tmp_path), TRAIN_IDS, TEST_IDS)
    assert_message(info.value, None, r"would forget all 10 training records")


def test_forget_everything_error_names_the_request_files(tmp_path):
    ids = sorted(TRAIN_IDS)
    first = write_request(tmp_path, "a.json", request_id="req-0001", record_ids=ids[:6])
    second = write_request(tmp_path, "b.json", request_id="req-0002", record_ids=ids[4:])
    with pytest.raises(RequestError) as info:
        validate_all(load_requests(tmp_path), TRAIN_IDS, TEST_IDS)
    assert_message(info.value, str(first), re.escape(str(second)), r"would forget all 10 training records")


def test_validate_all_checks_ids_against_data(tmp_path):
    write_request(tmp_path, "a.json", request_id="req-0001", record_ids=["rec-000001"])
    bad = write_request(tmp_path, "b.json", request_id="req-0002", record_ids=["rec-000012"])
    with pytest.raises(RequestError) as info:
        validate_all(load_requests(tmp_path), TRAIN_IDS, TEST_IDS)
    assert_message(info.value, str(bad), r"held-out test split")


def test_overlapping_requests_give_sorted_union(tmp_path):
    # written out of name order, with non-request files alongside
    write_request(tmp_path, "req-0002.json", request_id="req-0002", record_ids=["rec-000007", "rec-000002"])
    write_request(tmp_path, "req-0001.json", request_id="req-0001", record_ids=["rec-000005", "rec-000002"])
    (tmp_path / "README.md").write_text("drop deletion requests here\n")
    (tmp_path / "req-0003.json.bak").write_text("{ not json")
    (tmp_path / "notes.txt").write_text("{ not json")

    pending = load_requests(tmp_path)

    assert [r.request_id for r in pending] == ["req-0001", "req-0002"]
    assert [Path(r.source).name for r in pending] == ["req-0001.json", "req-0002.json"]
    assert validate_all(pending, TRAIN_IDS, TEST_IDS) == ["rec-000002", "rec-000005", "rec-000007"]


def test_load_requests_reports_the_bad_file(tmp_path):
    write_request(tmp_path, "req-0001.json", request_id="req-0001")
    (tmp_path / "req-0002.json").write_text("{oops")
    with pytest.raises(RequestError) as info:
        load_requests(tmp_path)
    assert_message(info.value, str(tmp_path / "req-0002.json"), r"malformed JSON")


def test_a_missing_requests_folder_is_an_error_never_nothing_to_forget(tmp_path):
    with pytest.raises(RequestError) as info:
        load_requests(tmp_path / "absent")
    assert info.value.rule == "missing-folder"
    assert_message(info.value, str(tmp_path / "absent"), r"never means 'nothing to forget'")
    (tmp_path / "a-file").write_text("{}")
    with pytest.raises(RequestError, match="is not a folder"):
        load_requests(tmp_path / "a-file")
    assert validate_all([], TRAIN_IDS, TEST_IDS) == []


# --------------------------------------------------------------------------- hostile bytes and files


def good_bytes(**overrides) -> bytes:
    return json.dumps(valid(**overrides)).encode()


@pytest.mark.parametrize("data, rule, pattern", [
    (b"\xef\xbb\xbf" + good_bytes(), "byte-order-mark", r"byte-order mark"),
    (good_bytes().replace(b"GDPR", b"GD\xffR"), "not-utf8", r"not UTF-8 text \(byte 0xff at offset \d+\)"),
    ("\ufeff".encode("utf-16") + good_bytes(), "not-utf8", r"not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nesting-too-deep", r"100000 levels deep"),
    (b'{"request_id": [[[[["x"]]]]]}', "nesting-too-deep", r"6 levels deep"),
    (b'{"request_id": "' + b"\\\"[" * 50_000 + b'"}', "bad-request-id", r"not a safe id"),  # brackets in a string do not nest
    (b'{"request_id": 1' + b"0" * 5000 + b"}", "number-too-long", r"number of 5001 characters"),
    (b'{"request_id": 1.' + b"5" * 100 + b"}", "number-too-long", r"number of 102 characters"),
    (good_bytes()[:-1] + b', "reason": "again"}', "duplicate-key", r"names the key 'reason' twice"),
    (good_bytes(reason=float("nan")), "not-standard-json", r"holds NaN"),
    (b'{"request_id": "req-0007", "record_ids": ["rec-000001"], "reason": "x", "received_at": "2026-11-20"'
     + b"\x00}", "malformed-json", r"malformed JSON"),
    (good_bytes(reason="a\u0000b"), "bad-reason", r"control, format or surrogate character U\+0000"),
    (good_bytes(reason="invoice \u202eexe.pdf"), "bad-reason", r"character U\+202E"),  # right-to-left override
    (good_bytes(record_ids=["rec-\u200b000001"]), "bad-record-id", r"character U\+200B"),  # zero-width space
    (good_bytes(record_ids=["rec-\ud800"]), "bad-record-id", r"surrogate character U\+D800"),
    (good_bytes()[:-1] + b', "\\ud800": 1}', "unknown-field", r"unknown fields \['\\\\ud800'\]"),
    (b"{" + b",".join(b'"k%d": 0' % i for i in range(200_000)) + b"}", "unknown-field", r"unknown fields"),
    (b'{"request_id": "req-\\ud800", "record_ids": ["rec-000001"], "reason": "x", "received_at": "2026-11-20"}',
     "bad-request-id", r"not a safe id"),
])
def test_hostile_bytes_are_rejected_by_rule_and_name_the_file(data, rule, pattern):
    with pytest.raises(RequestError) as info:
        parse_request(data, SOURCE)
    assert info.value.rule == rule
    assert_message(info.value, SOURCE, pattern)


@pytest.mark.parametrize("request_id", ["../../metrics/train", "/etc/passwd", "a/b", ".", "..", ".hidden",
                                        "-rf", "x" * 129, "req 1", "req\u00e9", "req\x00", "req\n1"])
def test_request_ids_that_could_name_a_path_are_refused(request_id):
    rejected(valid(request_id=request_id), r"not a safe id|request_id is empty")


@pytest.mark.parametrize("request_id", ["req-0001", "R", "a.b_c-9", "x" * 128])
def test_safe_request_ids_pass(request_id):
    assert parse(valid(request_id=request_id)).request_id == request_id


def test_a_symlink_is_refused_even_to_a_valid_request(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_bytes(good_bytes())
    link = tmp_path / "req-0007.json"
    link.symlink_to(target)
    with pytest.raises(RequestError, match="is a symbolic link") as info:
        read_request(link)
    assert info.value.rule == "not-a-regular-file"


def test_folders_and_fifos_are_refused_without_blocking(tmp_path):
    import os

    (tmp_path / "dir.json").mkdir()
    os.mkfifo(tmp_path / "fifo.json")  # opening a FIFO for reading would block forever
    for name, what in (("dir.json", "a folder"), ("fifo.json", "a FIFO")):
        with pytest.raises(RequestError, match=what):
            read_request(tmp_path / name)


def test_a_request_over_the_size_cap_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(good_bytes(reason="x" * 2_000_000))
    with pytest.raises(RequestError, match=r"more than the 1,000,000 allowed") as info:
        read_request(path)
    assert info.value.rule == "too-large"
    path.write_bytes(good_bytes(reason="x" * 1500))
    with pytest.raises(RequestError, match="more than the 1,024 allowed"):
        read_request(path, max_bytes=1024)
