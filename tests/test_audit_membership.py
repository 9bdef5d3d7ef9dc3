"""The audit joins the per-record membership test to its verdict while the unlearned posterior is served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO


@pytest.fixture
def workspace(tmp_path) -> Path:
    """The files the membership objection reads: params, what is served, the membership report."""
    (tmp_path / "models/served").mkdir(parents=True)
    (tmp_path / "metrics").mkdir()
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    provenance = {"gate": "pass", "gate_reasons": [], "method": "ggn_refined", "path": "fast",
                  "posterior": "full_ggn", "source": "models/unlearned/ggn_refined.npz"}
    (tmp_path / "models/served/provenance.json").write_text(json.dumps(provenance))
    return tmp_path


def write_report(root: Path, told_served: float, told_retrain: float, n: int = 8) -> None:
    report = {"alpha": 0.05, "n_forgotten": n, "shadow_retrains": 8, "told_apart_retrain": told_retrain,
              "told_apart_served": told_served}
    (root / "metrics/privacy.json").write_text(json.dumps(report))


def test_records_that_stand_out_under_the_served_unlearned_posterior_are_an_objection(workspace):
    from flows.audit import membership
    from flows.workspace import Workspace

    write_report(workspace, 1 / 8, 1 / 8)  # as many as the retrain: no objection
    assert membership(workspace, Workspace(workspace).settings()) is None
    write_report(workspace, 4 / 8, 0.0)  # Binomial(8, 0.05) exceeds 2 with probability 0.006
    assert membership(workspace, Workspace(workspace).settings()).startswith("membership: 4 of 8 forgotten records told apart")


def test_a_refit_served_in_its_place_is_not_the_posterior_judged(workspace):
    from flows.audit import membership
    from flows.workspace import Workspace

    write_report(workspace, 4 / 8, 0.0)
    provenance = workspace / "models/served/provenance.json"
    provenance.write_text(provenance.read_text().replace('"fast"', '"fallback"'))
    assert membership(workspace, Workspace(workspace).settings()) is None
