"""What people read: counts in the singular for one, and the audit page without Python syntax."""

from __future__ import annotations

import re

import pytest

from lineage import html
from lineage.entries import Applied
from lineage.words import count, plural


@pytest.mark.parametrize("n, noun, expected", [
    (1, "record", "1 record"), (0, "record", "0 records"), (2, "record", "2 records"),
    (1, "keyed hash", "1 keyed hash"), (3, "keyed hash", "3 keyed hashes"), (1, "entry", "1 entry"),
    (4, "entry", "4 entries"), (2, "key", "2 keys"), (5, "forgotten record", "5 forgotten records"),
])
def test_count_uses_the_singular_for_exactly_one(n, noun, expected):
    assert count(n, noun) == expected


def test_plural_of_the_nouns_the_messages_count():
    assert [plural(w) for w in ["request", "needle", "hit", "file", "artifact", "match", "box"]] == [
        "requests", "needles", "hits", "files", "artifacts", "matches", "boxes"]


def _event(n_records: int, repair: str, allowed: list[str]) -> Applied:
    return Applied(
        event="applied", seq=3, repository="r", key_id="k", prev_hash="0" * 64, entry_hash="a" * 64,
        run_id="run-1", recorded_at="2026-11-20T10:00:00Z", epoch=0, git_commit="c" * 40, dirty=[],
        served="models/served", artifacts_before=None, artifacts_after={"data/split": "m" * 32},
        request={"request_id": "req-0007", "reason": "GDPR Art. 17 erasure", "received_at": "2026-11-20T09:30:00Z",
                 "n_records": n_records, "record_hashes": [f"{i:064x}" for i in range(n_records)]},
        applied_together=["req-0007"], applied_at="2026-11-20T10:00:00Z", method="ggn_refined",
        posterior="full_ggn", served_path="fast",
        gate={"decision": "pass", "reasons": [], "thresholds": {"max_retained_nll_change": 0.01,
                                                               "allowed_repairs": allowed},
              "metrics": {"retained_nll_change": 0.001, "repair": repair}})


def _row(page: str, name: str) -> str:
    match = re.search(rf"<tr><td>{name}</td>(.*?)</tr>", page, flags=re.S)
    assert match, f"no {name} row"
    return match.group(1)


@pytest.mark.parametrize("n, shown", [(1, "1 keyed hash "), (3, "3 keyed hashes ")])
def test_the_audit_page_counts_keyed_hashes_in_words(tmp_path, n, shown):
    page = html.event_page(_event(n, "none", ["none"]), [], tmp_path)
    assert shown in _row(page, "record ids")


def test_the_audit_page_lists_allowed_repairs_in_words_and_judges_the_repair(tmp_path):
    page = html.event_page(_event(2, "none", ["none"]), [], tmp_path)
    row = _row(page, "repair")
    assert "[" not in row and "&#39;" not in row and "<td>none</td><td>none</td>" in row
    assert 'class="pass"' in row
    clipped = _row(html.event_page(_event(2, "clip", ["none", "damp"]), [], tmp_path), "repair")
    assert "<td>clip</td><td>none or damp</td>" in clipped and 'class="fail"' in clipped


@pytest.mark.parametrize("ids, said", [(["rec-000002"], "would forget 1 record\n"),
                                       (["rec-000002", "rec-000003"], "would forget 2 records\n")])
def test_request_check_counts_the_records_in_words(tmp_path, capsys, ids, said):
    """The quick start's first command, `deletions request check`, on a one-record request."""
    import json
    import shutil

    import pandas as pd
    from conftest import REPO, request_payload

    from bayesunlearn.io import store
    from lineage import cli

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    store.save_table(tmp_path / "data/prepared/train.csv",
                     pd.DataFrame({"record_id": [f"rec-{i:06d}" for i in range(6)], "x": range(6), "y": range(6)}))
    store.save_table(tmp_path / "data/prepared/test.csv", pd.DataFrame({"record_id": ["rec-000100"], "x": [0.5],
                                                                        "y": [0.5]}))
    (tmp_path / "data/requests").mkdir(parents=True)
    request = tmp_path / "my-request.json"
    request.write_text(json.dumps(request_payload("req-0002", ids)))
    assert cli.main(["--repo", str(tmp_path), "request", "check", str(request)]) == 0
    assert capsys.readouterr().out.endswith(said)
