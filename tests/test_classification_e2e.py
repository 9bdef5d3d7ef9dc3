"""The main job on the packaged classification tables: `dvc repro` with prepare.source=default and a Bernoulli
likelihood, and with prepare.source=penguins and a categorical one."""

from __future__ import annotations

import json

import pytest
from conftest import sh, tiny_repo

pytestmark = pytest.mark.slow


def test_every_stage_runs_on_a_binary_table_and_reports_a_classifiers_fit(tmp_path):
    root = tiny_repo(tmp_path, {("prepare", "source"): "default", ("model", "likelihood"): "bernoulli"})
    sh("dvc", "repro", cwd=root)
    scaling = json.loads((root / "data/prepared/scaling.json").read_text())
    assert scaling["target"] == "binary" and scaling["n_train"] + scaling["n_test"] == 10_000
    headline = json.loads((root / "metrics/headline.json").read_text())
    assert headline["forgotten"] == 5 and "test_rmse" not in headline
    assert 0.9 < headline["test_accuracy"] <= 1 and 0 <= headline["test_ece"] < 0.1  # 3.3 % of customers default
    evaluation = json.loads((root / f"metrics/evaluate/{headline['method']}.json").read_text())
    assert evaluation["test_accuracy_retrained"] == headline["test_accuracy_retrained"]
    assert not [k for k in evaluation if "rmse" in k]
    table = (root / "metrics/methods.csv").read_text().splitlines()[0].split(",")
    assert "test_accuracy_unlearned" in table and "test_rmse_unlearned" not in table
    plot = (root / f"plots/predictive/{headline['method']}.csv").read_text().splitlines()[0]
    assert plot.startswith("predicted_probability,original_predicted,original_mean")  # the reliability table
    assert (root / f"plots/predictive/{headline['method']}.png").stat().st_size > 0
    assert "up to date" in sh("dvc", "status", "dvc.yaml", cwd=root).stdout  # the main pipeline, not study/


def test_every_stage_runs_on_a_multiclass_table_with_one_output_per_class(tmp_path):
    from bayesunlearn.posteriors.posterior import GaussianPosterior

    root = tiny_repo(tmp_path, {("prepare", "source"): "penguins", ("model", "likelihood"): "categorical"})
    sh("dvc", "repro", cwd=root)
    scaling = json.loads((root / "data/prepared/scaling.json").read_text())
    assert scaling["target"] == "categorical" and scaling["n_train"] + scaling["n_test"] == 333
    assert scaling["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    served = GaussianPosterior.load(root / "models/served/posterior.npz")
    assert served.model.likelihood == "categorical" and served.model.spec.outputs == 3
    headline = json.loads((root / "metrics/headline.json").read_text())
    assert "test_rmse" not in headline and 0.9 < headline["test_accuracy"] <= 1 and 0 <= headline["test_ece"] < 0.2
    plot = (root / f"plots/predictive/{headline['method']}.csv").read_text().splitlines()[0]
    assert plot.startswith("predicted_confidence,original_predicted,original_mean")  # the top-label reliability
    assert "up to date" in sh("dvc", "status", "dvc.yaml", cwd=root).stdout
