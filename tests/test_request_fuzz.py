"""Property-based tests of the request boundary (Hypothesis): the `split` stage and the intake flow's triage
give the same verdict on every generated request file, and neither raises anything but a RequestError.

Each example is one request file, fed to both paths: structured requests with hostile values, byte-level
mutations of a valid request, odd encodings and random bytes. 1,200 examples per run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO, request_payload
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bayesunlearn.io import store
from bayesunlearn.errors import RequestError
from lineage.inbox import Inbox
from stages.split import decide

TRAIN = [f"rec-{i:06d}" for i in range(8)]
TEST = ["rec-000100", "rec-000101"]
EXISTING = request_payload("req-0001", ["rec-000001"])
EXAMPLES = 1200


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    import pandas as pd

    root = tmp_path_factory.mktemp("fuzz")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    store.save_table(root / "data/prepared/train.csv", pd.DataFrame({"record_id": TRAIN, "x": 0.5, "y": 1.0}))
    store.save_table(root / "data/prepared/test.csv", pd.DataFrame({"record_id": TEST, "x": 0.5, "y": 1.0}))
    (root / "data/requests").mkdir(parents=True)
    (root / "data/requests/req-0001.json").write_text(json.dumps(EXISTING))
    (root / "inbox").mkdir()
    return root


# --- strategies ----------------------------------------------------------------------------------
ids = st.one_of(st.sampled_from(["req-0001", "req-0002", "a.b_c-9", "x" * 128, "x" * 129, "../x", "/abs", ".",
                                 "", " ", "a/b", "req\x00", "\ud800", "é"]), st.text(max_size=20))
record_id = st.one_of(st.sampled_from(TRAIN + TEST + ["rec-999999", "", "\ud800", "rec\x00"]), st.text(max_size=12),
                      st.integers(-10, 10 ** 30), st.none(), st.floats(allow_nan=True))
times = st.one_of(st.sampled_from(["2026-11-20T09:30:00Z", "2026-11-20", "yesterday", "2026-13-40T00:00:00Z"]),
                  st.text(max_size=30))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                     max_size=3), max_leaves=10)


@st.composite
def structured(draw) -> bytes:
    """A request-shaped object with fields dropped, mistyped or hostile, and sometimes extra fields."""
    body = {"request_id": draw(ids), "record_ids": draw(st.lists(record_id, max_size=10) | json_values),
            "reason": draw(st.text(max_size=40) | json_values), "received_at": draw(times | json_values)}
    body = {k: v for k, v in body.items() if draw(st.integers(0, 9)) > 0}
    body.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "latin-1", "utf-8-sig"]))
    return text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")


@st.composite
def mutated(draw) -> bytes:
    """A valid request with bytes deleted, inserted or replaced."""
    data = bytearray(json.dumps(request_payload("req-0002", TRAIN[2:4])).encode())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["delete", "insert", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=6) | st.sampled_from([b"[", b"{", b'"', b"\\", b"\x00", b"\xff",
                                                                          b"1e999", b"NaN", b"}", b","]))
        if action == "delete":
            del data[at:at + len(chunk)]
        elif action == "insert":
            data[at:at] = chunk
        else:
            data[at:at + len(chunk)] = chunk
    return bytes(data)


@st.composite
def hostile(draw) -> bytes:
    """Deep nesting, huge numbers, duplicate keys, non-standard constants."""
    depth = draw(st.integers(1, 20_000))
    return draw(st.sampled_from([
        b"[" * depth + b"]" * depth,
        b'{"request_id": ' + b"[" * depth + b"1" + b"]" * depth + b"}",
        b'{"request_id": "r", "record_ids": [1' + b"0" * depth + b"]}",
        b'{"request_id": "r", "request_id": "s", "record_ids": ["rec-000002"], "reason": "", "received_at": "2026-11-20"}',
        b'{"request_id": "r", "record_ids": [NaN, Infinity, -Infinity], "reason": "", "received_at": "2026-11-20"}',
        b'"' + b"\\" * depth,
    ]))


@st.composite
def plausible(draw) -> bytes:
    """Well-formed requests: the data rules decide (unknown, test-set, duplicate id, forgetting everything)."""
    body = {"request_id": draw(st.sampled_from(["req-0001", "req-0002", "req-0003"])),
            "record_ids": draw(st.lists(st.sampled_from(TRAIN + TEST + ["rec-999999"]), min_size=0, max_size=9)),
            "reason": draw(st.text(max_size=20)), "received_at": draw(times)}
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


request_files = st.one_of(plausible(), structured(), mutated(), hostile(), st.binary(max_size=300))


# --- the property --------------------------------------------------------------------------------
def split_verdict(workspace: Path, folder: Path, inbox: Inbox) -> tuple[str, str]:
    try:
        decide(folder, inbox.max_bytes, inbox.known_ids())
    except RequestError as err:
        return "reject", "duplicate-request-id" if err.rule == "duplicate-request-id" else err.rule
    return "accept", ""


def triage_verdict(inbox: Inbox, path: Path) -> tuple[str, str]:
    verdict = inbox.triage(path, inbox.in_force(), inbox.known_ids())
    if verdict.kind == "duplicate":  # split sees a second request with the same id
        return "reject", "duplicate-request-id"
    return verdict.kind, verdict.rule


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=request_files)
def test_split_and_triage_agree_on_every_generated_request_and_never_raise_anything_else(workspace, data):
    inbox = Inbox(workspace)
    # the split path: the requests folder in force plus the new file
    folder = workspace / "fuzz-requests"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(workspace / "data/requests", folder)
    (folder / "new.json").write_bytes(data)
    # the triage path: the same bytes dropped in the inbox
    path = inbox.folder / "new.json"
    path.write_bytes(data)
    try:
        split = split_verdict(workspace, folder, inbox)
        triage = triage_verdict(inbox, path)
    finally:
        path.unlink()
    event(f"{triage[0]}: {triage[1]}")
    assert split[0] == triage[0], (split, triage, data[:200])
    if split[0] == "reject":
        assert split[1] == triage[1], (split, triage, data[:200])
