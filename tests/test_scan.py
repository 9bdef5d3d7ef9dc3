"""The purge's needles: every value that could only come from a forgotten record, and nothing a kept record holds."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd

from lineage import scan


def test_values_a_kept_record_shares_are_no_needles_and_unique_values_are():
    table = pd.DataFrame({"record_id": ["gone", "kept"], "cut=Ideal": ["-0.17526300000000001", "-0.17526300000000001"],
                          "carat": ["0.23000000000000001", "0.20999999999999999"], "subset": ["train", "train"]})
    needles = scan.needles_for([table], {"gone"}, hash_id=lambda i: f"h({i})")
    found = {(n.kind, n.data) for n in needles}
    assert found == {("id", b"gone"), ("value-float64", struct.pack("<d", 0.23)),
                     ("value-text", b"0.23000000000000001"),
                     ("row-text", b"-0.17526300000000001,0.23000000000000001,train"),
                     ("row-float64", struct.pack("<2d", -0.175263, 0.23))}
    assert {n.record for n in needles} == {"h(gone)"}


def test_a_value_kept_in_another_table_in_another_spelling_is_shared():
    prepared = pd.DataFrame({"record_id": ["gone"], "a": ["540.00000000000000"]})
    raw = pd.DataFrame({"record_id": ["gone", "kept"], "a": ["540.00000000000000", "540"]})
    assert {n.kind for n in scan.needles_for([prepared, raw], {"gone"}, hash_id=str)} == {"id"}


def test_a_record_whose_every_value_is_shared_is_still_found_by_its_row():
    table = pd.DataFrame({"record_id": ["gone", "k1", "k2"], "cement": ["342", "342", "540"],
                          "water": ["228", "162", "228"], "y": ["56.14", "1", "56.14"]})
    needles = scan.needles_for([table], {"gone"}, hash_id=str)
    assert {n.kind for n in needles} == {"id", "row-text", "row-float64"}
    row = next(n for n in needles if n.kind == "row-float64")
    assert row.data in np.array([[342.0, 228.0]]).tobytes()  # an inputs row of an .npz array


def test_categorical_text_only_forgotten_records_hold_is_a_needle_and_a_duplicate_row_is_not():
    table = pd.DataFrame({"record_id": ["gone", "twin", "kept"], "name": ["Alice Smith", "Bob Jones", "Bob Jones"],
                          "y": ["1.5", "2.5", "2.5"]})
    needles = scan.needles_for([table], {"gone", "twin"}, hash_id=str)
    assert ("value-text", b"Alice Smith") in {(n.kind, n.data) for n in needles}
    assert not [n for n in needles if n.record == "twin" and n.kind != "id"]  # its row is a kept record's too
