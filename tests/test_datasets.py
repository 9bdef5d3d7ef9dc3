"""Data preparation: determinism, ids, the fixed test split, standardisation, bad data and parameters."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from bayesunlearn.io import datasets, store
from bayesunlearn.io.sections import Model
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
    ({"a": ["x", "y", "z"]}, "not numeric"),
])
def test_bad_data_is_rejected_with_the_remedy(bad, message):
    frame = pd.DataFrame({**bad, "y": [1.0, 2.0, 3.0]})
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
