"""The purge's needles: every value that could only come from a forgotten record, and nothing a kept record holds."""

from __future__ import annotations

import struct

import pandas as pd

from lineage import scan


def test_values_a_kept_record_shares_are_no_needles_and_unique_values_are():
    table = pd.DataFrame({"record_id": ["gone", "kept"], "cut=Ideal": ["-0.17526300000000001", "-0.17526300000000001"],
                          "carat": ["0.23000000000000001", "0.20999999999999999"], "subset": ["train", "train"]})
    needles = scan.needles_for([table], {"gone"}, hash_id=lambda i: f"h({i})")
    found = {(n.kind, n.data) for n in needles}
    assert found == {("id", b"gone"), ("value-float64", struct.pack("<d", 0.23)),
                     ("value-text", b"0.23000000000000001")}
    assert {n.record for n in needles} == {"h(gone)"}


def test_a_value_kept_in_another_table_in_another_spelling_is_shared():
    prepared = pd.DataFrame({"record_id": ["gone"], "a": ["540.00000000000000"]})
    raw = pd.DataFrame({"record_id": ["gone", "kept"], "a": ["540.00000000000000", "540"]})
    assert {n.kind for n in scan.needles_for([prepared, raw], {"gone"}, hash_id=str)} == {"id"}
