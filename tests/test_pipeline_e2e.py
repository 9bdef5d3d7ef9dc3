"""End to end: `dvc repro` on a tiny config in a temporary copy of the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import TINY, sh, tiny_repo, train_ids, write_request

pytestmark = pytest.mark.slow

REQUIRED_METRICS = [
    "pred_kl_unlearned_retrained", "pred_kl_original_retrained", "kl_unlearned_retrained", "kl_original_retrained",
    "test_rmse_original", "test_rmse_unlearned", "test_rmse_retrained", "test_nll_original", "test_nll_unlearned",
    "test_nll_retrained", "forgotten_rmse_original", "forgotten_rmse_unlearned", "forgotten_rmse_retrained",
    "forgotten_nll_original", "forgotten_nll_unlearned", "forgotten_nll_retrained", "min_eig_precision",
    "pred_kl_retrain_floor", "indistinguishability", "gain",
]


def lock_hashes(workspace: Path) -> dict[str, str]:
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A copy of the repository with a tiny config, reproduced once: every method, the study and the sweep."""
    root = tiny_repo(tmp_path_factory.mktemp("repo"))
    sh("dvc", "repro", cwd=root)
    sh("dvc", "repro", "study/dvc.yaml", cwd=root)
    return root


def test_repro_writes_metrics_plots_and_posteriors(workspace):
    metrics = json.loads((workspace / "metrics/evaluate/ggn_newton.json").read_text())
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    assert not missing, missing
    timing = json.loads((workspace / "metrics/timing/ggn_newton.json").read_text())
    assert timing["speedup"] == pytest.approx(timing["retrain_seconds"] / timing["unlearn_seconds"])
    assert metrics["min_eig_precision"] > 0 and metrics["failed"] == 0
    for path in ["plots/predictive/ggn_newton.png", "plots/predictive/ggn_newton.csv", "models/original/full_ggn.npz",
                 "models/original/vi_mean_field.npz", "models/unlearned/vi_mf_eubo.npz",
                 "models/retrained/full_ggn/retrain_0.npz", "models/retrained/vi_mean_field/retrain_1.npz",
                 "study/pred_kl_vs_fraction.png"]:
        assert (workspace / path).stat().st_size > 0, path
    assert "up to date" in sh("dvc", "status", cwd=workspace).stdout


def test_one_metrics_table_lists_every_method_and_the_study_covers_the_grid(workspace):
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=workspace).stdout)
    files = {path for rev in shown.values() for path in rev["data"]}
    assert files == {"metrics/headline.json"}  # `dvc metrics show`: one row of headline figures
    headline = json.loads((workspace / "metrics/headline.json").read_text())
    assert headline["method"] == "ggn_refined" and headline["forgotten"] == 5 and headline["served"] == "fast"
    for method in TINY[("methods",)]:  # the details stay in per-method files
        assert json.loads((workspace / f"metrics/evaluate/{method}.json").read_text())["method"] == method
    table = (workspace / "metrics/methods.csv").read_text().splitlines()
    assert sorted(line.split(",")[0] for line in table[1:]) == sorted(TINY[("methods",)])
    results = (workspace / "study/results.csv").read_text().splitlines()
    assert len(results) - 1 == 2 * 1 * 1 * len(TINY[("methods",)])  # (random + cluster) x fractions x seeds x methods


def test_the_real_data_study_judges_every_event_and_its_gate_table_agrees(workspace):
    import pandas as pd

    from bayesunlearn.experiments.confusion import gate_confusion
    from bayesunlearn.io import settings

    results = pd.read_csv(workspace / "study/real/results.csv", keep_default_na=False, na_values=[""])
    # concrete: one random deletion and one segment, each with every method and one fine-tuning budget
    assert sorted(set(results["mode"])) == ["random", "segment"] and len(results) == 2 * (len(TINY[("methods",)]) + 1)
    assert set(results["method"]) == set(TINY[("methods",)]) | {"finetune_5"}
    gated = results[results["method"] != "finetune_5"]
    assert set(gated["gate"]) <= {"pass", "fallback"} and (results[results["method"] == "finetune_5"]["gate"].isna()).all()
    confusion = json.loads((workspace / "study/real/confusion.json").read_text())
    audit = settings.load(workspace / "params.yaml").audit
    assert confusion == json.loads(json.dumps(gate_confusion(results, "ggn_refined", audit)))
    timing = json.loads((workspace / "study/real/timing.json").read_text())
    assert set(timing["concrete"]) == set(TINY[("methods",)]) | {"finetune_5", "retrain"}
    for figure in ("gain.png", "predicted_vs_actual.png"):
        assert (workspace / "study/real" / figure).stat().st_size > 0


def test_rerun_from_scratch_is_bit_identical(workspace):
    before = lock_hashes(workspace)
    sh("dvc", "repro", "--force", "--no-run-cache", cwd=workspace)
    assert lock_hashes(workspace) == before


def test_new_request_leaves_the_original_model_up_to_date(workspace):
    request = write_request(workspace, "req-9999", train_ids(workspace)[-3:])
    try:
        changed = json.loads(sh("dvc", "status", "--json", cwd=workspace).stdout)
        assert "split" in changed
        assert not {"prepare", "train", "fit_posterior@full_ggn", "fit_posterior@vi_mean_field"} & set(changed)
    finally:
        request.unlink()


def test_changing_a_numeric_module_marks_the_stages_that_use_it(workspace):
    """DVC sees the code: a change in the core package is a changed dependency of every stage built on it."""
    module = workspace / "bayesunlearn" / "numerics" / "dense.py"
    original = module.read_bytes()
    try:
        module.write_bytes(original + b"\n# a change\n")
        changed = json.loads(sh("dvc", "status", "--json", cwd=workspace).stdout)
        assert {"fit_posterior@full_ggn", "unlearn@ggn_newton", "gate", "serve"} <= set(changed)
        assert not {"prepare", "split", "train"} & set(changed)  # they import no numerics
    finally:
        module.write_bytes(original)
    assert "up to date" in sh("dvc", "status", cwd=workspace).stdout
