"""End to end: `dvc repro` on a tiny config in a temporary copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow

TINY = {
    ("prepare", "two_clusters", "n_records"): 60,
    ("train", "adam_steps"): 1000,
    ("train", "polish_iterations"): 30,
    ("model", "hidden"): [8],
    ("retrain", "seeds"): 2,
    ("vi", "steps"): 200,
    ("posteriors",): ["full_ggn", "vi_mean_field"],
    ("methods",): {
        "ggn_newton": {"posterior": "full_ggn", "operator": "divide"},
        "ggn_damped": {"posterior": "full_ggn", "operator": "divide", "mean_update": "damped"},
        "vi_mf_eubo": {"posterior": "vi_mean_field", "operator": "eubo", "threshold": 1.0e-6, "steps": 50},
    },
    ("evaluate", "timing_repeats"): 1,
    ("evaluate", "plot_grid_points"): 20,
    ("study", "fractions"): [0.1],
    ("study", "seeds"): [0],
}
REQUIRED_METRICS = [
    "pred_kl_unlearned_retrained", "pred_kl_original_retrained", "kl_unlearned_retrained", "kl_original_retrained",
    "test_rmse_original", "test_rmse_unlearned", "test_rmse_retrained", "test_nll_original", "test_nll_unlearned",
    "test_nll_retrained", "forgotten_rmse_original", "forgotten_rmse_unlearned", "forgotten_rmse_retrained",
    "forgotten_nll_original", "forgotten_nll_unlearned", "forgotten_nll_retrained", "min_eig_precision",
    "pred_kl_retrain_floor", "indistinguishability", "gain",
]


def sh(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def lock_hashes(workspace: Path) -> dict[str, str]:
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A copy of the repository's tracked files with a tiny config, reproduced once."""
    root = tmp_path_factory.mktemp("repo")
    files = sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text())
    for keys, value in TINY.items():
        section = params
        for key in keys[:-1]:
            section = section[key]
        section[keys[-1]] = value
    params["study"]["methods"] = []
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=root)
    sh("dvc", "repro", "prepare", cwd=root)
    # the shipped example request names records of the default data: replace it with tiny-data ids
    for old in (root / "data/requests").glob("*.json"):
        old.unlink()
    write_request(root, "req-0001", train_ids(root)[:5])
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "tiny", cwd=root)
    sh("dvc", "repro", cwd=root)
    return root


def train_ids(root: Path) -> list[str]:
    return [line.split(",")[0] for line in (root / "data/prepared/train.csv").read_text().splitlines()[1:]]


def write_request(root: Path, request_id: str, ids: list[str]) -> Path:
    path = root / "data/requests" / f"{request_id}.json"
    path.write_text(json.dumps({"request_id": request_id, "record_ids": ids, "reason": "test",
                                "received_at": "2026-11-27T10:00:00Z"}))
    return path


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
    assert {f"metrics/evaluate/{m}.json" for m in TINY[("methods",)]} <= files
    table = (workspace / "metrics/methods.csv").read_text().splitlines()
    assert sorted(line.split(",")[0] for line in table[1:]) == sorted(TINY[("methods",)])
    results = (workspace / "study/results.csv").read_text().splitlines()
    assert len(results) - 1 == 2 * 1 * 1 * 3  # modes x fractions x seeds x methods


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
