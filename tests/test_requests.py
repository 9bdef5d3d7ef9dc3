"""Unit tests of deletion-request validation (bayesunlearn.requests).

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
from bayesunlearn.requests import (
    REQUIRED_FIELDS,
    DeletionRequest,
    check_against_data,
    load_requests,
    parse_request,
    validate_all,
)

SOURCE = "data/requests/req-0007.json"
TRAIN_IDS = {f"rec-{i:06d}" for i in range(10)}
TEST_IDS = {f"rec-{i:06d}" for i in range(10, 13)}


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


@pytest.mark.parametrize("field", sorted(REQUIRED_FIELDS))
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


@pytest.mark.parametrize("received_at", ["yesterday", "2026-13-40T09:30:00Z", "20/11/2026 09:30", ""])
def test_bad_received_at(received_at):
    rejected(valid(received_at=received_at), rf"received_at '{re.escape(received_at)}' is not an ISO-8601 time")


@pytest.mark.parametrize("received_at", ["2026-11-20T09:30:00Z", "2026-11-20T09:30:00+01:00", "2026-11-20"])
def test_good_received_at(received_at):
    assert parse(valid(received_at=received_at)).received_at == received_at


# --------------------------------------------------------------------------- check_against_data


def test_unknown_record_id():
    request = parse(valid(record_ids=["rec-000001", "rec-999999"]))
    with pytest.raises(RequestError) as info:
        check_against_data(request, TRAIN_IDS, TEST_IDS)
    message = assert_message(info.value, SOURCE, r"unknown record ids \['rec-999999'\]")
    assert "rec-000001" not in message  # only the bad id is named


def test_many_unknown_record_ids_are_truncated():
    request = parse(valid(record_ids=[f"bogus-{i}" for i in range(8)]))
    with pytest.raises(RequestError) as info:
        check_against_data(request, TRAIN_IDS, TEST_IDS)
    message = assert_message(info.value, SOURCE, r"unknown record ids", r"and more")
    assert "bogus-7" not in message


def test_test_set_record_id():
    request = parse(valid(record_ids=["rec-000001", "rec-000011"]))
    with pytest.raises(RequestError) as info:
        check_against_data(request, TRAIN_IDS, TEST_IDS)
    assert_message(info.value, SOURCE, r"\['rec-000011'\] belong to the held-out test split")


def test_known_training_ids_pass():
    check_against_data(parse(valid()), TRAIN_IDS, TEST_IDS)


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


def test_missing_requests_folder_means_no_requests(tmp_path):
    assert load_requests(tmp_path / "absent") == []
    assert validate_all([], TRAIN_IDS, TEST_IDS) == []
